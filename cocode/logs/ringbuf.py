"""A run's recent output in memory: the last `capacity` bytes, addressed by run offset.

Owned by the log collector (one per run, see cocode/logs/runlog.py). The bytes sit in
a deque of BLOCK-sized immutable blocks plus one bytearray being filled: no object
per line or per chunk, so memory is the bytes themselves (5 full 10 MB buffers are
~50 MB) however small the agent's writes. Lines are found on demand with rfind,
which runs in C over whole blocks.
"""

from __future__ import annotations

from collections import deque

BLOCK = 256 * 1024


class RingBuffer:
    def __init__(self, capacity: int, start: int = 0) -> None:
        self.capacity = capacity
        self.blocks: deque[bytes] = deque()
        self.tail = bytearray()  # the block being filled
        self.start = start  # run offset of the oldest byte held
        self.end = start  # run offset just after the newest byte

    def __len__(self) -> int:
        return self.end - self.start

    def reset(self, offset: int) -> None:
        """Forget everything; the next byte appended is at `offset`."""
        self.blocks.clear()
        self.tail = bytearray()
        self.start = self.end = offset

    def append(self, data) -> None:
        self.tail += data
        self.end += len(data)
        if len(self.tail) >= BLOCK:
            # An exact-size copy: a grown bytearray carries up to 1/8 slack.
            self.blocks.append(bytes(self.tail))
            self.tail = bytearray()
        # Drop whole old blocks while more than `capacity` is held: memory stays
        # within the capacity (a backlog may lack up to one block of the oldest bytes).
        while self.blocks and self.end - self.start > self.capacity:
            self.start += len(self.blocks.popleft())

    def segments(self, frm: int | None = None):
        """(offset, bytes-like) pieces covering [max(frm, start), end), oldest first."""
        frm = self.start if frm is None else max(frm, self.start)
        pos = self.start
        for piece in (*self.blocks, self.tail):
            n = len(piece)
            if pos + n > frm and n:
                skip = max(0, frm - pos)
                yield pos + skip, memoryview(piece)[skip:]
            pos += n

    def read(self, frm: int | None = None) -> bytes:
        return b"".join(bytes(p) for _, p in self.segments(frm))

    def newlines(self, frm: int) -> int:
        """How many newlines [max(frm, start), end) holds, counted in place (no copy)."""
        frm, pos, n = max(frm, self.start), self.start, 0
        for piece in (*self.blocks, self.tail):
            size = len(piece)
            if pos + size > frm:
                n += piece.count(b"\n", max(0, frm - pos))
            pos += size
        return n

    def line_start(self, lines: int) -> int:
        """The offset where the last `lines` lines begin (a final line without a
        newline counts as one), or `start` when fewer are held. 0 means all."""
        if lines <= 0 or self.end == self.start:
            return self.start
        pieces = [*self.blocks, self.tail]
        pos = self.end
        need = lines
        first = True
        for piece in reversed(pieces):
            hi = len(piece)
            pos -= hi
            if first and hi:
                first = False
                if piece[hi - 1] == 0x0A:
                    hi -= 1  # the newline ending the last line is not a line break to count
            while hi > 0:
                i = piece.rfind(b"\n", 0, hi)
                if i < 0:
                    break
                need -= 1
                if need == 0:
                    return pos + i + 1
                hi = i
        return self.start
