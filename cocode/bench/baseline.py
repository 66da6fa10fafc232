"""`cocode bench all --save FILE` and `cocode bench compare OLD NEW`: baselines and
the regression alarm.

A baseline file holds every benchmark's JSON from `repeat` runs each, the machine's
description, and the RATIOS: each benchmark's result divided by the baseline it
measured in the same run (bare `git worktree add`, raw SQLite, `cat > file`, a plain
psutil walk, the sampling interval). Ratios, not absolute times, are compared,
because absolute times move with the machine and its load; a same-run ratio mostly
does not.

Noise (how `compare` decides; docs/performance.md, "The regression alarm"). Changes
are factors, "2.9x worse" whichever way the ratio points, so a change and its undoing
are the same size (a ratio that fell to a third is not capped at "67% worse"). Each
file's spread is the median absolute deviation of its repeats' logarithms (MAD): with
three repeats, the distance from the median to the nearer other, so one slow repeat
(0.271 beside 0.064 and 0.099) is no longer taken for the file's noise, as the range
took it. Two runs on this shared machine differ by more than their spreads, though:
load moves between files more than within one (the quick events ratio: medians 1.73
and 0.81 from two runs of one commit whose spreads are 8% and 9%). So each ratio has
a between-run factor, EXCESS, measured from saved pairs known not to differ. Values
saved rounded (monitor.sample_ratio as 0.02) add half their last digit. A ratio
regressed when

    log(worse) > log(1.10) + EXCESS[ratio] * (spread(old) + spread(new))
                 + rounding(old) + rounding(new)

and improved when the same holds for log(better). The right-hand side, as a
percentage, is the smallest change these two files can show: `compare` prints it
as "can detect >= X%", so a pass says how large a regression could hide in the
noise. Files without spread (one run, or repeats that agree) get the 10% alone.
EXCESS is a lower bound: it comes from few pairs, the largest each needed; save
reruns beside a baseline, and raise it when one needs more (the test says so).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from collections.abc import Callable
from pathlib import Path

from cocode.errors import EXIT_CONFIG, CocodeError

THRESHOLD = 0.10
SWEEP = (1, 2, 4, 8)  # producers for bench events' throughput curve

# name -> (benchmark, key in its JSON, "lower" or "higher" is better, what it is against)
RATIOS: dict[str, tuple[str, str, str, str]] = {
    "jobs.exec_ratio": ("jobs", "exec_ratio", "lower", "submit->exec with the pool / bare git worktree add"),
    "jobs.exec_nopool_ratio": ("jobs", "exec_nopool_ratio", "lower", "submit->exec without the pool / bare add"),
    "events.ratio": ("events", "ratio", "higher", "acked events/s / raw SQLite rows/s"),
    "logs.ratio": ("logs", "ratio", "higher", "collector MB/s / cat > file MB/s"),
    "monitor.sample_ratio": ("monitor", "sample_ratio", "lower", "proctree sample / plain psutil walk"),
    "monitor.limit_over_interval": ("monitor", "limit_to_sigterm_max_over_interval", "lower",
                                    "limit -> SIGTERM / sampling interval"),
}

# name -> (between-run factor, where it was measured). The factor is how much more two
# runs with no change between them differ than their spreads say: the largest
# `excess_needed` over the pairs in benchmarks/ known not to differ, rounded up to a
# half, never below 1. Those pairs: the three same-code pairs (0.1.0-quick and
# same-code-rerun, 2d3bc18 and its rerun, 492e05f and its rerun) and, for a ratio
# whose change between 2d3bc18 and 492e05f flips sign across the four pairings of
# their runs (no consistent change: noise), those four pairings. test_bench_compare
# recomputes it from the files, so a new rerun that needs more fails until it is raised.
EXCESS: dict[str, tuple[float, str]] = {
    "jobs.exec_ratio": (1.0, "0.70 at most (0.1.0-quick / same-code-rerun, 1.66x)"),
    "jobs.exec_nopool_ratio": (2.5, "2.27 (rerun-492e05f / rerun-2d3bc18, 1.39x; same code: 2.05)"),
    "events.ratio": (4.5, "4.13 (0.1.0-quick / same-code-rerun, 2.13x with spreads 8% and 9%)"),
    "logs.ratio": (3.5, "3.28 (2d3bc18 / 492e05f, 3.04x; same code: 2.07, 2d3bc18 / its rerun, 2.65x)"),
    "monitor.sample_ratio": (1.0, "0: saved with two decimals (0.02, 0.03), which the rounding term covers"),
    "monitor.limit_over_interval": (1.0, "0.09 at most (492e05f / its rerun, 1.13x)"),
}


def load(path: Path | str) -> dict:
    """A `cocode bench all --save` file, or a one-line error (exit 2) naming the fix."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CocodeError(f"{path} is not a `cocode bench all --save` file: {e}", EXIT_CONFIG) from None
    if not isinstance(data, dict) or "ratios" not in data:
        raise CocodeError(f"{path} has no ratios: write it with `cocode bench all --save`", EXIT_CONFIG)
    return data


def machine() -> dict:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "python": sys.version.split()[0], "git": git, "load_avg_1m": round(os.getloadavg()[0], 2),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def code() -> dict:
    """Which code was measured: the commit of the checkout cocode runs from, its
    date, and whether cocode/ differed from it; empty when not run from a checkout."""
    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists() or not (src / "pyproject.toml").exists():
        return {}
    git = ["git", "-C", str(src)]
    head = subprocess.run([*git, "log", "-1", "--format=%H %cI"], capture_output=True, text=True)
    if head.returncode != 0:
        return {}
    commit, date = head.stdout.split()
    changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "cocode"],
                             capture_output=True, text=True).stdout.strip()
    return {"commit": commit, "date": date, "modified": bool(changed)}


