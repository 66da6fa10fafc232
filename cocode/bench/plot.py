"""`cocode bench plot FILE... --out DIR`: PNGs from saved benchmark JSON, with
matplotlib (the optional extra `cocode[plots]`).

FILEs are `cocode bench all --save` files and `cocode bench scenario N --save`
files, in any mix; each figure is drawn when the files hold what it needs:

- start.png: submit -> agent exec with the pool, without it, and bare `git worktree
  add` (p50 and p99 of each run of `bench jobs`, the last file's);
- ratios.png: every same-run ratio across the `bench all` files given (baselines
  over releases), each point the median of its repeats, the bar its range;
- cdf_start.png: the CDF of submit -> agent exec, pool vs no pool, with bare `git
  worktree add` of the same repository in the same runs (the last file with samples);
- cdf_ready.png: the CDF of ready commit -> `run_ready` (same runs);
- cdf_tail.png: the CDF of agent write -> `cocode tail -f` with 5 agents at 1 MB/s
  (`bench logs`, the last file with samples);
- memory.png: each service's RSS over each scenario of the scenario files;
- throughput.png: acked events/s against the number of producers, beside raw
  SQLite's rows/s measured just before each point, and their ratio (`bench events
  --sweep`, which `bench all` runs with 1, 2, 4 and 8; the last file with a sweep);
- releases.png: every same-run ratio over the releases' baselines (files saved with
  `bench all --release NAME`), in the order of their code's commit dates, each
  point labelled with its release, commit and when it was measured.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from cocode.bench import baseline
from cocode.errors import EXIT_CONFIG, EXIT_MISSING_DEPENDENCY, CocodeError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise CocodeError("bench plot needs matplotlib: pip install 'cocode[plots]'", EXIT_MISSING_DEPENDENCY) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def load(files: list[Path]) -> tuple[list[dict], list[dict]]:
    """(bench all files, scenarios): a one-line error (exit 2) for anything else."""
    runs, scenarios = [], []
    for f in files:
        try:
            data = json.loads(Path(f).read_text())
        except (OSError, ValueError) as e:
            raise CocodeError(f"{f} is not a saved benchmark: {e}", EXIT_CONFIG) from None
        if isinstance(data, dict) and "scenarios" in data:
            scenarios += [{**s, "_name": Path(f).stem} for s in data["scenarios"]]
        else:
            runs.append({**baseline.load(f), "_name": Path(f).stem})
    return runs, scenarios


FIGURES = ("start", "ratios", "cdf_start", "cdf_ready", "cdf_tail", "throughput", "releases", "memory")


def plot(files: list[Path], out: Path, only: list[str] | None = None) -> list[Path]:
    """Every figure the files hold what it needs for (or only those named in `only`)."""
    runs, scenarios = load(files)  # bad files are a usage error, matplotlib or not
    unknown = sorted(set(only or []) - set(FIGURES))
    if unknown:
        raise CocodeError(f"bench plot --only {','.join(unknown)}: choose from {','.join(FIGURES)}", EXIT_CONFIG)
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    made = []

    def want(name: str) -> bool:
        return not only or name in only

    jobs = runs[-1].get("benchmarks", {}).get("jobs", []) if runs else []
    if jobs and want("start"):
        made.append(_start(plt, jobs, runs[-1]["_name"], out / "start.png"))
    if runs and want("ratios"):
        made.append(_ratios(plt, runs, out / "ratios.png"))
    sampled = _last_with(runs, "jobs", "exec_ms")
    if sampled and want("cdf_start"):
        name, results = sampled
        made.append(_cdf(plt, f"submit -> agent exec, 2,000-file repository ({name})", [
            ("with the pool", _samples(results, "exec_ms")),
            ("without (a fresh clone)", _samples(results, "exec_nopool_ms")),
            ("bare git worktree add (baseline)", _samples(results, "worktree_add_ms")),
        ], out / "cdf_start.png", log=True))
    if sampled and want("cdf_ready"):
        name, results = sampled
        made.append(_cdf(plt, f"ready commit -> run_ready event ({name})",
                         [("ready detection", _samples(results, "ready_ms"))], out / "cdf_ready.png"))
    sampled = _last_with(runs, "logs", "tail_ms")
    if sampled and want("cdf_tail"):
        name, results = sampled
        made.append(_cdf(plt, f"agent write -> cocode tail -f, 5 agents x 1 MB/s ({name})",
                         [("tail latency", _samples(results, "tail_ms"))], out / "cdf_tail.png", log=True))
    swept = _last_sweep(runs)
    if swept and want("throughput"):
        made.append(_throughput(plt, *swept, out / "throughput.png"))
    releases = sorted((r for r in runs if r.get("release")), key=lambda r: r.get("code", {}).get("date", r["created"]))
    if len(releases) > 1 and want("releases"):
        made.append(_releases(plt, releases, out / "releases.png"))
    timed = [s for s in scenarios if s.get("memory_timeline", {}).get("t")]
    if timed and want("memory"):
        made.append(_memory(plt, timed, out / "memory.png"))
    if not made:
        raise CocodeError("nothing to draw: give `cocode bench all --save` or `bench scenario --save` files"
                          + (f" holding what {', '.join(only)} needs" if only else ""), EXIT_CONFIG)
    return made


def _last_with(runs: list[dict], bench: str, key: str) -> tuple[str, list[dict]] | None:
    """The last file whose `bench` results carry samples of `key`, and those results."""
    for r in reversed(runs):
        results = [x for x in r.get("benchmarks", {}).get(bench, []) if x.get("samples", {}).get(key)]
        if results:
            return r["_name"], results
    return None


def _last_sweep(runs: list[dict]) -> tuple[str, list[list[dict]]] | None:
    """The last file whose `bench events` results carry a producers sweep: (name, sweeps)."""
    for r in reversed(runs):
        sweeps = [x["throughput"] for x in r.get("benchmarks", {}).get("events", []) if x.get("throughput")]
        if sweeps:
            return r["_name"], sweeps
    return None


def _spread(values: list[float]) -> tuple[float, float, float]:
    """(median, below, above): an error bar over the repeats."""
    m = statistics.median(values)
    return m, m - min(values), max(values) - m


def _throughput(plt, name: str, sweeps: list[list[dict]], path: Path) -> Path:
    by_n: dict[int, list[dict]] = {}
    for points in sweeps:
        for point in points:
            by_n.setdefault(point["producers"], []).append(point)
    ns = sorted(by_n)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, label in (("events_per_s", "cocode: acked durable events/s"),
                       ("raw_rows_per_s", "raw SQLite rows/s (executemany, 100/commit), just before")):
        m, lo, hi = zip(*(_spread([p[key] for p in by_n[n]]) for n in ns))
        top.errorbar(ns, m, yerr=[lo, hi], marker="o", capsize=4, label=label)
    top.set_ylabel("per second")
    top.set_ylim(bottom=0)
    top.legend(fontsize=8)
    top.grid(True, alpha=0.3)
    m, lo, hi = zip(*(_spread([p["ratio"] for p in by_n[n]]) for n in ns))
    bottom.errorbar(ns, m, yerr=[lo, hi], marker="o", capsize=4, color="tab:green")
    bottom.set_ylabel("cocode / raw SQLite")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    bottom.set_xscale("log", base=2)
    bottom.set_xticks(ns, [str(n) for n in ns])
    bottom.set_xlabel("producers (processes appending at once)")
    fig.suptitle(f"bench events: throughput vs producers, median and range of {len(sweeps)} runs ({name})",
                 fontsize=10)
    return _save(plt, fig, path)


def _release_label(r: dict) -> str:
    code = r.get("code", {})
    commit = code.get("commit", "?")[:7] + ("+" if code.get("modified") else "")
    return (f"{r['release']}\n{commit} {code.get('date', '?')[5:16].replace('T', ' ')}\n"
            f"measured {r['created'][5:16].replace('T', ' ')}, load {r['machine'].get('load_avg_1m', '?')}")


def _releases(plt, runs: list[dict], path: Path) -> Path:
    names = [n for n in baseline.RATIOS if any(n in r["ratios"] for r in runs)]
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 1.7 * len(names) + 1.2), squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        xs, med, lo, hi = [], [], [], []
        for k, r in enumerate(runs):
            if r["ratios"].get(name):
                m, below, above = _spread(r["ratios"][name])
                xs.append(k), med.append(m), lo.append(below), hi.append(above)
        ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=4)
        better = baseline.RATIOS[name][2]
        ax.set_ylabel(f"{name}\n({better} is better)", rotation=0, ha="right", va="center", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xticks(range(len(runs)), [_release_label(r) for r in runs], fontsize=7)
    axes[-1, 0].set_xlim(-0.5, len(runs) - 0.5)
    fig.suptitle("same-run ratios over releases (median, range of the repeats)", fontsize=10)
    return _save(plt, fig, path)


def _samples(results: list[dict], key: str) -> list[float]:
    return sorted(v for r in results for v in r.get("samples", {}).get(key, []))


def _cdf(plt, title: str, series: list[tuple[str, list[float]]], path: Path, log: bool = False) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in series:
        if not values:
            continue
        n = len(values)
        p50 = statistics.median(values)
        ax.step(values, [(i + 1) / n for i in range(n)], where="post",
                label=f"{label}: p50 {p50:.1f} ms, max {values[-1]:.0f} ms (n={n})")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of samples at or below")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig, path)


def _start(plt, jobs: list[dict], name: str, path: Path) -> Path:
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
    ax.set_title(f"submit -> agent exec, 2,000-file repository ({name})")
    ax.legend()
    return _save(plt, fig, path)


def _ratios(plt, runs: list[dict], path: Path) -> Path:
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
    return _save(plt, fig, path)


def _memory(plt, scenarios: list[dict], path: Path) -> Path:
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(8, 2.6 * len(scenarios)), squeeze=False)
    for ax, s in zip(axes[:, 0], scenarios):
        tl = s["memory_timeline"]
        for service, mib in sorted(tl["services_mib"].items()):
            if any(v is not None for v in mib):
                ax.plot(tl["t"], [float("nan") if v is None else v for v in mib], label=service)
        ax.set_title(f"scenario {s.get('scenario')}: {s.get('name', '')} ({s['_name']})", fontsize=9)
        ax.set_xlabel("s since cocode started")
        ax.set_ylabel("RSS MiB")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
