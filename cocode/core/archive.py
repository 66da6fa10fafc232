"""Archive segments: the events compaction moved out of the live log.

Each segment is .cocode/archive/events-<first>-<last>.msgpack.lz4: one lz4 frame
holding one msgpack array of the stored envelopes, byte for byte as they were in
the log (any msgpack + lz4 library reads it). This module names, writes and reads
them; eventlog.py merges them with the live table, compaction.py decides what
goes into them. It imports neither.
"""

from __future__ import annotations

import heapq
import re
from pathlib import Path
from typing import Iterable, Iterator

import msgspec

from cocode.core import events as ev
from cocode.core.unreadable import Unreadable
from cocode.osutil import write_durably

ARCHIVE_RE = re.compile(r"^events-(\d+)-(\d+)\.msgpack\.lz4$")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])


def archive_name(first: int, last: int) -> str:
    return f"events-{first:012d}-{last:012d}.msgpack.lz4"


def archive_dir(db: Path) -> Path:
    """Where a log's archive segments live: beside its database file."""
    return Path(db).parent / "archive"


def archive_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if ARCHIVE_RE.match(p.name))


def write_archive(path: Path, payloads: list[bytes]) -> None:
    import lz4.frame  # only compaction and archive readers pay for lz4; services mostly never do

    write_durably(path, lz4.frame.compress(_encoder.encode([msgspec.Raw(p) for p in payloads])))


def read_archive(path: Path) -> list[bytes]:
    import lz4.frame

    return [bytes(raw) for raw in _decoder.decode(lz4.frame.decompress(path.read_bytes()))]


def iter_archived(directory: Path, after: int = 0, unreadable: Unreadable | None = None) -> Iterator[ev.Event]:
    """Every archived event after `after`, in seq order across all segments; one
    another cocode version wrote and this one cannot decode is counted in `unreadable`."""
    streams = []
    for path in archive_files(directory):
        last = int(ARCHIVE_RE.match(path.name).group(2))
        if last > after:
            streams.append(_decoded(read_archive(path), after, unreadable))
    yield from heapq.merge(*streams, key=lambda e: e.seq)


def _decoded(payloads: Iterable[bytes], after: int, unreadable: Unreadable | None) -> Iterator[ev.Event]:
    for payload in payloads:
        try:
            event = ev.decode(payload)
        except msgspec.MsgspecError:
            if unreadable is not None:
                unreadable.note()
            continue
        if event.seq > after:
            yield event


def merge_unique(*streams: Iterable[ev.Event]) -> Iterator[ev.Event]:
    """Several seq-ordered streams as one, each seq once."""
    last = None
    for event in heapq.merge(*streams, key=lambda e: e.seq):
        if event.seq != last:
            last = event.seq
            yield event
