"""Compaction: old events of finished jobs move to an lz4 archive segment, and the
live log becomes a new file with the rest and a snapshot at its head.

ADR-005 caps the state file at 10 MB; the SQLite log took over from state.json, so
it must not grow without bound either. `cocode compact --older-than N` asks the
store (the log's only writer) to run compact() between two batches:

1. select_jobs() (pure) picks the jobs whose every run ended more than N days ago;
   their events, and job-less events (services, pressure, warnings) older than
   that, are the ones to move. With no job's events to move, nothing happens.
2. They are written in seq order to an archive segment (core/archive.py):
   .cocode/archive/events-<first>-<last>.msgpack.lz4.
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

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, encode_state
from cocode.core import wire
from cocode.core.archive import archive_name, write_archive
from cocode.osutil import replace_durably

DAY = 86400.0


# -- deciding (pure) ---------------------------------------------------------------------------


def select_jobs(state: State, now: float, older_than_days: float) -> list[str]:
    """Jobs whose runs are all final and ended before now - older_than_days."""
    cutoff = now - older_than_days * DAY
    out = []
    for job in state.jobs.values():
        ended = [r.ended_at for r in job.runs.values()]
        if job.done and ended and all(t is not None and t <= cutoff for t in ended):
            out.append(job.job)
    return out


# -- compacting (the store runs this; it is the only writer) --------------------------------------


@dataclass
class Done:
    reply: wire.CompactDone
    conn: sqlite3.Connection | None = None  # the store's new connection, after the swap
    event: ev.Compacted | None = None  # to append once the new file is in place


def compact(conn: sqlite3.Connection, paths, state: State, head: int, older_than_days: float,
            now: float | None = None) -> Done:
    now = time.time() if now is None else now
    jobs = select_jobs(state, now, older_than_days)
    new_path = paths.db.with_name(paths.db.name + ".compacting")
    _remove_db_files(new_path)
    new = sqlite3.connect(f"file:{new_path}", uri=True, isolation_level=None)
    try:
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
            return Done(wire.CompactDone(archive=None, events=0, jobs=[]))
        first, last = rows[0][0], rows[-1][0]
        paths.archive.mkdir(mode=0o700, parents=True, exist_ok=True)
        archive = paths.archive / archive_name(first, last)
        write_archive(archive, [r[1] for r in rows])
        new.execute("BEGIN")
        new.execute("INSERT INTO events SELECT * FROM old.events WHERE seq <= ? "
                    "AND seq NOT IN (SELECT seq FROM gone)", (head,))
        new.execute("INSERT INTO producers SELECT * FROM old.producers")
        new.execute("INSERT INTO snapshots (seq, version, ts, state) VALUES (?, ?, ?, ?)",
                    (state.seq, st.FOLD_VERSION, now, encode_state(state)))
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
    return Done(wire.CompactDone(archive=str(archive), events=moved, jobs=jobs), fresh, event)


def swap(old: sqlite3.Connection, db: Path, new_path: Path) -> sqlite3.Connection:
    """Replace the log file by the compacted one and return a writing connection to it."""
    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    old.close()
    for suffix in ("-wal", "-shm"):  # the old file's: never let them meet the new one
        Path(str(db) + suffix).unlink(missing_ok=True)
    replace_durably(new_path, db)
    return eventlog.open_for_writing(db)


def _remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
