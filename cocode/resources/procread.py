"""Reading one process's numbers, two ways behind one interface: the Linux fast
path (/proc) and a portable psutil path (macOS, or any system without /proc).

The sampler (resources/proctree.py) asks a reader, per member of a run: its
process group, its CPU seconds and its resident memory (`stat`); and, during its
host-wide scans, a process's parent (`ppid`) and working directory (`cwd`).
Everything else it does (sessions by getsid, killpg, psutil for signalling
escaped members) is POSIX and the same on both.

- ProcStat (Linux): one pread of /proc/PID/stat on a descriptor kept open (~5 µs;
  rss, cpu times and process group are all in that one line; a dead process
  answers ESRCH, so a reused pid is never mistaken for it).
- PsutilStat (portable): a cached psutil.Process per member, read in one oneshot();
  a pid reused since it was cached is seen by its create time. Forced on Linux it
  costs ~10x the fast path (10 runs x 10 processes: 21.6 ms vs 1.8 ms a sample,
  medians of the same run here), still a few percent of a core at one sample a second.

reader() picks ProcStat where /proc is there, unless the portable path is forced
(`portable=True`, or COCODE_PORTABLE_SAMPLER=1): how Linux tests the macOS path.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Protocol

import psutil

from cocode import envnames

MAX_OPEN_FDS = 512  # beyond this, /proc/PID/stat is opened anew for each read
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


class Stat(NamedTuple):
    pgrp: int
    cpu: float  # user + system seconds
    rss: int  # bytes


class Reader(Protocol):
    kind: str

    def stat(self, pid: int) -> Stat | None:
        """The process's numbers now, or None once it is gone."""

    def ppid(self, pid: int) -> int | None: ...

    def cwd(self, pid: int) -> str | None: ...

    def keep_only(self, pids: set[int]) -> None:
        """Drop what is cached for any other pid."""

    def close(self) -> None: ...


def parse_stat(data: bytes) -> tuple[int, int, int, float, int]:
    """(ppid, pgrp, session, cpu seconds, rss bytes) from a /proc/PID/stat line."""
    f = data.rsplit(b")", 1)[1].split()  # the command name may hold spaces and parens
    return int(f[1]), int(f[2]), int(f[3]), (int(f[11]) + int(f[12])) / TICKS, int(f[21]) * PAGE


class ProcStat:
    """Open /proc/PID/stat descriptors, reread with pread: the cheapest sample there is."""

    kind = "procfs"

    def __init__(self, limit: int = MAX_OPEN_FDS) -> None:
        self.fds: dict[int, int] = {}
        self.limit = limit

    def _read(self, pid: int) -> bytes | None:
        fd = self.fds.get(pid)
        try:
            if fd is not None:
                return os.pread(fd, 1024, 0)
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            self.forget(pid)
            return None
        try:
            data = os.pread(fd, 1024, 0)
        except OSError:
            os.close(fd)
            return None
        if len(self.fds) < self.limit:
            self.fds[pid] = fd
        else:
            os.close(fd)
        return data

    def stat(self, pid: int) -> Stat | None:
        data = self._read(pid)
        if data is None:
            return None
        _, pgrp, _, cpu, rss = parse_stat(data)
        return Stat(pgrp, cpu, rss)

    def ppid(self, pid: int) -> int | None:
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            try:
                return parse_stat(os.read(fd, 1024))[0]
            finally:
                os.close(fd)
        except (OSError, IndexError, ValueError):
            return None

    def cwd(self, pid: int) -> str | None:
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None

    def forget(self, pid: int) -> None:
        fd = self.fds.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def keep_only(self, pids: set[int]) -> None:
        for pid in [p for p in self.fds if p not in pids]:
            self.forget(pid)

    def close(self) -> None:
        self.keep_only(set())


class PsutilStat:
    """The same numbers through psutil: what works where there is no /proc."""

    kind = "psutil"

    def __init__(self) -> None:
        self.procs: dict[int, psutil.Process] = {}

    def stat(self, pid: int) -> Stat | None:
        p = self.procs.get(pid)
        try:
            if p is None:
                p = self.procs[pid] = psutil.Process(pid)
            elif not p.is_running():  # gone, and the pid perhaps reused: not ours
                raise psutil.NoSuchProcess(pid)
            with p.oneshot():
                t = p.cpu_times()
                rss = p.memory_info().rss
            return Stat(os.getpgid(pid), t.user + t.system, rss)
        except (psutil.Error, OSError):
            # Gone, a zombie (no memory, runs nothing), or not ours to read.
            self.procs.pop(pid, None)
            return None

    def ppid(self, pid: int) -> int | None:
        try:
            return psutil.Process(pid).ppid()
        except psutil.Error:
            return None

    def cwd(self, pid: int) -> str | None:
        try:
            return psutil.Process(pid).cwd()
        except psutil.Error:
            return None

    def keep_only(self, pids: set[int]) -> None:
        for pid in [p for p in self.procs if p not in pids]:
            del self.procs[pid]

    def close(self) -> None:
        self.procs.clear()


def has_procfs() -> bool:
    return os.path.exists(f"/proc/{os.getpid()}/stat")


def reader(portable: bool | None = None) -> Reader:
    """The fast /proc reader where it works, else (or when forced) the psutil one."""
    if portable is None:
        portable = os.environ.get(envnames.PORTABLE_SAMPLER, "") not in ("", "0")
    if portable or not has_procfs():
        return PsutilStat()
    return ProcStat()
