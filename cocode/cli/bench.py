"""`cocode bench jobs|events|logs|monitor|top`: the benchmarks, each printing same-run
ratios against a baseline (or --json). The measuring lives in cocode.bench.
"""

from __future__ import annotations

import click

from cocode.cli.helpers import Env, WholeHelpGroup, main, pass_env, print_json


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
@click.option("--json", "as_json", is_flag=True)
def bench_jobs(count: int, as_json: bool) -> None:
    """Submit->exec against bare `git worktree add`, ready latency, watch cost, dispatch time."""
    from cocode.bench import jobs as bench_jobs_mod

    _show(bench_jobs_mod.run(jobs=count, progress=not as_json), as_json, bench_jobs_mod.report)


@bench.command("events")
@click.option("--count", default=200_000, show_default=True)
@click.option("--producers", default=2, show_default=True)
@click.option("--rate", default=1000, show_default=True, help="Events/s for the latency phase.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def bench_events(env: Env, count: int, producers: int, rate: int, as_json: bool) -> None:
    """Throughput and latency of the real append path, against raw SQLite."""
    from cocode.bench import events as bench_ev

    result = bench_ev.run(env.paths, count=count, producers=producers, rate=rate, progress=not as_json)
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
@click.option("--seconds", default=10.0, show_default=True, help="How long the 5 agents stream 1 MB/s each.")
@click.option("--json", "as_json", is_flag=True)
def bench_top(seconds: float, as_json: bool) -> None:
    """key -> screen and agent output -> visible in `cocode top`, its RSS and CPU."""
    from cocode.bench import top as bench_top_mod

    _show(bench_top_mod.run(seconds=seconds, progress=not as_json), as_json, bench_top_mod.report)
