"""A run's spool: the bytes the collector has not acked yet, on disk.

A run's redacted output is written here before it is sent, so nothing depends on
ZeroMQ delivering: the shipper (shipper.py) resends from here until the collector
confirms. A spool left by a dead worker is found again by recover(); one flock'ed by
a live process is not touched.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import struct
from pathlib import Path

import msgspec

SEGMENT = 8 * 1024 * 1024  # spool file size: acked files are deleted whole
HEADER = 512
MAGIC = b"COCODE-SPOOL-1\n"


class SpoolHeader(msgspec.Struct):
    job: str
    agent: str
    base: int  # run offset of the first byte after the header


_hdr_enc = msgspec.msgpack.Encoder()
_hdr_dec = msgspec.msgpack.Decoder(SpoolHeader)


class Spool:
    """A run's not-yet-acked bytes on disk, as numbered segment files.

    A file cannot lose its head cheaply, and a long run's output is never acked
    up to its very end while it writes: so the spool is a series of SEGMENT-sized
    files `<stem>.<base>.spool`, and a file goes as soon as all of it is acked.
    Each file starts with a header (job, agent, base) and is flock'ed while in use.
    """

    def __init__(self, directory: Path, stem: str, job: str, agent: str) -> None:
        self.dir, self.stem, self.job, self.agent = directory, stem, job, agent
        self.bases: list[int] = []
        self.fds: list[int] = []
        self.paths: list[Path] = []
        self.end = 0

    @classmethod
    def create(cls, directory: Path, stem: str, job: str, agent: str, base: int) -> "Spool":
        spool = cls(directory, stem, job, agent)
        spool.end = base
        spool._new_segment(base)
        return spool

    def _new_segment(self, base: int) -> None:
        path = self.dir / f"{self.stem}.{base}.spool"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        body = _hdr_enc.encode(SpoolHeader(job=self.job, agent=self.agent, base=base))
        os.pwrite(fd, (MAGIC + struct.pack(">I", len(body)) + body).ljust(HEADER, b"\0"), 0)
        self.bases.append(base)
        self.fds.append(fd)
        self.paths.append(path)

    @property
    def base(self) -> int:
        return self.bases[0] if self.bases else self.end

    def append(self, data: bytes) -> None:
        if self.end - self.bases[-1] >= SEGMENT:
            self._new_segment(self.end)
        os.pwrite(self.fds[-1], data, HEADER + self.end - self.bases[-1])
        self.end += len(data)

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes from `offset` (never across a segment boundary)."""
        i = bisect.bisect_right(self.bases, offset) - 1
        if i < 0:
            return b""
        limit = self.bases[i + 1] if i + 1 < len(self.bases) else self.end
        return os.pread(self.fds[i], min(n, limit - offset), HEADER + offset - self.bases[i])

    def release(self, upto: int) -> None:
        """Delete the files whose every byte is below `upto` (acked); keep the last."""
        while len(self.bases) > 1 and self.bases[1] <= upto:
            self._drop(0, delete=True)

    def _drop(self, i: int, delete: bool) -> None:
        if delete:
            self.paths[i].unlink(missing_ok=True)
        os.close(self.fds[i])  # also drops the flock
        del self.bases[i], self.fds[i], self.paths[i]

    def close(self, delete: bool) -> None:
        while self.fds:
            self._drop(0, delete)

    @classmethod
    def recover(cls, directory: Path) -> list["Spool"]:
        """The spools in `directory` that no live process holds, one per stem."""
        found: dict[str, Spool] = {}
        for path in sorted(directory.glob("*.spool")):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                head = os.pread(fd, HEADER, 0)
                if not head.startswith(MAGIC):
                    raise ValueError("not a spool")
                (n,) = struct.unpack(">I", head[len(MAGIC) : len(MAGIC) + 4])
                hdr = _hdr_dec.decode(head[len(MAGIC) + 4 : len(MAGIC) + 4 + n])
            except (OSError, ValueError, struct.error, msgspec.MsgspecError):
                os.close(fd)  # locked by a live worker, or not a spool
                continue
            stem = path.name.rsplit(".", 2)[0]
            spool = found.setdefault(stem, cls(directory, stem, hdr.job, hdr.agent))
            size = max(0, os.fstat(fd).st_size - HEADER)
            spool.bases.append(hdr.base)
            spool.fds.append(fd)
            spool.paths.append(path)
            spool.end = max(spool.end, hdr.base + size)
        for spool in found.values():
            order = sorted(range(len(spool.bases)), key=spool.bases.__getitem__)
            spool.bases = [spool.bases[i] for i in order]
            spool.fds = [spool.fds[i] for i in order]
            spool.paths = [spool.paths[i] for i in order]
        return list(found.values())
