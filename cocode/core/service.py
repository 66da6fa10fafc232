"""How every cocode service process starts and stops, written once.

ServiceBase is the skeleton all six services share: logging, the loop, the bus
publisher, heartbeats, stopping with the supervisor or on SIGTERM, the
service_started/service_stopped events and a clean exit. It has no Appender: the
bus cannot append (it carries appends' results, not appends), and the store
appends to itself without a socket; each says how it records by `record()`.
Service adds what the other four need: an Appender to the store, and Followers.

A service subclasses one of them, fills in setup() and, if it has one,
teardown() (and finish(), for what must outlive the stopped event).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

import zmq

from cocode import __version__
from cocode import envnames
from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.core.follower import Follower
from cocode.core.sockets import publisher
from cocode.config import Config
from cocode.core.loop import Loop
from cocode.osutil import pid_alive
from cocode.paths import Paths

HEARTBEAT_INTERVAL = 1.0
SUPERVISOR_CHECK_S = 0.25  # how soon a service sees that its supervisor died
EAGER_HEARTBEATS = 3.0  # beat every 50 ms this long after start: readiness is seen at once


class Heartbeater:
    """Publishes hb.<service> every second, and quickly right after start.

    The first beats may go out before the bus has the subscriber's subscription;
    beating fast at first makes the supervisor see readiness within ~50 ms.
    """

    def __init__(self, pub: zmq.Socket, service: str, info=lambda: {}) -> None:
        self.pub, self.service, self.info = pub, service, info
        self.born = time.monotonic()

    def __call__(self) -> None:
        try:
            self.pub.send_multipart(wire.heartbeat_frames(self.service, **self.info()), zmq.NOBLOCK)
        except zmq.Again:
            pass
        eager = time.monotonic() - self.born < EAGER_HEARTBEATS
        self.loop.call_later(0.05 if eager else HEARTBEAT_INTERVAL, self)

    def attach(self, loop: Loop) -> None:
        self.loop = loop
        loop.call_later(0.0, self)


def setup_logging(name: str) -> logging.Logger:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s",
    )
    return logging.getLogger(name)


def supervisor_alive() -> bool:
    """The supervisor that started us still runs (always true when none did: run
    by hand or by a Procfile runner, that runner owns our life). Exact at once: its
    death reparents us, so a service that acts on another's "we are stopping"
    event can ask this first, without waiting for its own periodic check."""
    pid = int(os.environ.get(envnames.SUPERVISOR_PID, "0") or 0)
    return not pid or (os.getppid() == pid and pid_alive(pid))


def watch_supervisor(loop: Loop, on_gone: Callable[[], None] | None = None) -> None:
    """Stop (or call on_gone) when the supervisor that started us is gone: no
    orphaned services."""
    if not os.environ.get(envnames.SUPERVISOR_PID):
        return
    gone = False

    def check() -> None:
        nonlocal gone
        if not gone and not supervisor_alive():
            gone = True
            (on_gone or loop.stop)()

    loop.every(SUPERVISOR_CHECK_S, check)


def other_services_alive(paths: Paths, me: str) -> list[int]:
    """Pids of the other services the supervisor started here that still run (by
    their pid files; a reused pid is not a cocode service and does not count)."""
    alive = []
    for pidfile in paths.run.glob("*.pid"):
        if pidfile.stem == me:
            continue
        try:
            pid = int(pidfile.read_text())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                # A forked service's title is one string of words (forkstart.py).
                args = f.read().replace(b"\0", b" ").split()
        except (OSError, ValueError):
            continue
        if b"service" in args and pid_alive(pid):
            alive.append(pid)
    return alive


class ServiceBase:
    """The start/stop skeleton: no Appender, no Follower (see the module docstring)."""

    name = "service"
    linger_ms = 200  # at exit, how long queued messages (the stopped event) may take

    def __init__(self, paths: Paths, config: Config) -> None:
        self.paths = paths
        self.config = config
        self.log = setup_logging(self.name)
        self.ctx = zmq.Context.instance()
        self.loop = Loop()
        self.pub = publisher(self.ctx, paths.endpoint("bus-in"))

    # -- for subclasses ---------------------------------------------------------------

    def setup(self) -> None:
        """Bind/connect what the service needs, register handlers on self.loop."""

    def teardown(self) -> None:
        """Stop owned work before the service records that it stopped."""

    def finish(self) -> None:
        """Last work after the stopped event was recorded, before the sockets close."""

    def heartbeat_info(self) -> dict:
        return {}

    def record(self, event: ev.Event) -> None:
        """Put one of the service's own events in the log (nothing, for the bus)."""

    def on_supervisor_gone(self) -> None:
        """The supervisor died without stopping us (kill -9): stop now."""
        self.loop.stop()

    # -- shared -----------------------------------------------------------------------

    def run(self) -> int:
        self.loop.stop_on_signals()
        watch_supervisor(self.loop, self.on_supervisor_gone)
        self.setup()
        self.record(ev.ServiceStarted(service=self.name, pid=os.getpid(), version=__version__))
        Heartbeater(self.pub, self.name, self.heartbeat_info).attach(self.loop)
        self.log.info("ready pid=%d", os.getpid())
        try:
            self.loop.run()
        finally:
            self.teardown()
            self.record(ev.ServiceStopped(service=self.name, pid=os.getpid()))
            self.finish()
            self.loop.close()
            self.ctx.destroy(linger=self.linger_ms)
            self.log.info("stopped")
        return 0


class Service(ServiceBase):
    """A service that appends through the store's socket and follows the log."""

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__(paths, config)
        self.appender = Appender(
            self.ctx, paths.endpoint("store"), wire.new_producer_id(self.name)
        )
        self.appender.attach(self.loop)

    def snapshot_state(self):
        """The latest snapshot's state (or an empty one): where a follower starts."""
        # Imported here, not at the top: the bus (a ServiceBase) never loads sqlite3.
        from cocode.core import eventlog
        from cocode.core.views import State

        if not self.paths.db.exists():
            return State()
        try:
            return eventlog.start_state(eventlog.open_for_reading(self.paths.db))
        except Exception:
            return State()

    def follow(self, on_event, after: int = 0, types=None) -> Follower:
        follower = Follower(
            self.ctx, self.paths.endpoint("bus"), self.paths.endpoint("store"),
            on_event, after=after, types=types,
        )
        follower.attach(self.loop)
        return follower

    def append(self, event: ev.Event) -> None:
        self.appender.append(event)
        self.appender.flush()

    def record(self, event: ev.Event) -> None:
        self.append(event)

    def finish(self) -> None:
        self.appender.wait(2.0)
