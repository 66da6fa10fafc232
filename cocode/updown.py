"""Starting a detached cocode and stopping it, from a short-lived process: `cocode up
--detach`, `cocode down`, the demo and the benchmarks. The supervisor (supervisor.py)
is the daemon; this is its outside, as circus keeps `client.py` beside its daemon:
start one in its own session and wait for all ready, ask it to stop, and clean up what
a supervisor that died hard left (services by their pid files, socket files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from cocode import envnames
from cocode.client import request, running_pid
from cocode.errors import CocodeError
from cocode.osutil import pid_alive
from cocode.paths import Paths
from cocode.supervisor import SERVICES, STOP_GRACE, read_last_line


def start_detached(paths: Paths, profile: str | None = None, timeout: float = 20.0) -> float:
    """`cocode up --detach`: a supervisor in its own session; returns once all are ready.

    The caller has checked the config; the supervisor starts through `python -m
    cocode -C ROOT supervise`, which skips the click command line (see __main__)."""
    paths.ensure_private_dirs()
    log_path = paths.home / "logs" / "services" / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = dict(os.environ)
    if profile:
        env[envnames.PERFORMANCE_PROFILE] = profile
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cocode", "-C", str(paths.root), "supervise"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env,
        )
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = read_last_line(log_path)
            raise CocodeError(f"start-up failed: {last.removeprefix('cocode: ').removeprefix('start-up failed: ')}")
        reply = request(paths, "ps", timeout=0.2)
        if reply and reply.get("all_ready"):
            return time.monotonic() - started
        time.sleep(0.02)
    raise CocodeError(f"services not ready after {timeout:.0f}s; see `cocode ps` and {log_path}")


def stop(paths: Paths, timeout: float = 30.0) -> tuple[int | None, list[int]]:
    """`cocode down`: graceful stop; then no cocode process and no socket file remain."""
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
    killed = []
    for spec in SERVICES:
        pidfile = paths.run / f"{spec.name}.pid"
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
