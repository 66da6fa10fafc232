"""Shared fixtures: real git repositories and a real running cocode, always cleaned up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import zmq

from cocode.paths import Paths

GIT_ID = ["-c", "user.name=cocode-test", "-c", "user.email=test@cocode.invalid"]


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(path: Path, files: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for i in range(files):
        (path / f"file{i}.txt").write_text(f"line {i}\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def cocode(repo: Path, *args: str, timeout: float = 60, check: bool = False, env=None, input=None):
    """Run the real `cocode` CLI as a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "cocode", "-C", str(repo), *args],
        capture_output=True, text=True, timeout=timeout, env=env, input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cocode {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def cocode_processes(repo: Path) -> list[psutil.Process]:
    """Live processes started for this repository's cocode (services, supervisor)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = p.info["cmdline"] or []
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "cocode" in cmd and str(repo) in cmd:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def reap(procs: list[psutil.Process], what: str) -> None:
    """Kill processes a test left behind, then fail the test for having left them."""
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not procs, f"{what}: {[p.info['cmdline'] for p in procs]}"


def kill_all(repo: Path) -> None:
    for p in cocode_processes(repo):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def ctx():
    """A private ZeroMQ context for a test's own sockets."""
    c = zmq.Context()
    try:
        yield c
    finally:
        c.destroy(linger=0)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def up(repo: Path, *args: str, env=None) -> Paths:
    """`cocode up --detach` (extra args passed on); fails the test if it does not start."""
    proc = cocode(repo, "up", "--detach", *args, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Paths(repo)


def down(repo: Path) -> None:
    """`cocode down`, then: no process of this repository's cocode may be left."""
    try:
        cocode(repo, "down", timeout=60)
        leftover = cocode_processes(repo)
    finally:
        kill_all(repo)
    assert not leftover, f"processes left after down: {[p.info['cmdline'] for p in leftover]}"


def wait_until(cond, timeout: float, interval: float = 0.05):
    """cond()'s first truthy value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    return cond()


@pytest.fixture
def running(repo: Path):
    """cocode up --detach in a fresh repository; always brought down after."""
    paths = up(repo)
    try:
        yield paths
    finally:
        down(repo)
