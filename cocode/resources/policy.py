"""The monitor's decisions, as pure functions: no clock, no I/O, no signals.

What limit a run has, whether a sample crosses it and what to do next (ADR-005's
edge case: record why, SIGTERM, wait 10 s, SIGKILL), when memory pressure turns on
and off (with a release 5 points under the threshold, so it does not flap), and
when free disk space crosses the 100 MB warning line. services/monitor.py does
the sampling and the acting; this module only decides, so it is tested alone.

The disk line is the one used everywhere (the monitor for .cocode, the log
collector for .cocode/logs on another filesystem, `cocode doctor`). ADR-005 says
"disk space < 100MB"; it is read as 100 MiB, as every other "MB" of ADR-005 is
in this code (log buffers, rotation sizes, memory limits are all 2**20 bytes), so
one unit holds for every size a user configures or reads in a message.
"""

from __future__ import annotations

from collections.abc import Mapping

from cocode.jobs.timeouts import MEMORY_GRACE_S

MIB = 1024 * 1024
PRESSURE_RELEASE = 5.0  # points under the threshold before pressure turns off
DISK_LOW_BYTES = 100 * MIB
DISK_RELEASE_BYTES = 10 * MIB  # free space must come back this far above the line


def memory_limit_mb(agent: str, specs: Mapping, default_mb: int) -> int:
    """The agent's own memory_limit_mb if it has one, else the configured limit."""
    spec = specs.get(agent)
    own = getattr(spec, "memory_limit_mb", None) if spec is not None else None
    return own or default_mb


def enforcement(rss_bytes: int, limit_bytes: int, term_at: float | None, killed: bool,
                now: float, grace: float = MEMORY_GRACE_S) -> str | None:
    """The next step for one run: "terminate" (record limit_hit, then SIGTERM),
    "kill" (SIGKILL, the grace is over), or None."""
    if term_at is None:
        return "terminate" if rss_bytes > limit_bytes else None
    if not killed and now - term_at >= grace:
        return "kill"
    return None


def pressure_next(on: bool, percent: float, threshold: float,
                  release: float = PRESSURE_RELEASE) -> bool:
    """Memory pressure after this sample: on above `threshold` percent, off only
    once use falls below `threshold - release` (hysteresis)."""
    if on:
        return percent >= threshold - release
    return percent > threshold


def disk_low_next(low: bool, free_bytes: int, line: int = DISK_LOW_BYTES,
                  release: int = DISK_RELEASE_BYTES) -> bool:
    """Whether free space counts as low now; a warning is due on each False -> True.
    Once low, it stays low until free space is `release` above the line, so a disk
    hovering at the line gives one warning, not one per check."""
    if low:
        return free_bytes < line + release
    return free_bytes < line


def cpu_percent(prev: Mapping[int, float], now: Mapping[int, float], new_since_last: set[int],
                dt: float) -> float:
    """CPU use of a process tree over `dt` seconds, in percent of one core.

    `prev`/`now` map pid -> user+system seconds. A pid seen for the first time
    counts whole if it was born during the interval (`new_since_last`), else not
    at all (its past is not this interval's). Processes that died drop out.
    """
    if dt <= 0:
        return 0.0
    used = 0.0
    for pid, t in now.items():
        if pid in prev:
            used += max(0.0, t - prev[pid])
        elif pid in new_since_last:
            used += t
    return 100.0 * used / dt
