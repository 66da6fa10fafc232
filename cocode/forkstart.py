"""The supervisor's first start of its services, by fork instead of a new Python each.

Seven fresh interpreters each load Python, zmq, msgspec and cocode's core and read the
config: most of `cocode up`'s time and CPU on two cores. The supervisor instead
imports what every service shares and reads the config once (`preload`), then forks
each service (`fork_service`) before it creates any 0MQ context or thread: neither
survives a fork, so the children start from a single-threaded process with no
socket. `gc.freeze()` first keeps the shared objects' pages shared (a collection in a
child would otherwise write to every one of them).

A forked service is set up as `subprocess.Popen(start_new_session=True,
close_fds=True)` sets up a spawned one: its own session, stdin /dev/null, stdout and
stderr its log, no other descriptor of the supervisor's, the same environment (plus
COCODE_SUPERVISOR_PID), `sys.argv` and the command line `ps` and /proc show:
`python -m cocode -C ROOT service NAME` (written over the supervisor's own, as
setproctitle does; tools and tests find services by it). It then ends like a
spawned one: SystemExit unwinds to the interpreter's normal exit (threads joined,
atexit run), through frames of the supervisor that hold no `finally` (see
Supervisor.run). Restarts after a crash spawn a fresh process (`cocode service
NAME`, as the Procfile does): by then the supervisor has threads.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from cocode import envnames
from cocode.errors import CocodeError
from cocode.launcher import load_service_config, run_loaded
from cocode.paths import Paths


def preload(paths: Paths):
    """Import what all services share and read their config. None when the services
    are to be spawned instead: a bad config (each service then says why in its own
    log, as before), a thread already running, or no way to retitle a child."""
    import cocode.core.service  # noqa: F401 (zmq, msgspec, events, wire, loop, appender, follower)
    from cocode.launcher import SERVICE_NAMES

    if threading.active_count() > 1 or not _can_retitle([title(paths, n) for n in SERVICE_NAMES]):
        return None
    try:
        return load_service_config(paths)
    except CocodeError:
        return None


def title(paths: Paths, name: str) -> str:
    """A service's command line, as a spawned one has it."""
    return f"{sys.executable} -m cocode -C {paths.root} service {name}"


class Forked:
    """The part of subprocess.Popen the supervisor uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 255 << 8  # reaped elsewhere: gone, cause unknown
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.005)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def freeze() -> None:
    """Once, before the forks: what exists now is never collected, so its pages stay
    shared between the supervisor and the services."""
    gc.collect()
    gc.freeze()


def fork_service(paths: Paths, config, name: str, log_path, supervisor_pid: int, owned=()) -> Forked:
    """Fork service `name`; in the child this never returns (SystemExit). `owned`:
    the supervisor's open files, closed in the child through their objects (which
    would otherwise close a reused descriptor number at exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return Forked(pid)
    code = 1
    try:
        for f in owned:
            f.close()
        _become_service(paths, name, log_path, supervisor_pid)
        code = run_loaded(paths, config, name)
    except CocodeError as err:
        print(f"cocode: {err.message}", file=sys.stderr, flush=True)
        code = err.exit_code
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - a spawned service would print it and exit 1 too
        traceback.print_exc()
        code = 1
    raise SystemExit(code)


def _become_service(paths: Paths, name: str, log_path, supervisor_pid: int) -> None:
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, _max_fd())  # none of the supervisor's descriptors, as close_fds=True
    os.environ[envnames.SUPERVISOR_PID] = str(supervisor_pid)
    argv0 = sys.argv[0]
    sys.argv = [argv0, "-C", str(paths.root), "service", name]
    set_title(title(paths, name), f"cocode-{name}")
    logging.root.handlers.clear()  # the service configures its own
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _max_fd() -> int:
    try:
        return max(int(fd) for fd in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def _argv_area() -> tuple[int, int, int]:
    """Where this process's argument strings start and end, and where its
    environment strings (which follow them) end."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[45]), int(fields[46]), int(fields[48])


def _fits(text: str, area: tuple[int, int, int]) -> bool:
    """The kernel shows a rewritten command line as one string only when it runs
    past the argument strings (their last byte no longer NUL); a shorter one would
    show the old arguments' rest after it. So: longer than the arguments, within
    the environment."""
    start, arg_end, env_end = area
    return arg_end - start <= len(text.encode()) < env_end - start


def _can_retitle(titles) -> bool:
    """Whether a forked child can show each of `titles` as its command line, and
    /proc/self/mem is writable here (proven by writing a byte back unchanged)."""
    try:
        area = _argv_area()
        if not all(_fits(t, area) for t in titles):
            return False
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(area[0])
            first = mem.read(1)
            mem.seek(area[0])
            return mem.write(first) == 1
    except (OSError, ValueError, IndexError):
        return False


def set_title(text: str, comm: str) -> bool:
    """Make /proc/self/cmdline (what `ps` and psutil read) show `text`, as
    setproctitle does: written over the argument strings and, past them, the
    environment strings, whose C-level copies are first moved to the heap (putenv)
    so getenv() still sees them. Linux only; False where it cannot."""
    try:
        area = _argv_area()
        if not _fits(text, area):
            return False
        for key, value in os.environ.items():
            os.putenv(key, value)
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(area[0])
            mem.write(text.encode() + b"\0")
        with open("/proc/self/comm", "w") as f:
            f.write(comm[:15])
        return True
    except (OSError, ValueError, IndexError):
        return False
