"""The supervisor forks its services' first start (cocode/forkstart.py): each forked
service must be as isolated and as findable as a spawned one, and a restart after a
crash is a fresh process."""

from __future__ import annotations

import os
import signal

import psutil

from cocode.launcher import SERVICE_NAMES
from support import ps, wait_until


def _pid(paths, name: str) -> int:
    return int((paths.run / f"{name}.pid").read_text())


def test_forked_services_look_and_live_like_spawned_ones(running):
    paths = running
    supervisor = int(paths.lock.read_text())
    sup_fds = {os.readlink(f"/proc/{supervisor}/fd/{fd}") for fd in os.listdir(f"/proc/{supervisor}/fd")}
    for name in SERVICE_NAMES:
        pid = _pid(paths, name)
        p = psutil.Process(pid)
        assert p.ppid() == supervisor
        assert p.cmdline()[-4:] == ["-C", str(paths.root), "service", name], p.cmdline()
        assert p.cmdline()[1:3] == ["-m", "cocode"]
        assert p.name().startswith(f"cocode-{name}"[:15]), p.name()
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid, "its own session, like start_new_session"
        fds = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        assert fds["0"] == os.devnull
        log = str(paths.home / "logs" / "services" / f"{name}.log")
        assert fds["1"] == fds["2"] == log
        assert str(paths.lock) not in fds.values(), "only the supervisor holds its lock"
        assert not {v for v in fds.values() if v.startswith("/")} & (sup_fds - {os.devnull}), fds
        # COCODE_SUPERVISOR_PID is set in its os.environ, which /proc/PID/environ (the
        # block it started with) does not show: that it watches its supervisor is
        # test_hardening's kill -9 of the supervisor.


def test_a_forked_service_killed_is_restarted_as_a_fresh_process(running):
    paths = running
    old = _pid(paths, "scheduler")
    os.kill(old, signal.SIGKILL)

    def restarted():
        row = ps(paths.root)["scheduler"]
        return row["state"] == "ready" and row["pid"] not in (None, old) and row["pid"]

    new = wait_until(restarted, 30, what="the scheduler restarted")
    with open(f"/proc/{new}/cmdline", "rb") as f:
        raw = f.read()
    assert raw.endswith(b"\0service\0scheduler\0"), raw  # a real argv: spawned, not forked
    # The other services, forked, were left alone.
    assert all(psutil.Process(_pid(paths, n)).is_running() for n in SERVICE_NAMES if n != "scheduler")
