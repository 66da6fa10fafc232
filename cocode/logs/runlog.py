"""One run's output inside the log collector: where its bytes go and when they rotate.

Owns, per run: the end offset (what is stored), the live file and its fsync
state, the in-memory ring buffer, buffer growth for verbose agents, and rotation
to lz4. The collector (services/logs.py) owns the sockets and decides what to
store (dedupe, gaps); this class stores exactly what it is given, in order.

Policy, from ADR-005 §2 and the config keys:
- The live file holds the current segment; a segment is rotated (compressed to
  `agent_<job>-<agent>_<ts>.log.lz4`) before it would exceed
  min(log_buffer_size_mb, log_rotation_size_mb). The lz4 frame is built while the
  bytes arrive (lz4 buffers one 64 KB block), so a rotation costs a flush, a
  rename and three fsyncs (~3 ms here), not 10 MB of compression on the loop
  that forwards every agent's live output (~15-25 ms).
- Rotated files beyond `rotated_logs_keep`, or beyond `log_rotation_size_mb` of
  retained bytes in total (rotated + live), are deleted, oldest first.
- The ring buffer keeps the last log_buffer_size_mb in memory for backlogs. When
  it is full and the agent writes more than 1 MB/min, it doubles, up to
  log_max_buffer_mb (BufferExpanded); otherwise old bytes leave memory (an
  overflow: they are still on disk).
- Bytes count as stored (and may be acked) once written and fdatasync'ed; the
  collector batches that in a thread (sync_request(), mark_synced()).
"""

from __future__ import annotations

import time
from pathlib import Path

import lz4.frame

from cocode.core import events as ev
from cocode.core import wire
from cocode.config import Limits
from cocode.logs.files import Manifest, Rotated, RunFiles
from cocode.logs.ringbuf import RingBuffer
from cocode.osutil import fdatasync, replace_durably
from cocode.runkey import RunKey

MB = 1024 * 1024
VERBOSE_MB_PER_MIN = 1.0
RATE_WINDOW_S = 60.0