def runners(quick: bool) -> dict[str, Callable[[], dict]]:
    from cocode.bench import jobs, logs, monitor

    return {
        "jobs": lambda: jobs.run(jobs=5 if quick else 15, watched=2 if quick else 5, progress=False),
        "events": lambda: _events(20_000 if quick else 200_000),
        "logs": lambda: logs.run(seconds=3 if quick else 10, total_mb=40 if quick else 200, progress=False),
        "monitor": lambda: monitor.run(seconds=3 if quick else 10, hogs=2 if quick else 5, progress=False),
    }


def _events(count: int) -> dict:
    """bench events needs a running cocode: one on a fresh repository."""
    import tempfile

    from cocode import updown
    from cocode.bench import events
    from cocode.gitops.runner import init_repo
    from cocode.paths import Paths

    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-events-"))
    try:
        (tmp / "README").write_text("bench\n")
        init_repo(tmp, "bench", name="bench", email="bench@cocode.invalid")
        paths = Paths(tmp)
        updown.start_detached(paths)
        try:
            return events.run(paths, count=count, progress=False, sweep_producers=list(SWEEP))
        finally:
            updown.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(repeat: int, quick: bool, only: list[str] | None = None, say=lambda m: None,
            release: str | None = None) -> dict:
    measured = code()  # before the runs: the checkout may change while they run
    results: dict[str, list[dict]] = {}
    errors: list[str] = []
    for name, fn in runners(quick).items():
        if only and name not in only:
            continue
        for i in range(repeat):
            say(f"{name} ({i + 1}/{repeat}) ...")
            try:
                results.setdefault(name, []).append(fn())
            except CocodeError as err:  # one failed repetition costs its numbers, not the file
                say(f"{name} ({i + 1}/{repeat}) failed: {err.message}")
                errors.append(f"{name} {i + 1}: {err.message}")
    out = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
           "code": measured, "repeat": repeat, "quick": quick, "benchmarks": results, "ratios": ratios(results),
           "errors": errors}
    if release:
        out["release"] = release
    return out


def ratios(results: dict[str, list[dict]]) -> dict[str, list[float]]:
    out = {}
    for name, (bench, key, _, _) in RATIOS.items():
        values = [r[key] for r in results.get(bench, []) if isinstance(r.get(key), (int, float))]
        if values:
            out[name] = values
    return out


def spread(values: list[float]) -> float:
    """The median absolute deviation of the logarithms: 0 for one run."""
    if len(values) < 2 or min(values) <= 0:
        return 0.0
    logs = [math.log(v) for v in values]
    mid = statistics.median(logs)
    return statistics.median(abs(v - mid) for v in logs)


def rounding(values: list[float]) -> float:
    """How far rounding may have moved the median, as a log: half the last digit saved
    over the median. Read from the values (0.02 -> 0.005), so a value that only looks
    rounded counts as rounded: bench monitor saved two decimals until 2026-11-30."""
    digits = max(-Decimal(repr(v)).as_tuple().exponent for v in values)
    mid = statistics.median(values)
    return math.log1p(0.5 * 10.0 ** -min(digits, 9) / mid) if mid > 0 else 0.0


def worse_log(name: str, old: float, new: float) -> float:
    """log of how many times worse new is than old (negative: better)."""
    if old <= 0 or new <= 0:
        return 0.0
    change = math.log(new / old)
    return change if RATIOS[name][2] == "lower" else -change


def excess_needed(name: str, old: list[float], new: list[float], threshold: float = THRESHOLD) -> float:
    """The between-run factor that would just let this pair pass in both orders (0: any
    would); for calibrating EXCESS from pairs known not to differ."""
    s = spread(old) + spread(new)
    over = abs(worse_log(name, statistics.median(old), statistics.median(new))) - math.log1p(threshold) \
        - rounding(old) - rounding(new)
    return max(over, 0.0) / s if s else (math.inf if over > 0 else 0.0)


def compare(old: dict, new: dict, threshold: float = THRESHOLD) -> list[dict]:
    """One row per ratio in both files: medians, how much worse (negative = better),
    what these two files' noise lets the comparison detect, and the verdict."""
    rows = []
    for name, (_, _, _, against) in RATIOS.items():
        a, b = old.get("ratios", {}).get(name), new.get("ratios", {}).get(name)
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        worse = worse_log(name, ma, mb)
        limit = (math.log1p(threshold) + EXCESS.get(name, (1.0, ""))[0] * (spread(a) + spread(b))
                 + rounding(a) + rounding(b))
        rows.append({"ratio": name, "against": against, "old": round(ma, 4), "new": round(mb, 4),
                     "worse_pct": round(math.expm1(worse) * 100, 1), "worse_x": round(math.exp(worse), 4),
                     "detect_pct": round(math.expm1(limit) * 100, 1),
                     "regressed": worse > limit, "improved": -worse > limit})
    return rows


def table(rows: list[dict]) -> str:
    # change: new against old as a factor, the same size either way; can detect: the
    # smallest change these two files' noise and rounding let through as real.
    lines = [f"{'ratio':30} {'old':>9} {'new':>9} {'change':>13}  {'can detect':>10}  verdict"]
    for r in rows:
        verdict = "REGRESSED" if r["regressed"] else "improved" if r["improved"] else "within noise"
        factor = r["worse_x"]
        change = f"{factor:.2f}x worse" if factor >= 1 else f"{1 / factor:.2f}x better"
        lines.append(f"{r['ratio']:30} {r['old']:9.4f} {r['new']:9.4f} {change:>13}  >= {r['detect_pct']:6.1f}%  {verdict}")
    return "\n".join(lines)
