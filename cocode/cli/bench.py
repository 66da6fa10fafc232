"""`cocode bench jobs|events|logs|monitor|top|sandbox|checks|up|watch|profiles`: the benchmarks, each printing same-run
ratios against a baseline (or --json); `scenario N` (ADR-005's load scenarios);
`all --save` and `compare` (baselines and the regression alarm). The measuring
lives in cocode.bench.
"""

from __future__ import annotations

import click

from cocode.cli.helpers import Env, WholeHelpGroup, main, pass_env, print_json
from cocode.errors import EXIT_CONFIG, CocodeError


@main.group(cls=WholeHelpGroup)
def bench() -> None:
    """Benchmarks that print same-run ratios against a baseline."""


def _show(result, as_json: bool, report) -> None:
    if as_json:
        print_json(result)
    else:
        click.echo(report(result))


@bench.command("jobs")
@click.option("--jobs", "count", default=15, show_default=True)
@click.option("--sandbox", is_flag=True, help="Agents in bubblewrap on both sides (its start measured too).")
@click.option("--json", "as_json", is_flag=True)
def bench_jobs(count: int, sandbox: bool, as_json: bool) -> None:
    """Submit->exec against bare `git worktree add`, ready latency, watch cost, dispatch time."""
    from cocode.bench import jobs as bench_jobs_mod

    _show(bench_jobs_mod.run(jobs=count, progress=not as_json, sandbox=sandbox), as_json, bench_jobs_mod.report)


@bench.command("events")
@click.option("--count", default=200_000, show_default=True)
@click.option("--producers", default=2, show_default=True)
@click.option("--rate", default=1000, show_default=True, help="Events/s for the latency phase.")
@click.option("--sweep", default="", metavar="N,N,...",
              help="Also throughput for each number of producers (e.g. 1,2,4,8), each against raw SQLite.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def bench_events(env: Env, count: int, producers: int, rate: int, sweep: str, as_json: bool) -> None:
    """Throughput and latency of the real append path, against raw SQLite."""
    from cocode.bench import events as bench_ev

    try:
        counts = [int(n) for n in sweep.split(",") if n.strip()]
    except ValueError:
        raise CocodeError(f"--sweep {sweep!r}: give producer counts separated by commas, e.g. 1,2,4,8",
                          EXIT_CONFIG) from None
    result = bench_ev.run(env.paths, count=count, producers=producers, rate=rate, progress=not as_json,
                          sweep_producers=counts)
    _show(result, as_json, bench_ev.report)


@bench.command("logs")
@click.option("--seconds", default=10.0, show_default=True, help="How long the 5 agents write 1 MB/s each.")
@click.option("--mb", "total_mb", default=200, show_default=True, help="MB pushed through the collector.")
@click.option("--format", "fmt", is_flag=True, help="Also 5 agents writing claude stream-json, made readable.")
@click.option("--json", "as_json", is_flag=True)
def bench_logs(seconds: float, total_mb: int, fmt: bool, as_json: bool) -> None:
    """agent -> `cocode tail` latency, collector throughput against `cat > file`, collector RSS."""
    from cocode.bench import logs as bench_logs_mod

    _show(bench_logs_mod.run(seconds=seconds, total_mb=total_mb, progress=not as_json, fmt=fmt), as_json,
          bench_logs_mod.report)


@bench.command("monitor")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each CPU measurement.")
@click.option("--json", "as_json", is_flag=True)
def bench_monitor(seconds: float, as_json: bool) -> None:
    """Monitor CPU with 10 runs x 10 processes, limit->SIGTERM latency, services' RSS."""
    from cocode.bench import monitor as bench_mon

    _show(bench_mon.run(seconds=seconds, progress=not as_json), as_json, bench_mon.report)


@bench.command("top")
@click.option("--seconds", default=10.0, show_default=True,
              help="How long the 5 agents stream 1 MB/s each (at least 5: the first 1.5 s are warm-up).")
@click.option("--json", "as_json", is_flag=True)
def bench_top(seconds: float, as_json: bool) -> None:
    """key -> screen and agent output -> visible in `cocode top`, its RSS and CPU."""
    from cocode.bench import top as bench_top_mod

    _show(bench_top_mod.run(seconds=seconds, progress=not as_json), as_json, bench_top_mod.report)


@bench.command("up")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--json", "as_json", is_flag=True)
def bench_up(rounds: int, as_json: bool) -> None:
    """`cocode up --detach` to all ready against a floor of bare Pythons; idle services' RSS."""
    from cocode.bench import startup

    _show(startup.run(rounds=rounds, progress=not as_json), as_json, startup.report)


@bench.command("watch")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def bench_watch(runs: int, seconds: float, as_json: bool) -> None:
    """The worker's CPU per watched run (idle agents), over its CPU with no run."""
    from cocode.bench import watchcost

    _show(watchcost.run(runs=runs, seconds=seconds, progress=not as_json), as_json, watchcost.report)


@bench.command("profiles")
@click.option("--agents", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(min=0.5),
              help="How long each agent runs.")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1, 10))
@click.option("--size", "size_mb", default=20.0, show_default=True, type=click.FloatRange(min=1),
              help="Repository MB.")
@click.option("--json", "as_json", is_flag=True)
def bench_profiles(agents: int, seconds: float, rounds: int, size_mb: float, as_json: bool) -> None:
    """The same job under the low, medium and high profiles: start, job time over its floor, memory."""
    from cocode.bench import profiles

    _show(profiles.run(agents=agents, seconds=seconds, size_mb=size_mb, rounds=rounds, progress=not as_json), as_json,
          profiles.report)