class RunLog:
    def __init__(self, logs_dir: Path, job: str, agent: str, limits: Limits) -> None:
        self.job, self.agent = job, agent
        self.topic = wire.log_topic(job, agent)
        self.limits = limits
        self.files = RunFiles(logs_dir, job, agent)
        self.manifest: Manifest = self.files.load()
        self.live = open(self.files.live, "ab", buffering=64 * 1024)
        self.end = self.manifest.start + self.live.tell()
        self.synced = self.end  # what load() found is on disk already
        self.segment_limit = min(limits.log_buffer_size_mb, limits.log_rotation_size_mb) * MB
        self.capacity = limits.log_buffer_size_mb * MB
        self.ring: RingBuffer | None = None  # loaded on first need
        # The lz4 frame of the current segment, built as bytes arrive. None when the
        # segment began before this process (restart): then rotation reads the file.
        self.comp: lz4.frame.LZ4FrameCompressor | None = None
        self.comp_file = None
        self.comp_covers = self.end == self.manifest.start  # empty segment: start fresh
        self.sender: bytes | None = None  # routing id of the shipper to ack
        self.last_write = time.monotonic()
        self.window_start = time.monotonic()
        self.window_bytes = 0
        self.prev_rate = 0.0
        self.overflowing = False
        self.overflow_bytes = 0
        self.gap_since = 0.0  # when a hole before a received chunk was first seen
        self.gap_replied = 0.0
        self.stats = {"bytes": 0, "expansions": 0, "overflows": 0, "rotations": 0}

    @property
    def key(self) -> str:
        return RunKey(self.job, self.agent).key

    # -- storing ------------------------------------------------------------------------

    def store(self, data: bytes, events: list) -> None:
        """Append the run's next bytes (at offset self.end) everywhere they go."""
        ring = self.load_ring()  # before the write: loading reads the live file
        if self.end > self.manifest.start and self.end - self.manifest.start + len(data) > self.segment_limit:
            self.rotate(events)
        self.live.write(data)
        if len(ring) + len(data) > ring.capacity:
            self._grow_or_overflow(ring, len(data), events)
        ring.append(data)
        if self.comp_covers:
            if self.comp is None:
                self._start_frame()
            out = self.comp.compress(data)
            if out:
                self.comp_file.write(out)
        self.end += len(data)
        n = len(data)
        self.window_bytes += n
        self.stats["bytes"] += n
        self.last_write = time.monotonic()

    def jump(self, offset: int, events: list) -> None:
        """The run's bytes continue at `offset` > end (a new attempt, or a gap given
        up on): close the segment so the live file again starts at a known offset."""
        if self.end > self.manifest.start:
            self.rotate(events)
        self.manifest.start = offset
        self.files.write_manifest(self.manifest)
        self.end = self.synced = offset
        self.comp_covers = True
        if self.ring is not None:
            self.ring.reset(offset)

    def load_ring(self) -> RingBuffer:
        if self.ring is None:
            self.flush()
            start, data = self.files.tail_bytes(self.manifest, self.capacity)
            self.ring = RingBuffer(self.capacity, start)
            for i in range(0, len(data), 1024 * 1024):
                self.ring.append(data[i : i + 1024 * 1024])
        return self.ring

    def rate_mb_per_min(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        span = now - self.window_start
        if span >= RATE_WINDOW_S:
            self.prev_rate = self.window_bytes / MB / (span / 60.0)
            self.window_start, self.window_bytes = now, 0
            return self.prev_rate
        # A fresh window says little on its own: until it has a minute, the busier
        # of it (scaled to a minute, at least over 1 s) and the previous minute.
        return max(self.prev_rate, self.window_bytes / MB / (max(span, 1.0) / 60.0))

    def _grow_or_overflow(self, ring: RingBuffer, incoming: int, events: list) -> None:
        top = max(self.limits.log_max_buffer_mb, self.limits.log_buffer_size_mb) * MB
        rate = self.rate_mb_per_min()
        if ring.capacity < top and rate > VERBOSE_MB_PER_MIN:
            ring.capacity = self.capacity = min(ring.capacity * 2, top)
            self.stats["expansions"] += 1
            self.overflowing = False
            events.append(ev.BufferExpanded(job=self.job, agent=self.agent,
                                            size_mb=round(ring.capacity / MB, 1),
                                            rate_mb_per_min=round(rate, 2)))
            return
        # One overflow when old bytes first leave memory, then one per buffer's worth.
        self.overflow_bytes += incoming
        if not self.overflowing or self.overflow_bytes >= ring.capacity:
            self.overflowing = True
            self.overflow_bytes = 0
            self.stats["overflows"] += 1

    # -- rotation ------------------------------------------------------------------------

    def _start_frame(self) -> None:
        self.comp_file = open(self.files.partial, "wb", buffering=64 * 1024)
        self.comp = lz4.frame.LZ4FrameCompressor()
        self.comp_file.write(self.comp.begin())

    def _finish_frame(self) -> tuple[Path, int]:
        """Complete the segment's lz4 file and give it its final name (rotation time)."""
        if self.comp_covers and self.comp is not None:
            self.comp_file.write(self.comp.flush())
            size = self.comp_file.tell()
            self.comp_file.close()
            path = self.files.new_rotated_path()
            # The manifest written next commits the rename (one directory fsync for both).
            replace_durably(self.files.partial, path, sync_dir=False)
        else:  # the segment began before a restart: compress it from the live file
            self.live.flush()
            path = self.files.new_rotated_path()

            def pieces():
                with open(self.files.live, "rb") as f:
                    while block := f.read(1024 * 1024):
                        yield block

            size = self.files.write_lz4(pieces(), path)
        self.comp = self.comp_file = None
        return path, size

    def rotate(self, events: list) -> None:
        path, size = self._finish_frame()
        m = self.manifest
        m.rotated.append(Rotated(file=path.name, start=m.start, end=self.end))
        m.start = self.end
        m.truncate_live = True
        self.files.write_manifest(m)  # the commit point, see cocode/logs/files.py
        self.live.flush()
        self.live.truncate(0)  # no fsync needed: until the flag is cleared, load() redoes this
        m.truncate_live = False
        dropped = self._prune()
        self.files.write_manifest(m)
        for r in dropped:
            (self.files.dir / r.file).unlink(missing_ok=True)
        self.synced = self.end
        self.comp_covers = True
        self.stats["rotations"] += 1
        events.append(ev.LogRotated(job=self.job, agent=self.agent, file=str(path),
                                    bytes=m.rotated[-1].end - m.rotated[-1].start,
                                    kept=len(m.rotated)))

    def _prune(self) -> list[Rotated]:
        m = self.manifest
        keep = self.limits.rotated_logs_keep
        budget = self.limits.log_rotation_size_mb * MB
        dropped = []
        while m.rotated and (
            len(m.rotated) > keep
            or sum(r.end - r.start for r in m.rotated) + (self.end - m.start) > budget
        ):
            dropped.append(m.rotated.pop(0))
        return dropped

    # -- durability -------------------------------------------------------------------------

    def flush(self) -> None:
        self.live.flush()

    def sync_request(self) -> tuple[int, int] | None:
        """(fd, offset) to fdatasync so that `offset` is durable, or None if it is.
        Flushes first: the collector's Fsyncer thread then syncs, off the loop."""
        if self.synced == self.end:
            return None
        self.live.flush()
        return self.live.fileno(), self.end

    def mark_synced(self, offset: int) -> bool:
        """A sync round came back; True when that moved `synced` (an ack is due).
        A result from before a rotation or jump is below `synced` and ignored."""
        if offset > self.synced:
            self.synced = offset
            return True
        return False

    def sync(self) -> bool:
        """Make everything stored durable now (on the way down)."""
        if self.synced == self.end:
            return False
        self.live.flush()
        fdatasync(self.live.fileno())
        self.synced = self.end
        return True

    def drop_frame(self) -> None:
        """The run has ended: give up the lz4 frame being built (its hidden file
        goes; the live file holds its bytes). A later rotation compresses from
        the live file, as after a restart."""
        if self.comp_file is not None:
            self.comp_file.close()
            self.files.partial.unlink(missing_ok=True)
        self.comp = self.comp_file = None
        self.comp_covers = False

    def backlog_start(self, lines: int, after: int = -1) -> int:
        """Where the last `lines` lines begin (0: all held), none before `after`."""
        ring = self.load_ring()
        start = ring.line_start(lines)
        return max(start, min(after, ring.end)) if after >= 0 else start

    def backlog(self, lines: int, after: int = -1) -> tuple[int, bytes]:
        """(start, the bytes from there to the end), as backlog_start."""
        start = self.backlog_start(lines, after)
        return start, self.load_ring().read(start)

    def backlog_newlines(self, lines: int, after: int = -1) -> tuple[int, int]:
        """(start, how many newlines backlog() would send), with no copy."""
        start = self.backlog_start(lines, after)
        return start, self.load_ring().newlines(start)

    def close(self) -> None:
        """Stop holding resources; the files stay consistent (an unfinished lz4
        frame is the hidden .partial file load() removes; the live file holds its bytes)."""
        try:
            self.sync()
        except OSError:
            pass
        self.live.close()
        if self.comp_file is not None:
            self.comp_file.close()
            self.files.partial.unlink(missing_ok=True)
        self.comp = self.comp_file = None
        self.ring = None
