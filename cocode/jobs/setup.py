"""A new workspace made ready before its agent starts: config `copy:` files from the
main checkout (e.g. `.env`, kept out of commits) and config `setup:` commands
(e.g. `npm ci`, `uv sync`) run in it, in order, with the agent's environment and,
when runs are sandboxed, inside the agent's sandbox (jobs/sandbox.py: the same
workspace writable, the same HOME and /tmp, nothing else): a setup command can
harm no more than the agent could. Each in its own process group, killed whole
when it ends or outlives the time left.

Runs in the worker's prepare thread. A failure raises SetupFailed with the failing
command's last line of output; the output of every command (bounded) goes to the
run's log either way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from cocode.resources import reaper

OUTPUT_MAX = 256 * 1024  # of each command's output, the last this many bytes are kept


class SetupFailed(Exception):
    def __init__(self, message: str, output: bytes = b"") -> None:
        super().__init__(message)
        self.output = output


def copy_files(root: Path, workspace: Path, names: list[str], exclude_file: Path | None) -> bytes:
    """Copy each of `names` (paths relative to the repository) into the workspace and
    list it in git's exclude file, so an agent's `git add -A` leaves it out."""
    log = []
    for name in names:
        src, dst = root / name, workspace / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise SetupFailed(f"copy: {name!r} must be a path inside the repository")
        if not src.exists():
            raise SetupFailed(f"copy: {name} does not exist in {root}; create it or remove it from copy:")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(src, dst)
        log.append(f"[setup] copied {name}\n")
    if names and exclude_file is not None:
        text = exclude_file.read_text(encoding="utf-8") if exclude_file.exists() else ""
        have = set(text.splitlines())
        new = [f"/{n.strip('/')}" for n in names if f"/{n.strip('/')}" not in have]
        if new:
            exclude_file.parent.mkdir(parents=True, exist_ok=True)
            sep = "\n" if text and not text.endswith("\n") else ""
            exclude_file.write_text(text + sep + "".join(f"{n}\n" for n in new), encoding="utf-8")
    return "".join(log).encode()


Wrap = Callable[[list[str]], list[str]]  # a command line, as the sandbox runs it


def run_commands(commands: list[str], workspace: Path, env: dict[str, str], timeout_s: float,
                 wrap: Wrap | None = None) -> tuple[bytes, float]:
    """Run each command with `sh -c` in the workspace (through `wrap`: the run's
    sandbox); (their output, seconds). Raises SetupFailed on the first that fails
    or outlives the time left."""
    out = bytearray()
    t0 = time.monotonic()
    for cmd in commands:
        out += f"[setup] $ {cmd}\n".encode()
        left = timeout_s - (time.monotonic() - t0)
        argv = ["sh", "-c", cmd]
        with reaper.spawning() as keep:  # its own session: not an orphan for the worker to reap
            proc = subprocess.Popen(wrap(argv) if wrap else argv, cwd=workspace, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=reaper.preexec(wrap is not None))
            keep(proc.pid)
        try:
            data, _ = proc.communicate(timeout=max(left, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            data, _ = proc.communicate()
            out += data[-OUTPUT_MAX:]
            raise SetupFailed(f"setup command timed out after {timeout_s:.0f}s: {cmd}", bytes(out)) from None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running in its group
            except (ProcessLookupError, PermissionError):
                pass
            reaper.release(proc.pid)
        out += data[-OUTPUT_MAX:]
        if proc.returncode != 0:
            last = (data.decode("utf-8", errors="replace").strip().splitlines() or ["(no output)"])[-1]
            raise SetupFailed(f"`{cmd}` exited {proc.returncode}: {last.strip()[:300]}", bytes(out))
    return bytes(out), time.monotonic() - t0


def prepare(config, gitops, root: Path, workspace: Path, env: dict[str, str],
            wrap: Wrap | None = None) -> tuple[bytes, float]:
    """Config copy: then setup: in a new workspace, setup through `wrap` (the run's
    sandbox, None when unsandboxed); (output, milliseconds)."""
    if not (config.copy or config.setup):
        return b"", 0.0
    t0 = time.perf_counter()
    # A run's own clone reads its own exclude file; a linked worktree reads the repository's.
    git_dir = workspace / ".git" if (workspace / ".git").is_dir() else gitops.git_common_dir(root)
    out = copy_files(root, workspace, list(config.copy), git_dir / "info" / "exclude")
    ran, _ = run_commands(list(config.setup), workspace, env, config.limits.agent_timeout, wrap)
    return out + ran, (time.perf_counter() - t0) * 1000
