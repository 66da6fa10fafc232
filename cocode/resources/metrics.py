"""ADR-005's monitoring metrics: a pure fold over events, plus the monitor's latest samples.

The list (ADR-005, "Monitoring Metrics"): agent execution time, memory per agent,
log throughput (MB/min), ready-detection attempts, repository clone/worktree time,
buffer overflow events, timeout violations, resource-limit hits.

- `apply(totals, event)` folds events (no I/O, no clock); `fold(events)` runs it.
- `summary(totals, samples, log_bytes, now)` joins the fold with the latest
  metric.run/metric.host samples and log file sizes into one plain dict: what
  `cocode metrics --json` prints, and what `table()` and `prometheus()` render.
- The I/O to gather those inputs is at the bottom (`collect`, `latest_samples`,
  `log_bytes`), apart from the decisions.

Ready-detection attempts are the branch heads checked for the marker: the worker
checks each new head once and records it as run_progress. Buffer overflows are
log rotations (ADR-005 §2: a full buffer rotates to disk).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from cocode.core import events as ev
from cocode.runkey import RunKey

RUNS_SHOWN = 100  # finished runs listed one by one; aggregates cover all of them


class RunStats(msgspec.Struct):
    job: str
    agent: str
    state: str = "queued"
    reason: str | None = None
    started: float | None = None  # the latest attempt's run_started
    ended: float | None = None
    worktree_ms: float | None = None
    ready_checks: int = 0
    ready_detect_ms: float | None = None
    starts: int = 0
    limit_hits: int = 0


class Totals(msgspec.Struct):
    runs: dict[str, RunStats] = {}
    limit_hits: dict[str, int] = {}
    timeouts: int = 0
    buffer_overflows: int = 0
    buffer_expansions: int = 0
    rotated_bytes: int = 0
    pressure: bool = False
    pressure_turned_on: int = 0
    warnings: dict[str, int] = {}
    worktrees_removed: int = 0
    seq: int = 0


def _run(t: Totals, e: ev.Event) -> RunStats:
    key = RunKey(e.job, e.agent).key
    r = t.runs.get(key)
    if r is None:
        r = t.runs[key] = RunStats(job=e.job, agent=e.agent)
    return r


def apply(t: Totals, e: ev.Event) -> Totals:
    if isinstance(e, ev.RunStarted):
        r = _run(t, e)
        r.state, r.started, r.ended, r.starts = "running", e.ts, None, r.starts + 1
        r.worktree_ms = e.worktree_ms
    elif isinstance(e, ev.RunProgress):
        _run(t, e).ready_checks += 1
    elif isinstance(e, ev.RunReady):
        _run(t, e).ready_detect_ms = e.detect_ms
    elif isinstance(e, ev.RunFinished):
        r = _run(t, e)
        r.state, r.reason, r.ended = e.state, e.reason, e.ts
        if e.reason == "timeout_exceeded":
            t.timeouts += 1
    elif isinstance(e, ev.LimitHit):
        t.limit_hits[e.kind] = t.limit_hits.get(e.kind, 0) + 1
        if e.agent:
            _run(t, e).limit_hits += 1
    elif isinstance(e, ev.LogRotated):
        t.buffer_overflows += 1
        t.rotated_bytes += e.bytes
    elif isinstance(e, ev.BufferExpanded):
        t.buffer_expansions += 1
    elif isinstance(e, ev.MemoryPressure):
        t.pressure_turned_on += e.on and not t.pressure
        t.pressure = e.on
    elif isinstance(e, ev.WarningEvent):
        t.warnings[e.code] = t.warnings.get(e.code, 0) + 1
    elif isinstance(e, ev.WorktreeRemoved):
        t.worktrees_removed += 1
    t.seq = max(t.seq, e.seq)
    return t


def fold(events: Iterable[ev.Event], t: Totals | None = None) -> Totals:
    t = t or Totals()
    for e in events:
        apply(t, e)
    return t


# -- joining the fold with samples -----------------------------------------------------------


def _mb_per_min(nbytes: int, seconds: float) -> float | None:
    return round(nbytes / 2**20 / (seconds / 60), 4) if seconds > 0 else None


def summary(t: Totals, samples: Mapping[str, dict], host: dict | None,
            log_bytes: Mapping[str, int], now: float) -> dict:
    """Everything `cocode metrics` shows, as plain data. `samples` maps
    "job/agent" to the latest metric.run map, `host` is the latest metric.host."""
    runs = []
    agents: dict[str, dict] = {}
    for key, r in t.runs.items():
        if r.started is None:
            continue
        secs = (r.ended or now) - r.started
        s = samples.get(key) if r.ended is None else None
        nbytes = log_bytes.get(key, 0)
        row = {
            "job": r.job, "agent": r.agent, "state": r.state, "reason": r.reason,
            "started_at": r.started, "ended_at": r.ended, "execution_s": round(secs, 3), "worktree_ms": r.worktree_ms,
            "ready_checks": r.ready_checks, "ready_detect_ms": r.ready_detect_ms,
            "log_bytes": nbytes, "log_mb_per_min": _mb_per_min(nbytes, secs),
            "limit_hits": r.limit_hits,
            "rss": s["rss"] if s else None, "peak_rss": s["peak_rss"] if s else None,
            "cpu_percent": s["cpu"] if s else None, "processes": s["procs"] if s else None,
            "escaped": s["escaped"] if s else None, "memory_limit": s["limit"] if s else None,
        }
        runs.append(row)
        a = agents.setdefault(r.agent, {
            "runs": 0, "finished": 0, "execution_s_sum": 0.0, "worktree_ms_sum": 0.0,
            "worktree_count": 0, "ready_checks": 0, "ready_detect_ms_sum": 0.0, "ready_count": 0,
            "log_bytes": 0, "log_seconds": 0.0, "timeouts": 0, "limit_hits": 0, "rss": 0,
        })
        a["runs"] += 1
        if r.ended is not None:
            a["finished"] += 1
            a["execution_s_sum"] += secs
        if r.worktree_ms is not None:
            a["worktree_ms_sum"] += r.worktree_ms
            a["worktree_count"] += 1
        a["ready_checks"] += r.ready_checks
        if r.ready_detect_ms is not None:
            a["ready_detect_ms_sum"] += r.ready_detect_ms
            a["ready_count"] += 1
        a["log_bytes"] += nbytes
        a["log_seconds"] += secs
        a["timeouts"] += r.reason == "timeout_exceeded"
        a["limit_hits"] += r.limit_hits
        a["rss"] += s["rss"] if s else 0
    for a in agents.values():
        a["execution_s_avg"] = round(a["execution_s_sum"] / a["finished"], 3) if a["finished"] else None
        a["worktree_ms_avg"] = round(a["worktree_ms_sum"] / a["worktree_count"], 1) if a["worktree_count"] else None
        a["log_mb_per_min"] = _mb_per_min(a["log_bytes"], a["log_seconds"])
    live = [r for r in runs if r["rss"] is not None]
    finished = sorted((r for r in runs if r["rss"] is None), key=lambda r: r["ended_at"] or now)
    states: dict[str, int] = {}
    for r in t.runs.values():
        states[r.state] = states.get(r.state, 0) + 1
    return {
        "seq": t.seq,
        "runs": live + finished[-RUNS_SHOWN:],
        "agents": agents,
        "run_states": states,
        "totals": {
            "limit_hits": dict(t.limit_hits), "timeouts": t.timeouts,
            "buffer_overflows": t.buffer_overflows, "buffer_expansions": t.buffer_expansions,
            "rotated_bytes": t.rotated_bytes, "worktrees_removed": t.worktrees_removed,
            "memory_pressure": t.pressure, "pressure_turned_on": t.pressure_turned_on,
            "warnings": dict(t.warnings),
        },
        "host": host,
    }


# -- rendering ----------------------------------------------------------------------------------


def table(s: dict) -> str:
    lines = [f"{'AGENT':<14} {'RUNS':>4} {'EXEC AVG':>9} {'WORKTREE':>9} {'READY CHK':>9} "
             f"{'LOG MB/MIN':>10} {'TIMEOUTS':>8} {'LIMITS':>6} {'RSS NOW':>9}"]
    for name, a in sorted(s["agents"].items()):
        ex = f"{a['execution_s_avg']:.1f}s" if a["execution_s_avg"] is not None else "-"
        wt = f"{a['worktree_ms_avg']:.0f}ms" if a["worktree_ms_avg"] is not None else "-"
        mb = f"{a['log_mb_per_min']:.3f}" if a["log_mb_per_min"] is not None else "-"
        rss = f"{a['rss'] / 2**20:.1f}M" if a["rss"] else "-"
        lines.append(f"{name:<14} {a['runs']:>4} {ex:>9} {wt:>9} {a['ready_checks']:>9} "
                     f"{mb:>10} {a['timeouts']:>8} {a['limit_hits']:>6} {rss:>9}")
    if not s["agents"]:
        lines.append("(no run has started yet)")
    live = [r for r in s["runs"] if r["rss"] is not None]
    if live:
        lines.append("")
        lines.append(f"{'LIVE RUN':<24} {'RSS':>9} {'PEAK':>9} {'LIMIT':>9} {'CPU%':>6} {'PROCS':>5} {'ESCAPED':>7}")
        for r in live:
            lines.append(
                f"{r['job'] + '/' + r['agent']:<24} {r['rss'] / 2**20:>8.1f}M {r['peak_rss'] / 2**20:>8.1f}M "
                f"{r['memory_limit'] / 2**20:>8.0f}M {r['cpu_percent']:>6.1f} {r['processes']:>5} {r['escaped']:>7}")
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


# -- gathering the inputs (I/O) -----------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_bytes(paths, keys: Iterable[str]) -> dict[str, int]:
    """Bytes each run logged (uncompressed): the collector's live file plus what its
    manifest says the rotated segments hold."""
    try:
        from cocode.logs.files import RunFiles
    except ImportError:
        RunFiles = None
    out = {}
    logs = Path(paths.logs)
    for key in keys:
        run = RunKey.parse(key)
        total = 0
        if RunFiles is not None:
            files = RunFiles(logs, run.job, run.agent)
            try:
                m = files.read_manifest()
            except Exception:
                m = None
            rotated = sum(r.end - r.start for r in m.rotated) if m else 0
            total = max(total, rotated + _size(files.live))
        out[key] = total
    return out


def latest_samples(paths, timeout: float = 3.0) -> tuple[dict[str, dict], dict | None]:
    """One complete round of the monitor's samples from the bus: every metric.run of
    a tick, then its metric.host (which names the runs of that tick)."""
    import zmq

    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(paths.endpoint("bus"))
    sub.setsockopt(zmq.SUBSCRIBE, b"metric.")
    decoder = msgspec.msgpack.Decoder(dict)
    runs: dict[int, dict[str, dict]] = {}
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not sub.poll(int(left * 1000)):
                break
            try:
                topic, payload = sub.recv_multipart()
                sample = decoder.decode(payload)
            except (ValueError, msgspec.MsgspecError):
                continue
            tick = sample.get("tick", 0)
            if topic == b"metric.run":
                runs.setdefault(tick, {})[RunKey(sample["job"], sample["agent"]).key] = sample
            elif topic == b"metric.host":
                got = runs.get(tick, {})
                if all(k in got for k in sample.get("runs", [])):
                    return got, sample
    finally:
        sub.close(0)
    return {}, None


def collect(paths, running: bool, timeout: float = 3.0) -> dict:
    """The summary now: every event (archived ones too) folded, plus live samples."""
    from cocode.core import eventlog

    totals = Totals()
    if paths.db.exists():
        conn = eventlog.open_for_reading(paths.db)
        try:
            totals = fold(eventlog.iter_all_events(conn))
        finally:
            conn.close()
    samples, host = latest_samples(paths, timeout) if running else ({}, None)
    return summary(totals, samples, host, log_bytes(paths, totals.runs), time.time())
