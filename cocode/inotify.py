"""Linux inotify through ctypes: a file descriptor that turns readable when an entry of
a watched directory is created, renamed into place, written or deleted.

No package: the worker already loads ctypes (its reaper), and the three calls are
libc's. Where inotify is missing (not Linux, no libc, the watch limit reached) every
call says so by returning None or False, and callers fall back to polling.
"""

from __future__ import annotations

import ctypes
import os
import struct

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# What moves a file in a directory: git writes <name>.lock and renames it to <name>.
ENTRY_CHANGES = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
OVERFLOW = -1  # the wd reported when the kernel's queue overflowed: anything may have changed


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own libc: no library search
        libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class Inotify:
    """One inotify instance: `fd` for a poller, `add`/`remove` directories, `read` what changed."""

    def __init__(self) -> None:
        self._libc = _libc()
        self.fd: int | None = None
        if self._libc is not None:
            fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            self.fd = fd if fd >= 0 else None

    def add(self, directory: str, mask: int = ENTRY_CHANGES) -> int | None:
        """Watch `directory`; its watch descriptor (the same one for the same directory),
        or None when it cannot be watched (gone, not a directory, limit reached)."""
        if self.fd is None:
            return None
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), mask | IN_ONLYDIR)
        return wd if wd >= 0 else None

    def remove(self, wd: int) -> None:
        if self.fd is not None:
            self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL if the kernel dropped it already

    def read(self) -> list[tuple[int, int, str]]:
        """(wd, mask, name) of every event queued now; [] when none. An overflow comes
        as (OVERFLOW, IN_Q_OVERFLOW, ""); a watch the kernel dropped (its directory
        deleted) as its IN_IGNORED event."""
        out: list[tuple[int, int, str]] = []
        if self.fd is None:
            return out
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            except OSError:
                return out
            at = 0
            while at + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, at)
                at += _HEADER.size
                name = data[at:at + length].split(b"\0", 1)[0].decode(errors="surrogateescape")
                at += length
                out.append((OVERFLOW if mask & IN_Q_OVERFLOW else wd, mask, name))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
