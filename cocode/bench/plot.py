"""`cocode bench plot FILE... --out DIR`: PNGs from `cocode bench all --save` files,
with matplotlib (the optional extra `cocode[plots]`).

- start.png: submit -> agent exec with the pool, without it, and bare `git worktree
  add` (p50 and p99 of each run of `bench jobs`, the last file's);
- ratios.png: every same-run ratio across the files given (baselines over releases),
  each point the median of its repeats, the bar its range.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from cocode.bench import baseline
from cocode.errors import EXIT_MISSING_DEPENDENCY, CocodeError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise CocodeError("bench plot needs matplotlib: pip install 'cocode[plots]'", EXIT_MISSING_DEPENDENCY) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def load(files: list[Path]) -> list[dict]:
    return [{**baseline.load(f), "_name": Path(f).stem} for f in files]


def plot(files: list[Path], out: Path) -> list[Path]:
    plt = _pyplot()
    runs = load(files)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    jobs = runs[-1].get("benchmarks", {}).get("jobs", [])
    if jobs:
        fig, ax = plt.subplots(figsize=(7, 4))
        series = [("pool", "exec_p50_ms", "exec_p99_ms"), ("no pool", "exec_nopool_p50_ms", "exec_nopool_p99_ms"),
                  ("bare git worktree add", "worktree_add_p50_ms", "worktree_add_p99_ms")]
        width = 0.8 / len(series)
        for i, (label, p50, p99) in enumerate(series):
            xs = [k + i * width for k in range(len(jobs))]
            ax.bar(xs, [r.get(p50, 0) for r in jobs], width, label=f"{label} p50")
            ax.scatter(xs, [r.get(p99, 0) for r in jobs], marker="_", s=200, color="black")
        ax.set_xticks([k + width for k in range(len(jobs))], [f"run {k + 1}" for k in range(len(jobs))])
        ax.set_ylabel("ms (bars p50, dashes p99)")
        ax.set_title(f"submit -> agent exec, 2,000-file repository ({runs[-1]['_name']})")
        ax.legend()
        made.append(_save(plt, fig, out / "start.png"))
    names = sorted({n for r in runs for n in r["ratios"]})
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        xs, med, lo, hi = [], [], [], []
        for k, r in enumerate(runs):
            v = r["ratios"].get(name)
            if v:
                m = statistics.median(v)
                xs.append(k), med.append(m), lo.append(m - min(v)), hi.append(max(v) - m)
        ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=4)
        ax.set_ylabel(name, rotation=0, ha="right", fontsize=8)
        ax.set_xticks(range(len(runs)), [r["_name"] for r in runs], fontsize=7)
    fig.suptitle("same-run ratios per baseline (median, range of repeats)")
    made.append(_save(plt, fig, out / "ratios.png"))
    return made


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
