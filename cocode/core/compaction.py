"""Compaction: old events of finished jobs move to an lz4 archive segment, and the
live log becomes a new file with the rest and a snapshot at its head.

ADR-005 caps the state file at 10 MB; the SQLite log took over from state.json, so
it must not grow without bound either. `cocode compact --older-than N` asks the
store (the log's only writer) to run compact() between two batches:

1. select_jobs() (pure) picks the jobs whose every run ended more than N days ago;
   their events, and job-less events (services, pressure, warnings) older than
   that, are the ones to move. With no job's events to move, nothing happens.
2. They are written in seq order to .cocode/archive/events-<first>-<last>.msgpack.lz4:
   one lz4 frame holding one msgpack array of the stored envelopes, byte for byte
   as they were in the log (any msgpack + lz4 library reads it).
3. A new database file gets the other events, the producers table and a snapshot of
   the full state at head; it is renamed over events.db and reopened. The live
   table is never UPDATEd or DELETEd (its triggers stay): the old file is
   replaced whole.
4. The store then appends a `compacted` event.

Replay gives the same state: the snapshot covers what moved, and a fold from
scratch reads the archive segments and the live table merged by seq
(eventlog.iter_all_events). A crash between steps leaves at worst an archive
whose events are also still live: readers skip a seq seen twice.
"""

from __future__ import annotations

import heapq
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import lz4.frame
import msgspec

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire

DAY = 86400.0
ARCHIVE_RE = re.compile(r"^events-(\d+)-(\d+)\.msgpack\.lz4$")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])


# -- deciding (pure) ---------------------------------------------------------------------------


def select_jobs(state: st.State, now: float, older_than_days: float) -> list[str]:
    """Jobs whose runs are all final and ended before now - older_than_days."""
    cutoff = now - older_than_days * DAY
    out = []
    for job in state.jobs.values():
        ended = [r.ended_at for r in job.runs.values()]
        if job.done and ended and all(t is not None and t <= cutoff for t in ended):
            out.append(job.job)
    return out


# -- archive segments --------------------------------------------------------------------------


def archive_name(first: int, last: int) -> str:
    return f"events-{first:012d}-{last:012d}.msgpack.lz4"


def archive_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if ARCHIVE_RE.match(p.name))


def write_archive(path: Path, payloads: list[bytes]) -> None:
    data = lz4.frame.compress(_encoder.encode([msgspec.Raw(p) for p in payloads]))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_archive(path: Path) -> list[bytes]:
    return [bytes(raw) for raw in _decoder.decode(lz4.frame.decompress(path.read_bytes()))]


def iter_archived(directory: Path, after: int = 0) -> Iterator[ev.Event]:
    """Every archived event after `after`, in seq order across all segments."""
    streams = []
    for path in archive_files(directory):
        last = int(ARCHIVE_RE.match(path.name).group(2))
        if last > after:
            streams.append(_decoded(read_archive(path), after))
    yield from heapq.merge(*streams, key=lambda e: e.seq)


def _decoded(payloads: Iterable[bytes], after: int) -> Iterator[ev.Event]:
    for payload in payloads:
        try:
            event = ev.decode(payload)
        except msgspec.MsgspecError:
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


# -- compacting (the store runs this; it is the only writer) --------------------------------------


@dataclass
class Done:
    reply: wire.Compacted
    conn: sqlite3.Connection | None = None  # the store's new connection, after the swap
    event: ev.Compacted | None = None  # to append once the new file is in place


def compact(conn: sqlite3.Connection, paths, state: st.State, head: int, older_than_days: float,
            now: float | None = None) -> Done:
    now = time.time() if now is None else now
    jobs = select_jobs(state, now, older_than_days)
    new_path = paths.db.with_name(paths.db.name + ".compacting")
    _remove_db_files(new_path)
    new = sqlite3.connect(f"file:{new_path}", uri=True, isolation_level=None)
    try:
        from cocode.core import eventlog

        new.executescript(eventlog.SCHEMA)
        new.execute("ATTACH DATABASE ? AS old", (f"file:{paths.db}?mode=ro",))
        new.execute("CREATE TEMP TABLE gone_jobs (job TEXT PRIMARY KEY)")
        new.executemany("INSERT INTO gone_jobs VALUES (?)", [(j,) for j in jobs])
        new.execute(
            "CREATE TEMP TABLE gone AS SELECT seq FROM old.events WHERE seq <= ? AND "
            "(job IN (SELECT job FROM gone_jobs) OR (coalesce(job, '') = '' AND ts <= ?))",
            (head, now - older_than_days * DAY),
        )
        rows = new.execute(
            "SELECT e.seq, e.payload, e.job FROM old.events e WHERE e.seq IN (SELECT seq FROM gone) ORDER BY e.seq"
        ).fetchall()
        jobs = sorted({r[2] for r in rows if r[2]})
        if not jobs:  # job-less events alone are not worth a new file
            new.close()
            _remove_db_files(new_path)
            return Done(wire.Compacted(archive=None, events=0, jobs=[]))
        first, last = rows[0][0], rows[-1][0]
        paths.archive.mkdir(mode=0o700, parents=True, exist_ok=True)
        archive = paths.archive / archive_name(first, last)
        write_archive(archive, [r[1] for r in rows])
        new.execute("BEGIN")
        new.execute("INSERT INTO events SELECT * FROM old.events WHERE seq <= ? "
                    "AND seq NOT IN (SELECT seq FROM gone)", (head,))
        new.execute("INSERT INTO producers SELECT * FROM old.producers")
        new.execute("INSERT INTO snapshots (seq, version, ts, state) VALUES (?, ?, ?, ?)",
                    (state.seq, st.FOLD_VERSION, now, st.encode_state(state)))
        new.execute("COMMIT")
        new.execute("DETACH DATABASE old")
    except BaseException:
        new.close()
        _remove_db_files(new_path)
        raise
    new.close()
    fresh = swap(conn, paths.db, new_path)
    moved = len(rows)
    event = ev.Compacted(archive=str(archive), first_seq=first, last_seq=last, events=moved, jobs=jobs)
    return Done(wire.Compacted(archive=str(archive), events=moved, jobs=jobs), fresh, event)


def swap(old: sqlite3.Connection, db: Path, new_path: Path) -> sqlite3.Connection:
    """Replace the log file by the compacted one and return a writing connection to it."""
    from cocode.core import eventlog

    _fsync_file(new_path)
    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    old.close()
    for suffix in ("-wal", "-shm"):  # the old file's: never let them meet the new one
        Path(str(db) + suffix).unlink(missing_ok=True)
    os.replace(new_path, db)
    _fsync_dir(db.parent)
    return eventlog.open_for_writing(db)


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync_file(path)
    except OSError:
        pass
