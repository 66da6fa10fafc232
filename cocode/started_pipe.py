"""The pipe on which a supervisor tells `cocode up --detach` that all services are
ready: the command line passes its write end (COCODE_STARTED_FD), the supervisor
writes READY once all are ready and closes it. Its end closing unsaid means the
supervisor exited (start-up failed); nothing said by the deadline, not ready in time.
No socket, no polling: the command line returns the moment the supervisor knows.
"""

from __future__ import annotations

import os
import select
import stat
import time

from cocode import envnames

READY = b"ready\n"


def wait_said(fd: int, deadline: float) -> bytes | None:
    """What the supervisor wrote before closing its end; None at the deadline."""
    said = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 64)
        if not chunk or said + chunk == READY:
            return said + chunk
        said += chunk


def take_started_fd() -> int | None:
    """In the supervisor: the pipe `up --detach` waits on, taken out of the
    environment so no service inherits its name (None when started otherwise)."""
    value = os.environ.pop(envnames.STARTED_FD, "")
    try:
        fd = int(value)
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            return fd
    except (ValueError, OSError):
        pass
    return None


def say_started(fd: int | None) -> None:
    """In the supervisor, once all services are ready: tell `up --detach`."""
    if fd is None:
        return
    try:
        os.write(fd, READY)
    except OSError:
        pass  # it gave up waiting (timeout, Ctrl-C): nobody to tell
    finally:
        os.close(fd)
