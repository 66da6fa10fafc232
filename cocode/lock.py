"""The supervisor's lock (.cocode/run/supervisor.lock): one supervisor per repository.

The supervisor holds it (flock) for its whole life and writes its pid in it; any
process asks who holds it without a socket, so "is cocode running here" costs no
0MQ, and a supervisor killed hard releases it at once (the kernel drops the flock).
"""

from __future__ import annotations

import fcntl
import os

from cocode.errors import CocodeError
from cocode.paths import Paths


def acquire_lock(paths: Paths):
    paths.run.mkdir(mode=0o700, parents=True, exist_ok=True)
    f = open(paths.lock, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise CocodeError(
            f"cocode is already running in {paths.root} (pid {pid}); `cocode down` stops it"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def release_lock(f, paths: Paths) -> None:
    f.seek(0)
    f.truncate()
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def running_pid(paths: Paths) -> int | None:
    """The supervisor's pid if one holds the lock, else None."""
    if not paths.lock.exists():
        return None
    with open(paths.lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None
