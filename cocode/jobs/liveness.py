"""When a silent worker's runs are given up: only once its process is known gone.

A worker that stops beating may be dead, or only paused: SIGSTOP, a debugger, a
swap storm, a starved CPU, a suspended machine. Interrupting a paused worker's
runs killed work that was fine (its agents were killed as escaped, and the late
worker's reports then closed the requeued attempt). So silence alone decides
nothing on this host: the worker's pid (carried by its beats and its runs'
events) must be gone. A worker on another host cannot be probed; there silence
still decides, and the fold's attempt fencing keeps its late reports harmless.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = socket.gethostname()


def pid_alive(pid: int, name: str = "worker") -> bool:
    """Whether `pid` is still a process of ours that looks like `name`: not gone,
    not a zombie, not the pid reused by someone else's process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: ours is gone and its pid reused
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_bytes()
        if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"):
            return False  # exited, not yet reaped by its parent
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return not proc.parent.exists()  # no /proc here (macOS): the signal probe decides
    except (OSError, ValueError):
        return True
    # Empty while a process is between fork and exec: not enough to call it gone.
    return not cmdline or name.encode() in cmdline


def worker_gone(worker: str, pid: int, silent_s: float, after_s: float,
                alive=pid_alive, host: str = HOST) -> bool:
    """Whether the runs of `worker` (an id `name@host`), silent for `silent_s`
    seconds, are to be interrupted: silent long enough, and on this host with a
    known pid, that process no longer exists."""
    if silent_s <= after_s:
        return False
    name, _, worker_host = worker.partition("@")
    if pid and worker_host in ("", host):
        return not alive(pid, name or "worker")
    return True  # nothing to probe (another host, or a log from before pids): silence decides
