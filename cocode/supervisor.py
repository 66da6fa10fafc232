"""`cocode up`: the service table, and the supervisor that runs it.

The table below is the one list of cocode's processes; the Procfile, `cocode
service NAME` and the supervisor all read it. The supervisor starts services in
table order (bus and store first), marks each ready at its first heartbeat,
restarts a crashed one with exponential backoff, stops restarting one that
crashes too often (recording why, as an event), and on the way down sends
SIGTERM in reverse order, waits a grace period, then SIGKILL.
It answers `ps` and `stop` on a private REP socket.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.sockets import FAST_RECONNECT_MS, ZMQ_DEFAULT_HWM, replier, subscriber
from cocode.core.appender import Appender
from cocode.errors import CocodeError
from cocode import envnames, forkstart, started_pipe
from cocode.core.loop import Loop, drain
from cocode.osutil import read_last_line
from cocode.paths import Paths
from cocode.launcher import SERVICE_NAMES
from cocode.lock import acquire_lock, release_lock


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    core: bool = False  # started first, stopped last: everything else needs them

    @property
    def module(self) -> str:
        return f"cocode.services.{self.name}"


SERVICES: tuple[ServiceSpec, ...] = tuple(
    ServiceSpec(name, core=name in ("bus", "store")) for name in SERVICE_NAMES
)

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 10.0
CRASH_LIMIT = 5  # more crashes than this within CRASH_WINDOW: give up
CRASH_WINDOW = 60.0
STOP_GRACE = 5.0

log = logging.getLogger("supervisor")


def procfile_text() -> str:
    return "".join(f"{s.name}: cocode service {s.name}\n" for s in SERVICES)


class ServiceStatus(msgspec.Struct):
    name: str
    pid: int | None
    state: str
    uptime_s: float
    restarts: int
    reason: str = ""


class Request(msgspec.Struct):
    cmd: str


@dataclass
class Child:
    spec: ServiceSpec
    proc: subprocess.Popen | None = None
    state: str = "stopped"  # starting, ready, backoff, failed, stopping, stopped
    started_at: float = 0.0
    restarts: int = 0
    crashes: deque = field(default_factory=deque)
    next_start: float = 0.0
    reason: str = ""

    def status(self) -> ServiceStatus:
        alive = self.proc is not None and self.proc.poll() is None
        return ServiceStatus(
            name=self.spec.name,
            pid=self.proc.pid if alive else None,
            state=self.state,
            uptime_s=round(time.time() - self.started_at, 3) if alive else 0.0,
            restarts=self.restarts,
            reason=self.reason,
        )


class Supervisor:
    def __init__(self, paths: Paths, env: dict[str, str] | None = None) -> None:
        self.paths = paths
        paths.ensure_private_dirs()
        self.service_logs = paths.home / "logs" / "services"
        self.service_logs.mkdir(parents=True, exist_ok=True)
        self.lock_file = acquire_lock(paths)
        self.started_fd = started_pipe.take_started_fd()  # before self.env: no service gets it
        self.env = dict(env or os.environ)
        self.env[envnames.SUPERVISOR_PID] = str(os.getpid())
        self.children = {s.name: Child(s) for s in SERVICES}
        # Read before any socket or thread exists: the first start forks from here.
        self.config = forkstart.preload(paths)
        self.all_ready_once = False
        self.startup_failed: str | None = None

    def open_sockets(self) -> None:
        self.ctx = zmq.Context.instance()
        self.control = replier(self.ctx, self.paths.endpoint("supervisor"))
        # Heartbeats only, a few a second: libzmq's default queue. The bus just
        # forked may not have bound yet: its first beat should not wait 100 ms.
        self.sub = subscriber(self.ctx, self.paths.endpoint("bus"), [wire.HEARTBEAT_TOPIC],
                              hwm=ZMQ_DEFAULT_HWM, reconnect_ms=FAST_RECONNECT_MS)
        self.appender = Appender(self.ctx, self.paths.endpoint("store"), wire.new_producer_id("supervisor"))
        self.loop = Loop()

    # -- processes -------------------------------------------------------------------

    def start_all(self) -> None:
        """The first start: forked from this still single-threaded process (see
        forkstart.py), or spawned when the config could not be read here."""
        if self.config is None:
            for child in self.children.values():
                self.spawn(child)
            return
        forkstart.freeze()
        for child in self.children.values():
            child.proc = forkstart.fork_service(
                self.paths, self.config, child.spec.name, self.log_path(child), os.getpid(),
                owned=(self.lock_file,))
            self.started(child)

    def spawn(self, child: Child) -> None:
        out = open(self.log_path(child), "ab")
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "cocode", "-C", str(self.paths.root), "service", child.spec.name],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=self.env, start_new_session=True, close_fds=True,
        )
        out.close()
        self.started(child)

    def log_path(self, child: Child):
        return self.service_logs / f"{child.spec.name}.log"

    def started(self, child: Child) -> None:
        child.state, child.started_at = "starting", time.time()
        (self.paths.run / f"{child.spec.name}.pid").write_text(str(child.proc.pid))

    def on_heartbeat(self) -> None:
        for frames in drain(self.sub, multipart=True):
            if len(frames) != 2:
                continue
            topic, payload = frames
            try:
                hb = wire.heartbeat_decoder.decode(payload)
            except msgspec.MsgspecError:
                continue
            child = self.children.get(hb.service)
            if not (child and child.proc and child.proc.pid == hb.pid):
                continue
            if child.state == "starting":
                child.state = "ready"
            # Alive is not healthy: a store that refuses every append says so in its beat.
            refusing = bool(hb.info.get("refusing"))
            if refusing and child.state == "ready":
                child.state, child.reason = "unhealthy", "refusing appends: see its log"
            elif not refusing and child.state == "unhealthy":
                child.state, child.reason = "ready", ""
        self.note_all_ready()  # at once, not at the next check: `up --detach` polls for it

    def check_children(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.state in ("starting", "ready", "unhealthy") and child.proc.poll() is not None:
                self.on_crash(child, now)
            elif child.state == "backoff" and now >= child.next_start:
                child.restarts += 1
                self.spawn(child)
        self.note_all_ready()

    def note_all_ready(self) -> None:
        if not self.all_ready_once and all(c.state == "ready" for c in self.children.values()):
            self.all_ready_once = True
            log.info("all services ready")
            started_pipe.say_started(self.started_fd)
            self.started_fd = None

    def on_crash(self, child: Child, now: float) -> None:
        code = child.proc.returncode
        child.crashes.append(now)
        while child.crashes and now - child.crashes[0] > CRASH_WINDOW:
            child.crashes.popleft()
        last_line = read_last_line(self.service_logs / f"{child.spec.name}.log").removeprefix("cocode: ")
        name = child.spec.name
        if len(child.crashes) > CRASH_LIMIT or (not self.all_ready_once and code == 2):
            # Exit 2 before start-up completed is a bad config or a bad database:
            # retrying cannot help, so stop at once with the service's own words.
            child.state, child.reason = "failed", last_line
            log.error("%s keeps failing; not restarting: %s", name, last_line)
            self.appender.append(ev.ServiceGaveUp(
                service=name, crashes=len(child.crashes), window_s=CRASH_WINDOW, reason=last_line))
            if not self.all_ready_once:
                self.startup_failed = f"{name}: {last_line}"
            return
        backoff = min(BACKOFF_FIRST * 2 ** (len(child.crashes) - 1), BACKOFF_MAX)
        child.state, child.next_start, child.reason = "backoff", now + backoff, f"exit {code}"
        log.warning("%s exited with %s; restarting in %.2fs", name, code, backoff)
        self.appender.append(ev.ServiceCrashed(
            service=name, pid=child.proc.pid, exit_code=code,
            restarts=child.restarts + 1, backoff_s=backoff))

    # -- control socket --------------------------------------------------------------

    def on_control(self) -> None:
        raw = self.control.recv()
        try:
            req = msgspec.json.decode(raw, type=Request)
        except msgspec.MsgspecError:
            self.control.send(msgspec.json.encode({"error": "bad request"}))
            return
        if req.cmd == "ps":
            reply = {
                "services": [c.status() for c in self.children.values()],
                "all_ready": self.all_ready_once,
                "failed": self.startup_failed,
                "pid": os.getpid(),
            }
            self.control.send(msgspec.json.encode(reply))
        elif req.cmd == "stop":
            self.control.send(msgspec.json.encode({"ok": True}))
            self.loop.stop()
        else:
            self.control.send(msgspec.json.encode({"error": f"unknown command {req.cmd}"}))

    # -- life cycle ------------------------------------------------------------------

    def run(self) -> int:
        # Forked services leave through SystemExit from start_all(): no `finally`
        # may stand between here and the interpreter's exit, so it comes first.
        self.start_all()
        self.open_sockets()
        self.loop.stop_on_signals(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        self.loop.add(self.control, self.on_control)
        self.loop.add(self.sub, self.on_heartbeat)
        self.appender.attach(self.loop)
        self.loop.every(0.05, self.check_children)
        try:
            self.loop.run(until=lambda: self.startup_failed is not None)
        finally:
            self.shutdown()
        return 1 if self.startup_failed else 0

    def shutdown(self) -> None:
        self.appender.flush()
        self.appender.wait(1.0)
        others = [c for c in self.children.values() if not c.spec.core]
        cores = [c for c in reversed(list(self.children.values())) if c.spec.core]
        stop_children(others)
        for child in cores:
            stop_children([child])
        for path in self.paths.socket_files():
            if path.name != "supervisor.ipc":
                path.unlink(missing_ok=True)
        self.loop.close()
        self.appender.close()
        self.control.close(0)
        self.sub.close(0)
        (self.paths.socket_dir / "supervisor.ipc").unlink(missing_ok=True)
        for spec in SERVICES:
            (self.paths.run / f"{spec.name}.pid").unlink(missing_ok=True)
        if self.started_fd is not None:
            os.close(self.started_fd)  # never ready: `up --detach` reads the log's last line
        release_lock(self.lock_file, self.paths)


def stop_children(children: list[Child], grace: float = STOP_GRACE) -> None:
    live = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for c in children:
        c.state = "stopped" if c.state != "failed" else c.state
    for c in live:
        try:
            c.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for c in live:
        try:
            c.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def run_foreground(paths: Paths) -> int:
    """`cocode up` in the foreground (and the detached supervisor): supervise until
    stopped; a start-up failure raises with the failing service's own words."""
    started = time.monotonic()
    sup = Supervisor(paths)
    print(f"cocode: supervising {len(SERVICES)} services in {paths.root} (Ctrl-C stops)", file=sys.stderr, flush=True)
    code = sup.run()
    if sup.startup_failed:
        raise CocodeError(f"start-up failed: {sup.startup_failed}")
    print(f"cocode: stopped after {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return code


def run_detached(directory: str) -> int:
    """`python -m cocode -C ROOT supervise`, how `up --detach` starts the supervisor
    once it has checked the config: no click and no config read, so the services
    start sooner. Errors end as one line on stderr (the supervisor's log)."""
    from cocode.paths import find_repo_root

    try:
        return run_foreground(Paths(find_repo_root(directory)))
    except CocodeError as err:
        print(f"cocode: {err.message}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
