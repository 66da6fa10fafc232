"""The one way a short-lived process (the CLI, a benchmark, an external script)
reaches a running cocode: is it up, ask the supervisor, read the log (live through
the store and bus, or from the SQLite file when nothing runs; with the archive
segments too), fold the state now, append events and wait for their ack, ask the
store to compact. The services never import this module; circus pairs its
client.py with its daemon the same way.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import msgspec
import zmq

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.unreadable import Unreadable
from cocode.core.views import State
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.core.follower import Follower
from cocode.core.loop import Loop
from cocode.core.sockets import dealer, requester
from cocode.errors import CocodeError, NotRunningError
from cocode.lock import running_pid
from cocode.paths import Paths
from cocode.runkey import RunKey


def request(paths: Paths, cmd: str, timeout: float = 2.0) -> dict | None:
    """Ask the supervisor; None when nobody answers."""
    paths.check_socket_dir()
    ctx = zmq.Context.instance()
    sock = requester(ctx, paths.endpoint("supervisor"))
    try:
        sock.send(msgspec.json.encode({"cmd": cmd}))
        if not sock.poll(int(timeout * 1000)):
            return None
        return msgspec.json.decode(sock.recv())
    finally:
        sock.close(0)


def is_running(paths: Paths) -> bool:
    """A supervisor holds the lock, or (services run without one, by a Procfile
    runner) a store listens. A socket file alone proves nothing: a supervisor
    killed hard leaves them, and waiting on them took seconds to say "not running"."""
    paths.check_socket_dir()
    return bool(running_pid(paths)) or _listening(paths.socket_dir / "store.ipc")


def _listening(path) -> bool:
    """Whether a process accepts connections on the unix socket `path` (a refused
    connect is immediate; ZeroMQ would instead retry quietly forever)."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def not_running(paths: Paths) -> NotRunningError:
    return NotRunningError(f"cocode is not running in {paths.root}; start it with `cocode up`")


def events(
    paths: Paths, after: int = 0, follow: bool = False, types: set[str] | None = None,
    idle_timeout: float = 5.0, unreadable: Unreadable | None = None,
) -> Iterator[ev.Event]:
    """The log after `after`; events this cocode cannot decode are counted in `unreadable`."""
    if not is_running(paths):
        if follow:
            raise not_running(paths)
        if not paths.db.exists():
            return
        conn = eventlog.open_for_reading(paths.db)
        for event in eventlog.iter_events(conn, after=after, unreadable=unreadable):
            if types is None or event.type in types:
                yield event
        return
    yield from follow_events(paths, after, follow, types, idle_timeout, unreadable)


def follow_events(paths, after, follow, types, idle_timeout, unreadable=None) -> Iterator[ev.Event]:
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
        if unreadable is not None:
            for _ in range(follower.dropped):  # the store's frames carry no seq or type to show
                unreadable.note()
        follower.close()
        loop.close()


def current_state(paths: Paths, unreadable: Unreadable | None = None):
    """The folded state now: the latest snapshot plus every event after it; the
    events this cocode could not decode (another version wrote them) are counted in
    `unreadable`, so the caller can say the state is partial."""
    state = State()
    if paths.db.exists():
        state = eventlog.start_state(eventlog.open_for_reading(paths.db), unreadable)
    return st.replay(events(paths, after=state.seq, unreadable=unreadable), state)


def archived_then_live(
    paths: Paths, after: int = 0, follow: bool = False, types: set[str] | None = None,
    unreadable: Unreadable | None = None,
) -> Iterator[ev.Event]:
    """The archive segments and the live table merged by seq, then (follow) live."""
    last = after
    if paths.db.exists():
        conn = eventlog.open_for_reading(paths.db)
        try:
            for event in eventlog.iter_all_events(conn, after=after, unreadable=unreadable):
                last = event.seq
                if types is None or event.type in types:
                    yield event
        finally:
            conn.close()
    if follow:
        yield from events(paths, after=last, follow=True, types=types, unreadable=unreadable)


@contextmanager
def appending(paths: Paths, producer: str = "cli", timeout: float = 15.0,
              what: str = "") -> Iterator[Callable[[ev.Event], None]]:
    """`with appending(paths) as append:` append events; on leaving, wait for every ack."""
    app = Appender(zmq.Context.instance(), paths.endpoint("store"), wire.new_producer_id(producer))
    try:
        yield app.append
        if not app.wait(timeout):
            raise CocodeError(
                f"the store did not confirm {what}within {timeout:.0f} s "
                f"({app.refused or 'no answer'}); see `cocode ps`"
            )
    finally:
        app.close()


def append_one(paths: Paths, event: ev.Event, timeout: float = 15.0) -> None:
    """Append one event from a short-lived process (the CLI) and wait for its ack."""
    with appending(paths, timeout=timeout) as append:
        append(event)


def compact(paths: Paths, older_than_days: float, timeout: float = 300.0) -> wire.CompactDone:
    """Ask the store to archive finished jobs older than this; its answer, or an error."""
    sock = dealer(zmq.Context.instance(), paths.endpoint("store"))
    try:
        sock.send(wire.encoder.encode(wire.Compact(older_than_days=older_than_days)))
        if not sock.poll(int(timeout * 1000)):
            raise CocodeError(f"the store did not answer within {timeout:.0f} s; see `cocode ps`")
        reply = wire.reply_decoder.decode(sock.recv())
    finally:
        sock.close(0)
    if not isinstance(reply, wire.CompactDone):
        raise CocodeError(f"unexpected answer from the store: {type(reply).__name__}")
    if reply.error:
        raise CocodeError(reply.error)
    return reply


def db_bytes(paths: Paths) -> int:
    """The event log's size on disk (the database and its write-ahead log)."""
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(str(paths.db) + suffix)
        except OSError:
            pass
    return total


def find_run(state, job_id: str, agent: str | None = None):
    """The job (and agent) named on a command line or picked in `cocode top`, or a
    one-line error naming where the right names are."""
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    if agent and agent not in job.runs:
        raise CocodeError(f"job {job_id} has no agent {agent!r} (it has {', '.join(job.agents)})")
    return job


def cancel(paths: Paths, job_id: str, agent: str | None = None, state=None):
    """Record a cancel of one run, or of every run of the job; returns the job view.
    `cocode cancel` and `cocode top` both stop runs through this."""
    job = find_run(state if state is not None else current_state(paths), job_id, agent)
    if not is_running(paths):
        raise not_running(paths)
    append_one(paths, ev.CancelRequested(job=job_id, agent=agent or ""))
    return job


def run_diff(paths: Paths, job_id: str, agent: str, state=None) -> tuple[str, str]:
    """(the branch's head, the patch from the job's base to it): the diff view of
    `cocode top`, byte for byte what `cocode diff JOB AGENT` prints into a pipe (both
    call gitops.diff_text)."""
    from cocode import gitops

    state = state if state is not None else current_state(paths)
    job = state.jobs.get(job_id)
    if job is None or agent not in job.runs:
        raise CocodeError(f"no run {job_id}/{agent}; `cocode status` lists them")
    head = gitops.BranchWatcher(paths.root, RunKey(job_id, agent).branch).head()
    if head is None:
        raise CocodeError(f"run {job_id}/{agent} has no branch yet (state {job.runs[agent].state})")
    return head, gitops.diff_text(paths.root, job.base_sha, head)
