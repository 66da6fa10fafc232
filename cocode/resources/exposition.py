"""How the metrics summary (resources/metrics.summary) is shown: the text table of
`cocode metrics`, the JSON of `--json`, and the Prometheus text exposition format
(version 0.0.4) of `--prometheus` and of the monitor's HTTP endpoint
(resources/http.py). Pure: a dict in, a string out.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def json(s: dict) -> str:
    """The whole summary as one JSON object."""
    return msgspec.json.encode(s).decode()


def table(s: dict, colour: bool = False) -> str:
    from cocode import style

    rows = []
    for name, a in sorted(s["agents"].items()):
        ex = f"{a['execution_s_avg']:.1f}s" if a["execution_s_avg"] is not None else "-"
        wt = f"{a['worktree_ms_avg']:.0f}ms" if a["worktree_ms_avg"] is not None else "-"
        mb = f"{a['log_mb_per_min']:.3f}" if a["log_mb_per_min"] is not None else "-"
        rss = f"{a['rss'] / 2**20:.1f}M" if a["rss"] else "-"
        rows.append([name, a["runs"], ex, wt, a["ready_checks"], mb, a["timeouts"], a["limit_hits"], rss])
    head = ["AGENT", "RUNS", "EXEC AVG", "WORKTREE", "READY CHK", "LOG MB/MIN", "TIMEOUTS", "LIMITS", "RSS NOW"]
    lines = [style.table(head, rows, colour, right=head[1:])]
    if not s["agents"]:
        lines.append("(no run has started yet)")
    live = [r for r in s["runs"] if r["rss"] is not None]
    if live:
        head = ["LIVE RUN", "RSS", "PEAK", "LIMIT", "CPU%", "PROCS", "ESCAPED"]
        rows = [[r["job"] + "/" + r["agent"], f"{r['rss'] / 2**20:.1f}M", f"{r['peak_rss'] / 2**20:.1f}M",
                 f"{r['memory_limit'] / 2**20:.0f}M", f"{r['cpu_percent']:.1f}", r["processes"], r["escaped"]]
                for r in live]
        lines += ["", style.table(head, rows, colour, right=head[1:])]
    t = s["totals"]
    hits = ", ".join(f"{k} {v}" for k, v in sorted(t["limit_hits"].items())) or "none"
    lines += ["", f"resource-limit hits: {hits}; timeout violations: {t['timeouts']}; "
              f"buffer overflows: {t['buffer_overflows']} (expansions {t['buffer_expansions']}); "
              f"worktrees removed: {t['worktrees_removed']}"]
    h = s["host"]
    if h:
        lines.append(f"host: memory {h['mem_percent']:.1f}% (pressure {'on' if t['memory_pressure'] else 'off'}, "
                     f"threshold {h['pressure_threshold']}%), cpu {h['cpu_percent']:.1f}%, "
                     f"disk free {h['disk_free'] / 2**30:.1f} GiB")
    else:
        lines.append(f"host: no sample (the monitor is not running); pressure "
                     f"{'on' if t['memory_pressure'] else 'off'}")
    return "\n".join(lines)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) else str(int(v))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples) -> None:
        """samples: [(suffix, labels, value)]; written even when empty, so the family is known."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            if value is not None:
                self.lines.append(f"{name}{suffix}{_labels(labels)} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus(s: dict) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    x = _Exposition()
    agents = sorted(s["agents"].items())
    live = [r for r in s["runs"] if r["rss"] is not None]

    def per_agent(field):
        return [("", {"agent": n}, a[field]) for n, a in agents]

    def summary_of(sum_field, count_field, scale=1.0):
        out = []
        for n, a in agents:
            out.append(("_sum", {"agent": n}, a[sum_field] * scale))
            out.append(("_count", {"agent": n}, a[count_field]))
        return out

    def per_run(field):
        return [("", {"job": r["job"], "agent": r["agent"]}, r[field]) for r in live]

    x.family("cocode_run_execution_seconds", "summary", "Agent execution time of finished runs.",
             summary_of("execution_s_sum", "finished"))
    x.family("cocode_worktree_setup_seconds", "summary", "Repository clone/worktree time per run.",
             summary_of("worktree_ms_sum", "worktree_count", 0.001))
    x.family("cocode_ready_detection_seconds", "summary", "Time to find the ready commit once the branch moved.",
             summary_of("ready_detect_ms_sum", "ready_count", 0.001))
    x.family("cocode_ready_detection_attempts_total", "counter", "Branch heads checked for the ready marker.",
             per_agent("ready_checks"))
    x.family("cocode_log_bytes_total", "counter", "Bytes of agent output logged.", per_agent("log_bytes"))
    x.family("cocode_log_throughput_mb_per_minute", "gauge", "Agent log throughput over its runs' time.",
             per_agent("log_mb_per_min"))
    x.family("cocode_timeout_violations_total", "counter", "Runs stopped for exceeding their timeout.",
             per_agent("timeouts"))
    t = s["totals"]
    x.family("cocode_resource_limit_hits_total", "counter", "Runs that crossed a resource limit.",
             [("", {"kind": k}, v) for k, v in sorted(t["limit_hits"].items())])
    x.family("cocode_buffer_overflow_events_total", "counter", "Log buffers that filled and rotated to disk.",
             [("", {}, t["buffer_overflows"])])
    x.family("cocode_buffer_expansions_total", "counter", "Log buffers grown for verbose agents.",
             [("", {}, t["buffer_expansions"])])
    x.family("cocode_worktrees_removed_total", "counter", "Worktrees removed by cleanup.",
             [("", {}, t["worktrees_removed"])])
    x.family("cocode_runs", "gauge", "Runs by state.",
             [("", {"state": k}, v) for k, v in sorted(s["run_states"].items())])
    x.family("cocode_run_memory_bytes", "gauge", "Resident memory of a live run's processes.", per_run("rss"))
    x.family("cocode_run_memory_peak_bytes", "gauge", "Highest sampled memory of a live run.", per_run("peak_rss"))
    x.family("cocode_run_memory_limit_bytes", "gauge", "A live run's memory limit.", per_run("memory_limit"))
    x.family("cocode_run_cpu_percent", "gauge", "CPU of a live run's processes, percent of one core.",
             per_run("cpu_percent"))
    x.family("cocode_run_processes", "gauge", "Processes of a live run.", per_run("processes"))
    x.family("cocode_run_escaped_processes", "gauge", "A live run's processes outside its process group.",
             per_run("escaped"))
    x.family("cocode_memory_pressure", "gauge", "1 while system memory is over the pressure threshold.",
             [("", {}, int(t["memory_pressure"]))])
    h = s["host"] or {}
    x.family("cocode_host_memory_percent", "gauge", "System memory in use.", [("", {}, h.get("mem_percent"))])
    x.family("cocode_host_cpu_percent", "gauge", "System CPU in use.", [("", {}, h.get("cpu_percent"))])
    x.family("cocode_disk_free_bytes", "gauge", "Free space on the .cocode filesystem.",
             [("", {}, h.get("disk_free"))])
    return x.text()
