"""Reading the log from outside the services: follow it live, or catch up and stop.

While cocode runs, readers go through the Follower (the store answers, the bus
streams); when it is not running they read the SQLite file directly, read-only.
"""

from __future__ import annotations

import time
from typing import Iterator

import zmq

from cocode import eventlog
from cocode import events as ev
from cocode.client import Follower
from cocode.errors import NotRunningError
from cocode.loop import Loop
from cocode.paths import Paths


def is_running(paths: Paths) -> bool:
    from cocode.supervisor import running_pid

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
    from cocode import state as st

    state = st.State()
    if paths.db.exists():
        state = eventlog.start_state(eventlog.open_for_reading(paths.db))
    return st.replay(events(paths, after=state.seq), state)
