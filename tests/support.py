"""What tests share: real git repositories with the user's git config shut out, the
real `cocode` CLI as a subprocess, `up`/`down` of a real running cocode, finding and
reaping the processes a test left, and one `wait_until`.

Fixtures live in conftest.py and use these; test modules import from here, never
from conftest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from cocode.paths import Paths

ROOT = Path(__file__).resolve().parent.parent  # the project
AGENTS_DIR = ROOT / "tests" / "agents"  # small real agent scripts

IDENTITY = {
    "GIT_AUTHOR_NAME": "cocode-test", "GIT_AUTHOR_EMAIL": "test@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-test", "GIT_COMMITTER_EMAIL": "test@cocode.invalid",
}


def isolated_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", **IDENTITY, **extra)
    return env


class GitRepo:
    """A git repository in a directory, with one-line helpers to change and commit."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def init(cls, path: Path, files: dict[str, str] | None = None) -> "GitRepo":
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        repo.commit("initial", files or {"README.md": "hello\n"})
        return repo

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=isolated_env(), capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, files: dict[str, str | bytes], cwd: Path | None = None) -> None:
        for name, content in files.items():
            p = (cwd or self.path) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)

    def commit(self, message: str, files: dict[str, str | bytes] | None = None, cwd: Path | None = None) -> str:
        """Write `files`, commit everything (empty commits allowed), return the sha."""
        if files:
            self.write(files, cwd)
        self.git("add", "-A", cwd=cwd)
        self.git("commit", "-q", "--allow-empty", "-m", message, cwd=cwd)
        return self.head(cwd)

    def head(self, cwd: Path | None = None) -> str:
        return self.git("rev-parse", "HEAD", cwd=cwd)


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=isolated_env())
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
