"""The operating-system primitives several layers need, written once: a durable
file write (temp, fsync, rename, fsync of the directory), fsyncing a directory,
fdatasync where there is one, whether a pid is alive, and handing freed heap back
to the OS.

Bottom layer (beside errors.py): imports nothing of cocode.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


# macOS has no fdatasync; fsync is its durable (metadata too, so slower) equivalent.
fdatasync = getattr(os, "fdatasync", os.fsync)


def fsync_path(path: Path | str) -> None:
    """fsync a file (or directory) by name; raises OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Make the directory's entries (a rename, a new file) durable. Best effort:
    some filesystems refuse to open or fsync a directory, and nothing better can
    be done there."""
    try:
        fsync_path(path)
    except OSError:
        pass


def replace_durably(tmp: Path | str, path: Path | str, sync_dir: bool = True) -> None:
    """Rename the complete file `tmp` over `path` so that after a crash either the
    old or the new file is there, whole: fsync it, rename, fsync the directory."""
    fsync_path(tmp)
    _rename(tmp, path, sync_dir)


def write_durably(path: Path | str, data: bytes | Iterable[bytes], tmp: Path | str | None = None,
                  sync_dir: bool = True) -> int:
    """Write `data` (bytes, or pieces written one by one so no second copy is held)
    to `tmp` (default `<path>.tmp`), fsync, rename over `path`, fsync the directory.
    Returns the bytes written.

    `sync_dir=False` is for a caller that commits the rename itself by a later
    durable write in the same directory (one directory fsync covers both)."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            for piece in data:
                f.write(piece)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    _rename(tmp, path, sync_dir)
    return size


def _rename(tmp: Path | str, path: Path | str, sync_dir: bool) -> None:
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(Path(path).parent)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_memory() -> None:
    """Hand heap a burst freed back to the OS. glibc keeps freed small blocks unless
    asked, so a long-running service would otherwise keep its peak RSS for good."""
    try:
        import ctypes  # only when a burst happened: most processes never need it

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): nothing to do


def limit_arenas(n: int = 2) -> None:
    """At most n glibc malloc arenas from now on. Each thread that allocates otherwise
    gets an arena of its own, and bytes allocated in one thread and freed in another
    (a feed thread handing chunks to a UI thread) leave every arena holding its peak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, n)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def read_last_line(path) -> str:
    """The last non-blank line of a log file (its last 4 KiB), "" when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            return lines[-1] if lines else ""
    except OSError:
        return ""
