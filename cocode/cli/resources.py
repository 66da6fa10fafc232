"""The resource-governance commands (issue 5): `metrics`, `clean`, `compact` and
`bench monitor`, plus the helpers `up --metrics-port` and `events --archived` use.

Kept apart from cocode/cli.py only to keep that file small; the same rule holds:
parse, call the library, print. cli.py registers these on its group.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import click

from cocode.errors import CocodeError, ConfigError


def _env():
    from cocode.cli import Env

    return click.get_current_context().find_object(Env)


def _print_json(obj) -> None:
    from cocode.cli import print_json

    print_json(obj)


def _require_running(paths) -> None:
    from cocode import client

    if not client.is_running(paths):
        raise client.not_running(paths)


# -- helpers for commands in cli.py ------------------------------------------------------------------


def metrics_port_env(port: int) -> None:
    """Check `up --metrics-port` and hand it to the monitor through the environment."""
    from cocode.resources.http import PORT_ENV

    if not 1 <= port <= 65535:
        raise ConfigError(f"--metrics-port = {port} is not a port (1..65535)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as err:
        raise ConfigError(f"--metrics-port = {port}: 127.0.0.1:{port} is not free ({err.strerror})") from None
    finally:
        probe.close()
    os.environ[PORT_ENV] = str(port)


def archived_then_live(paths, since: int, follow: bool, types: set[str] | None):
    """`events --archived`: archive segments and the live table merged by seq, then live."""
    from cocode import client
    from cocode.core import eventlog

    last = since
    if paths.db.exists():
        conn = eventlog.open_for_reading(paths.db)
        try:
            for event in eventlog.iter_all_events(conn, after=since):
                last = event.seq
                if types is None or event.type in types:
                    yield event
        finally:
            conn.close()
    if follow:
        yield from client.events(paths, after=last, follow=True, types=types)


# -- commands --------------------------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="All of it as one JSON object.")
@click.option("--prometheus", is_flag=True, help="The Prometheus text exposition format.")
def metrics(as_json: bool, prometheus: bool) -> None:
    """ADR-005's metrics: execution time, memory, log throughput, limits hit, ..."""
    from cocode.resources import metrics as m
    from cocode import client

    env = _env()
    if as_json and prometheus:
        raise ConfigError("give --json or --prometheus, not both")
    running = client.is_running(env.paths)
    wait = max(3.0, 2.5 * env.config.limits.monitor_interval_ms / 1000)
    summary = m.collect(env.paths, running, timeout=wait)
    if as_json:
        _print_json(summary)
    elif prometheus:
        click.echo(m.prometheus(summary), nl=False)
    else:
        click.echo(m.table(summary))


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would go; remove nothing.")
@click.option("--older-than", "days", type=click.FloatRange(min=0), metavar="DAYS",
              help="Runs that ended this long ago (default: worktree_idle_days).")
@click.option("--hard", is_flag=True, help="Also delete run branches never picked or merged.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before destroying work (--hard).")
@click.option("--auto", is_flag=True, hidden=True, help="The monitor's hourly idle cleanup.")
def clean(dry_run: bool, days: float | None, hard: bool, yes: bool, auto: bool) -> None:
    """Remove idle worktrees of finished runs (their branches and commits stay)."""
    from cocode.jobs import clean as cl
    from cocode import client
    from cocode.core.appender import Appender
    from cocode.core import wire

    env = _env()
    paths = env.paths
    if days is None:
        days = float(env.config.limits.worktree_idle_days)
    if auto:
        hard, yes = False, False
    state = client.current_state(paths)
    now = time.time()
    runs = cl.final_runs(state, now, days)
    actions = cl.plan(runs, cl.gather(paths.root, runs, branches=hard), now, days, hard)
    if not actions:
        if not auto:
            click.echo(f"nothing to clean: no worktree of a run that ended over {days:g} days ago")
        return
    for a in actions:
        if not auto:
            click.echo(a.line(dry_run))
    todo = [a for a in actions if a.kind != "keep"]
    if dry_run or not todo:
        return
    _require_running(paths)
    if cl.needs_confirmation(todo) and not yes:
        lost = "; ".join(f"{a.target}: {a.destroys or a.why}" for a in todo if a.destroys or a.kind == "delete_branch")
        try:
            ok = click.confirm(f"this destroys work ({lost}). Go on?", default=False)
        except click.Abort:
            ok = False
        if not ok:
            raise CocodeError("nothing removed (not confirmed; --yes skips the question)")
    import zmq

    app = Appender(zmq.Context.instance(), paths.endpoint("store"), wire.new_producer_id("clean"))
    try:
        reason = "idle" if auto else ("cocode clean --hard" if hard else "cocode clean")
        for line in cl.execute(paths.root, todo, app.append, reason):
            if not auto:
                click.echo(line)
        if not app.wait(15.0):
            raise CocodeError("the store did not confirm the cleanup events within 15 s; see `cocode ps`")
    finally:
        app.close()


@click.command()
@click.option("--older-than", "days", type=click.FloatRange(min=0), default=7.0, show_default=True,
              metavar="DAYS", help="Finished jobs whose runs all ended this long ago.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for the store.")
def compact(days: float, timeout: float) -> None:
    """Move old finished jobs' events to an lz4 archive; status and replay stay the same."""
    import zmq

    from cocode.core import wire
    from cocode.core.sockets import dealer

    env = _env()
    _require_running(env.paths)
    before = _db_bytes(env.paths.db)
    sock = dealer(zmq.Context.instance(), env.paths.endpoint("store"))
    try:
        sock.send(wire.encoder.encode(wire.Compact(older_than_days=days)))
        if not sock.poll(int(timeout * 1000)):
            raise CocodeError(f"the store did not answer within {timeout:.0f} s; see `cocode ps`")
        reply = wire.reply_decoder.decode(sock.recv())
    finally:
        sock.close(0)
    if not isinstance(reply, wire.Compacted):
        raise CocodeError(f"unexpected answer from the store: {type(reply).__name__}")
    if reply.error:
        raise CocodeError(reply.error)
    if not reply.archive:
        click.echo(f"nothing to compact: no finished job older than {days:g} days")
        return
    click.echo(f"archived {reply.events} events of {len(reply.jobs)} jobs to {env.relative(Path(reply.archive))}")
    click.echo(f"events.db: {before / 1024:.0f} KiB -> {_db_bytes(env.paths.db) / 1024:.0f} KiB "
               f"(`cocode events --archived` still shows them)")


def _db_bytes(db) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(str(db) + suffix)
        except OSError:
            pass
    return total


@click.command("monitor")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each CPU measurement.")
@click.option("--json", "as_json", is_flag=True)
def bench_monitor(seconds: float, as_json: bool) -> None:
    """Monitor CPU with 10 runs x 10 processes, limit->SIGTERM latency, services' RSS."""
    from cocode.bench import monitor as bench_mon

    result = bench_mon.run(seconds=seconds, progress=not as_json)
    if as_json:
        _print_json(result)
    else:
        click.echo(bench_mon.report(result))


def register(main: click.Group, bench: click.Group) -> None:
    for command in (metrics, clean, compact):
        main.add_command(command)
    bench.add_command(bench_monitor)

