"""The one way a short-lived process (the CLI, a benchmark, an external script)
reaches a running cocode: is it up, ask the supervisor, read the log (live through
the store and bus, or from the SQLite file when nothing runs), fold the state now,
append an event and wait for its ack. The services never import this module;
circus pairs its client.py with its daemon the same way.
"""

from __future__ import annotations

import fcntl
import time
from typing import Iterator

import msgspec
import zmq

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.core.follower import Follower
from cocode.core.loop import Loop
from cocode.errors import CocodeError, NotRunningError
from cocode.paths import Paths


def running_pid(paths: Paths) -> int | None:
    """The supervisor's pid if one holds the lock, else None."""
    if not paths.lock.exists():
        return None
    with open(paths.lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def request(paths: Paths, cmd: str, timeout: float = 2.0) -> dict | None:
    """Ask the supervisor; None when nobody answers."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(paths.endpoint("supervisor"))
        sock.send(msgspec.json.encode({"cmd": cmd}))
        if not sock.poll(int(timeout * 1000)):
            return None
        return msgspec.json.decode(sock.recv())
    finally:
        sock.close(0)


def is_running(paths: Paths) -> bool:
    return bool(running_pid(paths)) or (paths.socket_dir / "store.ipc").exists()


def not_running(paths: Paths) -> NotRunningError:
    return NotRunningError(f"cocode is not running in {paths.root}; start it with `cocode up`")


def events(
    paths: Paths, after: int = 0, follow: bool = False, types: set[str] | None = None,
    idle_timeout: float = 5.0,
) -> Iterator[ev.Event]:
    if not is_running(paths):
        if follow:
            raise not_running(paths)
        if not paths.db.exists():
            return
        conn = eventlog.open_for_reading(paths.db)
        for event in eventlog.iter_events(conn, after=after):
            if types is None or event.type in types:
                yield event
        return
    yield from follow_events(paths, after, follow, types, idle_timeout)


def follow_events(paths, after, follow, types, idle_timeout) -> Iterator[ev.Event]:
    ctx = zmq.Context.instance()
    loop = Loop()
    got: list[ev.Event] = []
    follower = Follower(
        ctx, paths.endpoint("bus"), paths.endpoint("store"), got.append, after=after, types=types
    )
    follower.attach(loop)
    try:
        idle_since, seen = time.monotonic(), follower.last
        while True:
            loop.run_once(0.1)
            # Without --follow: the log as it stood when the store first answered.
            # Chasing the head would never end while producers keep appending.
            done = not follow and follower.synced_once
            if follower.last != seen:  # progress, even if --type filtered it all out
                idle_since, seen = time.monotonic(), follower.last
            if got:
                batch, got[:] = list(got), []
                yield from batch
            if done:
                return
            if not follow and time.monotonic() - idle_since > idle_timeout:
                raise not_running(paths)  # seconds of silence, not loop turns
    finally:
        follower.close()
        loop.close()


def current_state(paths: Paths):
    """The folded state now: the latest snapshot plus every event after it."""
    state = st.State()
    if paths.db.exists():
        state = eventlog.start_state(eventlog.open_for_reading(paths.db))
    return st.replay(events(paths, after=state.seq), state)


def append_one(paths, event: ev.Event, timeout: float = 15.0) -> None:
    """Append one event from a short-lived process (the CLI) and wait for its ack."""
    app = Appender(zmq.Context.instance(), paths.endpoint("store"), wire.new_producer_id("cli"))
    try:
        app.append(event)
        if not app.wait(timeout):
            raise CocodeError(
                f"the store did not confirm within {timeout:.0f} s ({app.refused or 'no answer'}); see `cocode ps`"
            )
    finally:
        app.close()
