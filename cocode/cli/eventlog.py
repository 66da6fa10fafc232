"""Commands that act on the event log: `events` (print, follow, with the archive),
`replay` (fold and verify), `schema` (write or check schemas/) and `compact`
(archive old finished jobs). They parse, call the client or cocode.core, and print.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cocode.cli.helpers import Env, main, pass_env, print_json, require_running, warn_unreadable
from cocode.errors import CocodeError, ConfigError


@main.command()
@click.option("--since", default=0, metavar="SEQ", help="Only events after this seq.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("--type", "types", multiple=True, metavar="T", help="Only events of this type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--archived", is_flag=True, help="Also the events compaction moved to .cocode/archive/.")
@pass_env
def events(env: Env, since: int, follow: bool, types: tuple[str, ...], as_json: bool,
           archived: bool = False) -> None:
    """Print the event log."""
    from cocode import client, render
    from cocode.core import events as ev

    for t in types:
        if t not in ev.EVENT_TYPES:
            raise ConfigError(f"unknown event type {t!r} (known: {', '.join(sorted(ev.EVENT_TYPES))})")
    from cocode.core.unreadable import Unreadable

    show = render.event_json_line if as_json else render.event_line
    read = client.archived_then_live if archived else client.events
    unreadable = Unreadable()
    for event in read(env.paths, after=since, follow=follow, types=set(types) or None, unreadable=unreadable):
        click.echo(show(event))
    warn_unreadable(unreadable)


@main.command()
@click.option("--verify", is_flag=True, help="Also fold from scratch and compare.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def replay(env: Env, verify: bool, as_json: bool) -> None:
    """Fold the log into state (from the latest snapshot); --verify compares with a full fold."""
    from cocode.core import eventlog
    from cocode.core.unreadable import Unreadable
    from cocode.core.views import encode_state

    conn = eventlog.open_for_reading(env.paths.db)
    unreadable = Unreadable()
    t0 = time.perf_counter()
    snap = eventlog.load_state(conn, unreadable=unreadable)
    t1 = time.perf_counter()
    warn_unreadable(unreadable)
    out = {"seq": snap.seq, "jobs": len(snap.jobs), "services": len(snap.services),
           "fold_ms": round((t1 - t0) * 1000, 1), "full_fold_ms": None, "identical": None}
    if not as_json:
        click.echo(f"state at seq {snap.seq} from snapshot + tail in {(t1 - t0) * 1000:.0f} ms "
                   f"({len(snap.jobs)} jobs, {len(snap.services)} services)")
    if verify:
        unreadable = Unreadable()
        full = eventlog.load_state(conn, use_snapshot=False, unreadable=unreadable)
        warn_unreadable(unreadable)  # those before the snapshot, if it had hidden them
        t2 = time.perf_counter()
        out["full_fold_ms"] = round((t2 - t1) * 1000, 1)
        out["identical"] = encode_state(full) == encode_state(snap)
        if not as_json:
            click.echo(f"full fold of seq 1..{full.seq} in {(t2 - t1) * 1000:.0f} ms")
        if not out["identical"]:
            if as_json:
                print_json(out)
            raise CocodeError("replay --verify: the snapshot-based state differs from a full fold")
        if not as_json:
            click.echo("verify: identical")
    if as_json:
        print_json(out)


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 if schemas/ is stale.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def schema(check: bool, directory: Path | None, as_json: bool) -> None:
    """Write (or --check) the JSON Schema of events and wire messages in schemas/."""
    from cocode.core import schema as sch

    target = directory or sch.default_dir()
    if check:
        stale = sch.stale_files(target)
        if as_json:
            print_json({"dir": str(target), "stale": list(stale)})
        if stale:
            raise CocodeError(f"{target} is stale ({', '.join(stale)}); run `cocode schema` to regenerate")
        if not as_json:
            click.echo(f"{target} is up to date")
    else:
        written = [str(p) for p in sch.write(target)]
        if as_json:
            print_json({"dir": str(target), "written": written})
        else:
            for path in written:
                click.echo(f"wrote {path}")


@main.command()
@click.option("--older-than", "days", type=click.FloatRange(min=0), default=7.0, show_default=True,
              metavar="DAYS", help="Finished jobs whose runs all ended this long ago.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for the store.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def compact(env: Env, days: float, timeout: float, as_json: bool) -> None:
    """Move old finished jobs' events to an lz4 archive; status and replay stay the same."""
    from cocode import client

    require_running(env.paths)
    before = client.db_bytes(env.paths)
    reply = client.compact(env.paths, days, timeout)
    if as_json:
        print_json({"archive": reply.archive or None, "events": reply.events, "jobs": list(reply.jobs),
                    "older_than_days": days, "db_bytes_before": before,
                    "db_bytes_after": client.db_bytes(env.paths)})
        return
    if not reply.archive:
        click.echo(f"nothing to compact: no finished job older than {days:g} days")
        return
    click.echo(f"archived {reply.events} events of {len(reply.jobs)} jobs to {env.relative(Path(reply.archive))}")
    click.echo(f"events.db: {before / 1024:.0f} KiB -> {client.db_bytes(env.paths) / 1024:.0f} KiB "
               f"(`cocode events --archived` still shows them)")
