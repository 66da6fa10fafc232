"""Starting a detached cocode and stopping it, from a short-lived process: `cocode up
--detach`, `cocode down`, the demo and the benchmarks. The supervisor (supervisor.py)
is the daemon; this is its outside, as circus keeps `client.py` beside its daemon:
start one in its own session and wait for all ready, ask it to stop, and clean up what
a supervisor that died hard left (services by their pid files, socket files).

The start side is light (no 0MQ, no click): `python -m cocode [-C DIR] up --detach
[--json]` runs `up_command` without the command line's framework (see __main__), and
the click command calls the same function. The supervisor says "all ready" on a pipe
(started_pipe.py), so waiting for it needs no socket and no polling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from cocode import envnames, started_pipe
from cocode.errors import CocodeError
from cocode.lock import running_pid
from cocode.osutil import pid_alive, read_last_line
from cocode.paths import Paths, find_repo_root, relative_to_cwd

START_TIMEOUT = 20.0  # seconds `up --detach` waits for all ready


def up_command(directory: str | None, profile: str | None, timeout: float = START_TIMEOUT,
               as_json: bool = False, check_config=None) -> int:
    """`cocode up --detach`, all of it: check the config (`check_config(paths)`, the
    command line's own loader when it has one), refuse a second cocode, start, print
    where it listens. Errors end as one line on stderr and an exit code."""
    try:
        paths = Paths(find_repo_root(directory))
        if check_config is None:
            from cocode.launcher import load_repo_config

            load_repo_config(paths, profile, relative_to_cwd(paths.config))
        else:
            check_config(paths)
        refuse_second(paths)
        elapsed = start_detached(paths, profile, timeout)
    except CocodeError as err:
        print(f"cocode: {err.message}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    try:
        _say_where(paths, elapsed, as_json)
    except BrokenPipeError:  # `| head -1`: as click does, quietly exit 1
        sys.stdout = open(os.devnull, "w")
        return 1
    return 0


def _say_where(paths: Paths, elapsed: float, as_json: bool) -> None:
    if as_json:
        import msgspec

        print(msgspec.json.encode({"root": str(paths.root), "pid": running_pid(paths),
                                   "ready_ms": round(elapsed * 1000, 1),
                                   "endpoints": paths.endpoints()}).decode(), flush=True)
        return
    print(f"cocode: all services ready in {elapsed * 1000:.0f} ms")
    for name, address in paths.endpoints().items():
        print(f"  {name:<11} {address}")
    sys.stdout.flush()


def refuse_second(paths: Paths) -> None:
    pid = running_pid(paths)
    if pid:
        raise CocodeError(f"cocode is already running in {paths.root} (pid {pid}); `cocode down` stops it")


def start_detached(paths: Paths, profile: str | None = None, timeout: float = START_TIMEOUT) -> float:
    """A supervisor in its own session; returns once all are ready (seconds taken).

    The caller has checked the config; the supervisor starts through `python -m
    cocode -C ROOT supervise`, which skips the click command line (see __main__)."""
    paths.ensure_private_dirs()
    log_path = paths.home / "logs" / "services" / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = dict(os.environ)
    if profile:
        env[envnames.PERFORMANCE_PROFILE] = profile
    said_r, said_w = os.pipe()
    env[envnames.STARTED_FD] = str(said_w)
    try:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cocode", "-C", str(paths.root), "supervise"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env,
                pass_fds=(said_w,),
            )
    finally:
        os.close(said_w)
    deadline = started + timeout
    try:
        said = started_pipe.wait_said(said_r, deadline)
    finally:
        os.close(said_r)
    if said == started_pipe.READY:
        return time.monotonic() - started
    if said is not None:  # its end closed unsaid: it exited (or is exiting)
        try:
            proc.wait(max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        last = read_last_line(log_path)
        raise CocodeError(f"start-up failed: {last.removeprefix('cocode: ').removeprefix('start-up failed: ')}")
    raise CocodeError(f"services not ready after {timeout:.0f}s; see `cocode ps` and {log_path}")


def stop(paths: Paths, timeout: float = 30.0) -> tuple[int | None, list[int]]:
    """`cocode down`: graceful stop; then no cocode process and no socket file remain."""
    from cocode.client import request

    pid = running_pid(paths)
    if pid:
        request(paths, "stop")
        deadline = time.monotonic() + timeout
        while running_pid(paths) and time.monotonic() < deadline:
            time.sleep(0.05)
        if running_pid(paths):
            raise CocodeError(f"the supervisor (pid {pid}) did not stop within {timeout:.0f}s")
        _wait_exited(pid, 5.0)
    leftovers = kill_leftovers(paths)
    for sock in paths.socket_files():
        sock.unlink(missing_ok=True)
    return pid, leftovers


def _wait_exited(pid: int, timeout: float) -> None:
    """It gives up its lock just before it exits: return only once it has exited."""
    import psutil  # only `cocode down` and the demo get here, never a running supervisor

    deadline = time.monotonic() + timeout
    try:
        while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.02)
    except psutil.NoSuchProcess:
        pass


def kill_leftovers(paths: Paths) -> list[int]:
    """After a supervisor died hard: stop services it left, by their pid files."""
    from cocode.launcher import SERVICE_NAMES
    from cocode.supervisor import STOP_GRACE

    killed = []
    for name in SERVICE_NAMES:
        pidfile = paths.run / f"{name}.pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(pid) and _is_cocode_service(pid):
            os.kill(pid, signal.SIGTERM)
            killed.append(pid)
        pidfile.unlink(missing_ok=True)
    deadline = time.monotonic() + STOP_GRACE
    while any(pid_alive(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in killed:
        if pid_alive(p):
            os.kill(p, signal.SIGKILL)
    return killed


def _is_cocode_service(pid: int) -> bool:
    """Whether a pid from a stale pid file still is a cocode service (pids get reused)."""
    import psutil  # portable (no /proc on macOS); only stale pid files need it here

    try:
        args = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "cocode" in args and "service" in args
