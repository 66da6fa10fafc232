"""A run's recent output in memory (cocode.logs.ringbuf.RingBuffer), pure: what it
holds within its capacity, offsets across blocks, reading from an offset, a reset,
and where the last N lines begin, checked against the same answers computed on the
whole output."""

from __future__ import annotations

import random

from cocode.logs.ringbuf import BLOCK, RingBuffer


def output(size: int, seed: int) -> bytes:
    """`size` bytes of lines of random length (some empty), a final one maybe unfinished."""
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += b"x" * rnd.choice([0, 1, 7, 80, 300, 5000]) + b"\n"
    return bytes(out[:size])


def feed(buf: RingBuffer, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        buf.append(data[i : i + step])


def last_lines_start(data: bytes, start: int, lines: int) -> int:
    """line_start's answer, computed directly on the bytes held (data[start:])."""
    held = data[start:]
    if lines <= 0 or not held:
        return start
    body = held[:-1] if held.endswith(b"\n") else held
    breaks = [i for i, c in enumerate(body) if c == 0x0A]
    return start + breaks[-lines] + 1 if len(breaks) >= lines else start


def test_within_capacity_everything_is_held_at_its_offset():
    buf = RingBuffer(10 * BLOCK, start=1000)
    data = output(3 * BLOCK + 123, seed=1)
    feed(buf, data, 4096)
    assert (buf.start, buf.end, len(buf)) == (1000, 1000 + len(data), len(data))
    assert buf.read() == data
    assert buf.read(1000 + 5000) == data[5000:]
    assert buf.read(0) == data, "before the start reads from the start"
    assert buf.read(buf.end) == b""
    pieces = list(buf.segments(1000 + BLOCK - 10))
    assert pieces[0][0] == 1000 + BLOCK - 10
    assert b"".join(bytes(p) for _, p in pieces) == data[BLOCK - 10:]
    assert all(off + len(p) == nxt for (off, p), (nxt, _) in zip(pieces, pieces[1:]))


def test_past_capacity_whole_old_blocks_go_and_the_newest_bytes_stay():
    capacity = 3 * BLOCK // 2
    for step in (1000, 65536, 3 * BLOCK):
        buf = RingBuffer(capacity)
        data = output(8 * BLOCK + 77, seed=step)
        feed(buf, data, step)
        assert buf.end == len(data)
        assert len(buf) <= capacity or not buf.blocks, "memory stays within the capacity"
        assert len(buf) > capacity - BLOCK - step, "at most a block (and a write) short of it"
        assert buf.read() == data[buf.start:], "exactly the newest bytes"


def test_a_reset_forgets_and_continues_at_the_offset():
    buf = RingBuffer(BLOCK)
    feed(buf, b"old\n" * 1000, 100)
    buf.reset(5_000_000)
    assert (buf.start, buf.end, buf.read(), len(buf)) == (5_000_000, 5_000_000, b"", 0)
    buf.append(b"new\n")
    assert buf.read(5_000_000) == b"new\n" and buf.end == 5_000_004


def test_line_start_small_cases():
    buf = RingBuffer(BLOCK, start=10)
    assert buf.line_start(3) == 10, "empty"
    buf.append(b"a\nbb\nccc\n")
    assert [buf.line_start(n) for n in (0, 1, 2, 3, 4)] == [10, 15, 12, 10, 10]
    buf.append(b"dd")  # an unfinished last line counts as one
    assert [buf.line_start(n) for n in (1, 2)] == [19, 15]


def test_line_start_across_blocks_matches_the_whole_output():
    for seed in range(4):
        data = output(4 * BLOCK + 999, seed=seed)
        buf = RingBuffer(2 * BLOCK + 5)
        feed(buf, data, 7777)
        for lines in (0, 1, 2, 5, 40, 200, 10**6):
            assert buf.line_start(lines) == last_lines_start(data, buf.start, lines), (seed, lines)


def test_newlines_are_counted_from_any_offset_across_blocks():
    data = b"".join(b"%d\n" % i for i in range(200_000))
    ring = RingBuffer(3 * BLOCK, start=10)
    for i in range(0, len(data), 5000):
        ring.append(data[i:i + 5000])
    held = data[ring.start - 10:]
    for frm in (0, ring.start, ring.start + BLOCK + 3, ring.end - 7, ring.end):
        assert ring.newlines(frm) == held[max(frm, ring.start) - ring.start:].count(b"\n")
