"""A test agent for the log pipeline: writes known bytes to stdout/stderr, then exits.

    logs_agent.py bulk MB          MB MiB of numbered lines, as fast as the pipe takes them
    logs_agent.py stream MB SECS   MB MiB spread evenly over SECS seconds
    logs_agent.py lines N SECS     N numbered lines over SECS seconds
    logs_agent.py secret           TOKEN printed whole, split across writes, and on stderr
    logs_agent.py weird            invalid UTF-8, \\r progress bars, NUL bytes, a 1 MB line

`expected(mode, *args)` gives the exact bytes a mode writes (stdout and stderr
together, in order), so a test can compare what was stored against it.
"""

from __future__ import annotations

import os
import sys
import time

MIB = 1024 * 1024
# A GitHub token's shape, assembled here so that no config file holds it.
TOKEN = "gh" + "p_" + "Zq8" * 12 + "x7Kp"


def numbered(start: int, count: int) -> bytes:
    # Varied lengths and a little of everything printable, so lz4 has work to do.
    return b"".join(
        b"line %08d %s\n" % (i, b"abcdefghij0123456789-_=+"[: i % 24] * (1 + i % 7))
        for i in range(start, start + count)
    )


def bulk_bytes(mb: float) -> bytes:
    want = int(mb * MIB)
    out, i = [], 0
    size = 0
    while size < want:
        block = numbered(i, 2000)
        out.append(block)
        size += len(block)
        i += 2000
    return b"".join(out)[:want]


def weird_parts() -> list[bytes]:
    return [
        b"valid line\n",
        b"invalid utf-8: \xff\xfe\xc3\x28 end\n",
        b"progress: 10%\rprogress: 50%\rprogress: 100%\n",
        b"nul: a\x00b\x00c\n",
        b"escape: \x1b[31mred\x1b[0m \x07bell\n",
        b"X" * MIB,  # one megabyte, no newline
        b"\nafter the long line\n",
    ]


def expected(mode: str, *args: str) -> bytes:
    if mode == "bulk":
        return bulk_bytes(float(args[0]))
    if mode == "stream":
        return bulk_bytes(float(args[0]))
    if mode == "lines":
        return numbered(0, int(args[0]))
    if mode == "weird":
        return b"".join(weird_parts())
    raise ValueError(mode)


def write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "bulk":
        data = expected(mode, *args)
        for i in range(0, len(data), 65536):
            write(1, data[i : i + 65536])
    elif mode == "stream":
        data = expected(mode, *args)
        seconds = float(args[1])
        step = 64 * 1024
        steps = max(1, len(data) // step)
        t0 = time.monotonic()
        for n, i in enumerate(range(0, len(data), step)):
            write(1, data[i : i + step])
            delay = t0 + seconds * (n + 1) / steps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    elif mode == "lines":
        count, seconds = int(args[0]), float(args[1])
        t0 = time.monotonic()
        for i in range(count):
            write(1, numbered(i, 1))
            delay = t0 + seconds * (i + 1) / count - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    elif mode == "secret":
        token = TOKEN.encode()
        write(1, b"token whole: " + token + b"\n")
        write(1, b"token split: " + token[:2])
        time.sleep(0.3)  # longer than the shipper's idle flush
        write(1, token[2:20])
        time.sleep(0.05)
        write(1, token[20:] + b" done\n")
        write(2, b"on stderr: Bearer " + token + b"\n")
        write(1, b"last words " + token + b"\n")
    elif mode == "weird":
        for part in weird_parts():
            write(1, part)
            time.sleep(0.01)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
