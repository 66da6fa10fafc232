"""ADR-005's monitoring metrics: a pure fold over events, plus the monitor's latest samples.

The list (ADR-005, "Monitoring Metrics"): agent execution time, memory per agent,
log throughput (MB/min), ready-detection attempts, repository clone/worktree time,
buffer overflow events, timeout violations, resource-limit hits.

- `apply(totals, event)` folds events (no I/O, no clock) through a handler table
  like core/state.py's, one function per event type read; `fold(events)` runs it.
- `summary(totals, samples, log_bytes, now)` joins the fold with the latest
  metric.run/metric.host samples and log file sizes into one plain dict, which
  resources/exposition.py renders (text table, JSON, Prometheus).
- The I/O to gather those inputs is at the bottom (`collect`, `latest_samples`,
  `log_bytes`), apart from the decisions.

Ready-detection attempts are the branch heads checked for the marker: the worker
checks each new head once and records it as run_progress. Buffer overflows are
log rotations (ADR-005 §2: a full buffer rotates to disk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import msgspec

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.logs.files import RunFiles
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
    usage: dict[int, ev.RunUsage] = {}  # each attempt's latest totals

    def usage_sum(self) -> tuple[int, float | None, int]:
        """(tokens, cost in USD or None, tool calls) over the attempts."""
        tokens = sum(u.input_tokens + u.cached_input_tokens + u.output_tokens for u in self.usage.values())
        costs = [u.cost_usd for u in self.usage.values() if u.cost_usd is not None]
        return tokens, (round(sum(costs), 6) if costs else None), sum(u.tool_calls for u in self.usage.values())


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


def _run_started(t: Totals, e: ev.RunStarted) -> None:
    r = _run(t, e)
    r.state, r.started, r.ended, r.starts = "running", e.ts, None, r.starts + 1
    r.worktree_ms = e.worktree_ms


def _run_progress(t: Totals, e: ev.RunProgress) -> None:
    _run(t, e).ready_checks += 1


def _run_ready(t: Totals, e: ev.RunReady) -> None:
    _run(t, e).ready_detect_ms = e.detect_ms


def _run_finished(t: Totals, e: ev.RunFinished) -> None:
    r = _run(t, e)
    r.state, r.reason, r.ended = e.state, e.reason, e.ts
    if e.reason == "timeout_exceeded":
        t.timeouts += 1


def _limit_hit(t: Totals, e: ev.LimitHit) -> None:
    t.limit_hits[e.kind] = t.limit_hits.get(e.kind, 0) + 1
    if e.agent:
        _run(t, e).limit_hits += 1


def _log_rotated(t: Totals, e: ev.LogRotated) -> None:
    t.buffer_overflows += 1
    t.rotated_bytes += e.bytes


def _buffer_expanded(t: Totals, e: ev.BufferExpanded) -> None:
    t.buffer_expansions += 1


def _memory_pressure(t: Totals, e: ev.MemoryPressure) -> None:
    t.pressure_turned_on += e.on and not t.pressure
    t.pressure = e.on


def _warning(t: Totals, e: ev.WarningEvent) -> None:
    t.warnings[e.code] = t.warnings.get(e.code, 0) + 1


def _worktree_removed(t: Totals, e: ev.WorktreeRemoved) -> None:
    t.worktrees_removed += 1


def _run_usage(t: Totals, e: ev.RunUsage) -> None:
    _run(t, e).usage[e.attempt] = e


FOLDS: dict[type, Callable[[Totals, ev.Event], None]] = {
    ev.RunStarted: _run_started,
    ev.RunProgress: _run_progress,
    ev.RunReady: _run_ready,
    ev.RunFinished: _run_finished,
    ev.LimitHit: _limit_hit,
    ev.LogRotated: _log_rotated,
    ev.BufferExpanded: _buffer_expanded,
    ev.MemoryPressure: _memory_pressure,
    ev.WarningEvent: _warning,
    ev.WorktreeRemoved: _worktree_removed,
    ev.RunUsage: _run_usage,
}


def apply(t: Totals, e: ev.Event) -> Totals:
    handler = FOLDS.get(type(e))
    if handler is not None:
        handler(t, e)
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
        tokens, cost, tools = r.usage_sum()
        row = {
            "tokens": tokens, "cost_usd": cost, "tool_calls": tools,
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
            "tokens": 0, "cost_usd": 0.0, "tool_calls": 0,
        })
        a["tokens"] += tokens
        a["cost_usd"] = round(a["cost_usd"] + (cost or 0.0), 6)
        a["tool_calls"] += tools
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


# -- gathering the inputs (I/O) -----------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_bytes(paths, keys: Iterable[str]) -> dict[str, int]:
    """Bytes each run logged (uncompressed): the collector's live file plus what its
    manifest says the rotated segments hold."""
    out = {}
    for key in keys:
        run = RunKey.parse(key)
        files = RunFiles(Path(paths.logs), run.job, run.agent)
        try:
            m = files.read_manifest()
        except OSError:
            m = None
        rotated = sum(r.end - r.start for r in m.rotated) if m else 0
        out[key] = rotated + _size(files.live)
    return out


def latest_samples(paths, timeout: float = 3.0) -> tuple[dict[str, dict], dict | None]:
    """One complete round of the monitor's samples from the bus: every metric.run of
    a tick, then its metric.host (which names the runs of that tick)."""
    import zmq

    from cocode.core.sockets import ZMQ_DEFAULT_HWM, subscriber

    # One round of samples, read at once: libzmq's default queue is plenty.
    sub = subscriber(zmq.Context.instance(), paths.endpoint("bus"), [b"metric."], hwm=ZMQ_DEFAULT_HWM)
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
    totals = Totals()
    if paths.db.exists():
        conn = eventlog.open_for_reading(paths.db)
        try:
            totals = fold(eventlog.iter_all_events(conn))
        finally:
            conn.close()
    samples, host = latest_samples(paths, timeout) if running else ({}, None)
    return summary(totals, samples, host, log_bytes(paths, totals.runs), time.time())
