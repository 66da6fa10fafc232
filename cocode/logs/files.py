"""Where a run's output lives on disk under .cocode/logs/, and how to read it back.

Shared by the collector (which alone writes these files) and by `cocode logs` /
`cocode tail` when no collector runs. Per run (`<name>` is `<job>-<agent>`):

  <name>.log                        the live file: the run's bytes from `start` on
  <name>.meta.json                  the manifest: `start`, the rotated files in order
  agent_<name>_<timestamp>.log.lz4  rotated segments, standard lz4 frames (`lz4 -d`)

The manifest is what makes the files crash-consistent: it is replaced atomically
(write, fsync, rename), and a rotation commits by writing it. A rotation (i) writes
the lz4 file under a temporary name and renames it, (ii) commits the manifest with
the new `start` and `truncate_live` set, (iii) empties the live file, (iv) clears
the flag. Whatever step a kill -9 interrupts, load() finds one consistent state:
an lz4 file the manifest does not list is dropped (its bytes are still in the live
file), and a set flag means the live file's bytes are already in the last lz4 file.
So after a restart the run's end offset is `start + size of the live file`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import lz4.frame
import msgspec

from cocode.osutil import write_durably
from cocode.runkey import RunKey

READ_CHUNK = 1024 * 1024
# A run's attempt N writes at offsets from (N - 1) * ATTEMPT_SPAN: a requeued run
# (its worker died) continues the same log without asking anyone where it ended,
# and the collector tells such a jump from a lost chunk by its alignment.
ATTEMPT_SPAN = 1 << 40


def attempt_base(attempt: int) -> int:
    return max(0, attempt - 1) * ATTEMPT_SPAN


def attempt_of(offset: int) -> int:
    """The attempt whose output is at run offset `offset`."""
    return offset // ATTEMPT_SPAN + 1


def line_start(data: bytes, lines: int) -> int:
    """Where the last `lines` lines of `data` begin (a last line without its newline
    counts); 0 when it holds fewer, len(data) for none."""
    if lines <= 0:
        return len(data)
    pos = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


class Rotated(msgspec.Struct):
    file: str  # name inside the logs directory
    start: int  # run offsets [start, end) it holds, uncompressed
    end: int


class Manifest(msgspec.Struct):
    job: str
    agent: str
    start: int = 0  # run offset of the live file's first byte
    rotated: list[Rotated] = []
    truncate_live: bool = False


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Manifest)


class RunFiles:
    """The paths of one run's files, and the operations on them that must be atomic."""

    def __init__(self, logs_dir: Path, job: str, agent: str) -> None:
        self.dir = Path(logs_dir)
        self.job, self.agent = job, agent
        self.name = RunKey(job, agent).file_stem
        self.live = self.dir / f"{self.name}.log"
        self.meta = self.dir / f"{self.name}.meta.json"
        # The lz4 frame of the segment being written: hidden, and renamed to its
        # final agent_..._<ts>.log.lz4 name only when complete.
        self.partial = self.dir / f".{self.name}.lz4.partial"
        self._rotated_re = re.compile(rf"^agent_{re.escape(self.name)}_\d{{8}}T\d{{6}}\.\d{{6}}(?:-\d+)?\.log\.lz4$")

    # -- manifest ----------------------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        try:
            return _dec.decode(self.meta.read_bytes())
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # a torn write cannot happen (rename), but a hand edit can

    def write_manifest(self, m: Manifest) -> None:
        write_durably(self.meta, _enc.encode(m), tmp=self.meta.with_suffix(".tmp"))

    def load(self) -> Manifest:
        """The manifest after finishing or undoing an interrupted rotation; the live
        file exists afterwards. Creates a fresh manifest for a new run."""
        self.dir.mkdir(parents=True, exist_ok=True)
        m = self.read_manifest()
        if m is None:
            m = Manifest(job=self.job, agent=self.agent)
            self.write_manifest(m)
        if m.truncate_live:
            with open(self.live, "ab") as f:
                f.truncate(0)
            m.truncate_live = False
            self.write_manifest(m)
        listed = {r.file for r in m.rotated}
        for p in self.dir.glob(f"agent_{glob_escape(self.name)}_*"):
            if self._rotated_re.match(p.name) and p.name not in listed:
                p.unlink(missing_ok=True)
        self.partial.unlink(missing_ok=True)
        self.live.touch(exist_ok=True)
        return m

    # -- rotation ---------------------------------------------------------------------------

    def new_rotated_path(self) -> Path:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        path = self.dir / f"agent_{self.name}_{stamp}.log.lz4"
        n = 1
        while path.exists():
            path = self.dir / f"agent_{self.name}_{stamp}-{n}.log.lz4"
            n += 1
        return path

    def write_lz4(self, pieces, path: Path) -> int:
        """Compress `pieces` (bytes-likes) into a standard lz4 frame at `path`,
        piece by piece so that no second copy of the segment is ever in memory.
        Returns the compressed size. The manifest written next commits the rename
        (its directory fsync covers this file's entry too)."""

        def frame():
            comp = lz4.frame.LZ4FrameCompressor()
            yield comp.begin()
            for piece in pieces:
                yield comp.compress(piece)
            yield comp.flush()

        return write_durably(path, frame(), tmp=self.partial, sync_dir=False)

    # -- reading -------------------------------------------------------------------------

    def iter_rotated(self, r: Rotated) -> Iterator[bytes]:
        with lz4.frame.open(self.dir / r.file, "rb") as f:
            while True:
                block = f.read(READ_CHUNK)
                if not block:
                    return
                yield block

    def iter_all(self) -> Iterator[bytes]:
        """Every retained byte of the run, oldest first: rotated files, then live."""
        for _, block in self.iter_at():
            yield block

    def iter_at(self) -> Iterator[tuple[int, bytes]]:
        """iter_all's blocks with the run offset each starts at (`logs --json`):
        a pruned file or a new attempt is a jump, not a shift of what follows."""
        m = self.read_manifest()
        if m is None:
            return
        for r in m.rotated:
            offset = r.start
            try:
                for block in self.iter_rotated(r):
                    yield offset, block
                    offset += len(block)
            except FileNotFoundError:  # pruned by a rotation since the manifest was read
                continue
        if m.truncate_live:
            return  # its bytes are the last rotated file's
        offset = m.start
        try:
            with open(self.live, "rb") as f:
                while True:
                    block = f.read(READ_CHUNK)
                    if not block:
                        return
                    yield offset, block
                    offset += len(block)
        except FileNotFoundError:
            return

    def last_lines(self, lines: int, before: int | None = None) -> list[tuple[int, bytes]]:
        """The last `lines` lines held below run offset `before` (all held when None),
        as (offset, bytes) pieces oldest first. A jump between pieces (a new attempt,
        a pruned file) ends a line. Reads only the newest segments it needs."""
        m = self.read_manifest()
        if m is None or lines <= 0:
            return []
        segments: list[tuple[int, Rotated | None]] = [(r.start, r) for r in m.rotated]
        if not m.truncate_live:
            segments.append((m.start, None))
        picked: list[tuple[int, bytes]] = []  # newest first
        found = 0
        for start, r in reversed(segments):
            if before is not None and start >= before:
                continue
            try:
                data = b"".join(self.iter_rotated(r)) if r is not None else self.live.read_bytes()
            except (OSError, RuntimeError):  # pruned meanwhile, or unreadable: what is left
                continue
            if before is not None:
                data = data[: before - start]
            if data:
                picked.append((start, data))
                found += data.count(b"\n")
                if found > lines:
                    break
        groups: list[tuple[int, bytes]] = []  # contiguous pieces joined, oldest first
        for start, data in reversed(picked):
            if groups and groups[-1][0] + len(groups[-1][1]) == start:
                groups[-1] = (groups[-1][0], groups[-1][1] + data)
            else:
                groups.append((start, data))
        out = []
        for start, data in reversed(groups):
            cut = line_start(data, lines)
            out.append((start + cut, data[cut:]))
            lines -= count_lines(data[cut:])
            if lines <= 0:
                break
        return out[::-1]

    def tail_bytes(self, m: Manifest, want: int) -> tuple[int, bytes]:
        """The last `want` bytes the files hold contiguously: (their start offset, bytes).
        Used to refill a run's ring buffer after a restart."""
        try:
            size = self.live.stat().st_size
        except FileNotFoundError:
            size = 0
        with open(self.live, "rb") as f:
            f.seek(max(0, size - want))
            live = f.read()
        start = m.start + size - len(live)
        if len(live) >= want or not m.rotated or m.rotated[-1].end != m.start:
            return start, live
        need = want - len(live)
        kept = bytearray()
        try:
            for block in self.iter_rotated(m.rotated[-1]):
                kept += block
                if len(kept) > need:
                    del kept[: len(kept) - need]
        except (FileNotFoundError, RuntimeError, OSError):
            return start, live
        return start - len(kept), bytes(kept) + live


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def runs_in(logs_dir: Path) -> list[RunKey]:
    """Every run with a manifest."""
    out = []
    for p in sorted(Path(logs_dir).glob("*.meta.json")):
        try:
            m = _dec.decode(p.read_bytes())
        except (OSError, msgspec.MsgspecError):
            continue
        out.append(RunKey(m.job, m.agent))
    return out
