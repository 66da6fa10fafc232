"""`cocode bench all --save FILE` and `cocode bench compare OLD NEW`: baselines and
the regression alarm.

A baseline file holds every benchmark's JSON from `repeat` runs each, the machine's
description, and the RATIOS: each benchmark's result divided by the baseline it
measured in the same run (bare `git worktree add`, raw SQLite, `cat > file`, a plain
psutil walk, the sampling interval). Ratios, not absolute times, are compared,
because absolute times move with the machine and its load; a same-run ratio mostly
does not.

Noise: each ratio's spread over its repeats, its range relative to its median
((max - min) / median), in each file. A ratio regresses when its median got worse
by more than 10% plus both files' noise: each median is uncertain by up to its
file's spread, so two runs of the same code can differ by their sum. (The half
range and the larger of the two let two same-code runs on this shared machine
"regress" by 53-66%: load moved between the files more than within one.) A single
run (repeat 1) has no measured noise, so only the 10% applies.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
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


def noise(values: list[float]) -> float:
    """The range relative to the median: 0 for a single run."""
    med = statistics.median(values)
    return (max(values) - min(values)) / abs(med) if len(values) > 1 and med else 0.0


def compare(old: dict, new: dict, threshold: float = THRESHOLD) -> list[dict]:
    """One row per ratio in both files: medians, change (positive = worse), noise, verdict."""
    rows = []
    for name, (_, _, better, against) in RATIOS.items():
        a, b = old.get("ratios", {}).get(name), new.get("ratios", {}).get(name)
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        change = (mb - ma) / abs(ma) if ma else 0.0
        worse = change if better == "lower" else -change
        allowed = threshold + noise(a) + noise(b)
        rows.append({"ratio": name, "against": against, "old": round(ma, 4), "new": round(mb, 4),
                     "worse_pct": round(worse * 100, 1), "allowed_pct": round(allowed * 100, 1),
                     "regressed": worse > allowed})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'ratio':30} {'old':>9} {'new':>9} {'worse':>8} {'allowed':>8}  verdict"]
    for r in rows:
        verdict = "REGRESSED" if r["regressed"] else ("better" if r["worse_pct"] < 0 else "ok")
        lines.append(f"{r['ratio']:30} {r['old']:9.4f} {r['new']:9.4f} {r['worse_pct']:7.1f}% {r['allowed_pct']:7.1f}%  {verdict}")
    return "\n".join(lines)
