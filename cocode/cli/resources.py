"""Commands that act on resources: `metrics` (ADR-005's numbers as a table, JSON or
Prometheus text) and `clean` (idle worktrees, and with --hard unmerged branches).
They parse, call cocode.resources, cocode.jobs.clean and the client, and print.
"""

from __future__ import annotations

import time

import click

from cocode.cli.helpers import Env, main, pass_env, print_json, read_state, require_running
from cocode.errors import CocodeError, ConfigError


@main.command()
@click.option("--json", "as_json", is_flag=True, help="All of it as one JSON object.")
@click.option("--prometheus", is_flag=True, help="The Prometheus text exposition format.")
@pass_env
def metrics(env: Env, as_json: bool, prometheus: bool) -> None:
    """ADR-005's metrics: run times, memory, log throughput, limits hit and more."""
    from cocode import client
    from cocode.resources import exposition, metrics as m

    if as_json and prometheus:
        raise ConfigError("give --json or --prometheus, not both")
    running = client.is_running(env.paths)
    wait = max(3.0, 2.5 * env.config.limits.monitor_interval_ms / 1000)
    summary = m.collect(env.paths, running, timeout=wait)
    if as_json:
        click.echo(exposition.json(summary))
    elif prometheus:
        click.echo(exposition.prometheus(summary), nl=False)
    else:
        click.echo(exposition.table(summary, env.colour), color=env.colour)


@main.command()
@click.option("--dry-run", is_flag=True, help="List what would go; remove nothing.")
@click.option("--older-than", "days", type=click.FloatRange(min=0), metavar="DAYS",
              help="Runs that ended this long ago (default: worktree_idle_days).")
@click.option("--hard", is_flag=True, help="Also delete run branches never picked or merged.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before destroying work (--hard).")
@click.option("--json", "as_json", is_flag=True, help="The plan and what was done, as one object.")
@click.option("--auto", is_flag=True, hidden=True, help="The monitor's hourly idle cleanup.")
@pass_env
def clean(env: Env, dry_run: bool, days: float | None, hard: bool, yes: bool, as_json: bool,
          auto: bool) -> None:
    """Remove idle worktrees of finished runs (their branches and commits stay)."""
    from cocode import client
    from cocode.jobs import agents
    from cocode.jobs import clean as cl

    paths = env.paths
    if days is None:
        days = float(env.config.limits.worktree_idle_days)
    if auto:
        hard, yes, as_json = False, False, False
    quiet = auto or as_json
    state = read_state(paths)
    now = time.time()
    runs = cl.final_runs(state, now, days)
    actions = cl.plan(runs, cl.gather(paths.root, runs, branches=hard), now, days, hard)
    todo = [a for a in actions if a.kind != "keep"]
    leftovers = cl.tmp_leftovers(paths.tmp, state, agents.merge_agents(env.config.agents), actions)
    report = {"dry_run": dry_run, "older_than_days": days, "hard": hard,
              "actions": [_action_json(a) for a in actions], "done": [],
              "tmp": [str(p) for p in leftovers]}
    if not actions and not leftovers and not quiet:
        click.echo(f"nothing to clean: no worktree of a run that ended over {days:g} days ago")
    for a in actions if not quiet else ():
        click.echo(a.line(dry_run))
    if not dry_run:  # private scratch of finished runs: nothing recorded, nothing to confirm
        for line in cl.remove_tmp(leftovers):
            report["done"].append(line)
            if not quiet:
                click.echo(line)
    elif not quiet:
        for p in leftovers:
            click.echo(f"would remove {p}")
    if not (dry_run or not todo):
        require_running(paths)
        if cl.needs_confirmation(todo) and not yes:
            if as_json:
                raise ConfigError("this destroys work and --json cannot ask: add --yes, or --dry-run first")
            lost = "; ".join(f"{a.target}: {a.destroys or a.why}" for a in todo if a.destroys or a.kind == "delete_branch")
            try:
                ok = click.confirm(f"this destroys work ({lost}). Go on?", default=False)
            except click.Abort:
                ok = False
            if not ok:
                raise CocodeError("nothing removed (not confirmed; --yes skips the question)")
        reason = "idle" if auto else ("cocode clean --hard" if hard else "cocode clean")
        with client.appending(paths, "clean", what="the cleanup events ") as append:
            for line in cl.execute(paths.root, todo, append, reason):
                report["done"].append(line)
                if not quiet:
                    click.echo(line)
    if as_json:
        print_json(report)


def _action_json(a) -> dict:
    return {"kind": a.kind, "job": a.run.job, "agent": a.run.agent, "target": a.target,
            "why": a.why, "destroys": a.destroys or None}