@bench.command("scenario")
@click.argument("which", type=click.Choice(["1", "2", "3", "4", "5", "all"]))
@click.option("--quick", is_flag=True, help="CI sizes: all five in a few minutes.")
@click.option("--size", "size_mb", type=click.FloatRange(min=1), help="Repository MB (scenarios 1 and 5).")
@click.option("--minutes", type=click.FloatRange(min=0.1), help="How long agents run (scenario 3).")
@click.option("--seconds", type=click.FloatRange(min=1), help="How long agents log (scenario 2).")
@click.option("--save", "save", type=click.Path(dir_okay=False, writable=True),
              help="Also write the results to this JSON file (for `cocode bench plot`).")
def bench_scenario(which: str, quick: bool, size_mb: float | None, minutes: float | None,
                   seconds: float | None, save: str | None) -> None:
    """ADR-005's load scenarios as JSON; exit 1 when one misses an ADR-005 target."""
    import json
    from pathlib import Path

    from cocode.bench import scenarios

    chosen = list(scenarios.SCENARIOS) if which == "all" else [int(which)]
    results = []
    for n in chosen:
        opts = {1: {"size_mb": size_mb}, 2: {"seconds": seconds}, 3: {"minutes": minutes},
                4: {}, 5: {"size_mb": size_mb}}[n]
        result = scenarios.SCENARIOS[n](quick, **opts)
        print_json(result)
        results.append(result)
        if save:  # after each, so a later scenario's failure keeps the earlier ones
            Path(save).write_text(json.dumps({"scenarios": results}, indent=1) + "\n")
    if not all(r["ok"] for r in results):
        missed = [f"{r['scenario']}:{k}" for r in results for k, c in r["adr005"].items() if not c["ok"]]
        raise CocodeError(f"ADR-005 targets missed: {', '.join(missed)}")


@bench.command("all")
@click.option("--save", "save", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Write every result, the machine and the ratios to this JSON file.")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1, 20),
              help="Runs of each benchmark (their spread is the noise compare allows).")
@click.option("--quick", is_flag=True, help="Smaller sizes: minutes, not a quarter hour.")
@click.option("--only", multiple=True, type=click.Choice(["jobs", "events", "logs", "monitor"]))
@click.option("--release", metavar="NAME", help="This file is the baseline of release NAME (`bench plot`'s releases.png).")
def bench_all(save: str, repeat: int, quick: bool, only: tuple[str, ...], release: str | None) -> None:
    """Every benchmark `repeat` times, saved as a baseline for `cocode bench compare`."""
    import json
    from pathlib import Path

    from cocode.bench import baseline

    result = baseline.run_all(repeat, quick, list(only) or None, say=lambda m: click.echo(m, err=True),
                              release=release)
    Path(save).write_text(json.dumps(result, indent=1) + "\n")
    click.echo(f"saved {save}: " + ", ".join(f"{k} {sorted(v)}" for k, v in result["ratios"].items()))


@bench.command("compare")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def bench_compare(old: str, new: str, as_json: bool) -> None:
    """Compare two `bench all --save` files by their same-run ratios; exit 1 when one
    got more than 10% worse beyond its measured noise."""
    from cocode.bench import baseline

    rows = baseline.compare(baseline.load(old), baseline.load(new))
    if not rows:
        raise CocodeError(f"{old} and {new} share no ratio: save both with `cocode bench all`", EXIT_CONFIG)
    _show(rows, as_json, baseline.table)
    bad = [r["ratio"] for r in rows if r["regressed"]]
    if bad:
        raise CocodeError(f"regressed more than 10% beyond noise: {', '.join(bad)}")


@bench.command("plot")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", default="bench-plots", show_default=True, type=click.Path(file_okay=False))
@click.option("--only", default="", metavar="NAME,...",
              help="Draw only these figures (start, ratios, cdf_start, cdf_ready, cdf_tail, throughput, releases, memory).")
def bench_plot(files: tuple[str, ...], out: str, only: str) -> None:
    """PNGs (CDFs, memory, ratios, throughput, releases) from `bench all --save` and `bench scenario --save` files
    (needs the extra cocode[plots])."""
    from pathlib import Path

    from cocode.bench import plot

    chosen = [n.strip() for n in only.split(",") if n.strip()] or None
    for path in plot.plot([Path(f) for f in files], Path(out), chosen):
        click.echo(str(path))


@bench.command("sandbox")
@click.option("--jobs", "count", default=15, show_default=True, help="Submissions per mode.")
@click.option("--seconds", default=4.0, show_default=True, help="How long each writer agent writes.")
@click.option("--json", "as_json", is_flag=True)
def bench_sandbox(count: int, seconds: float, as_json: bool) -> None:
    """Submit->exec with and without the agent sandbox, bwrap alone, tail latency inside vs outside."""
    from cocode.bench import sandbox as bench_sb

    _show(bench_sb.run(jobs=count, seconds=seconds, progress=not as_json), as_json, bench_sb.report)


@bench.command("checks")
@click.option("--samples", default=20, show_default=True, help="Jobs for the start-latency part.")
@click.option("--json", "as_json", is_flag=True)
def bench_checks(samples: int, as_json: bool) -> None:
    """Ready commit -> check started; 5 runs x 2 s checks under a cap of 3 against the ideal."""
    from cocode.bench import checks as bench_checks_mod

    _show(bench_checks_mod.run(samples=samples, progress=not as_json), as_json, bench_checks_mod.report)
