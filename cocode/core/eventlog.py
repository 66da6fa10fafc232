"""The SQLite event log on disk: its schema, and reading it.

One table `events` (seq INTEGER PRIMARY KEY = the global order) that the
database itself keeps append-only, with triggers refusing UPDATE and DELETE.
Beside it: `producers` (each producer's last committed msg_id, for harmless
resends) and `snapshots` (folded state at a seq, so replay stays fast).
Only the store writes; anyone may read, with this module, sqlite3 or sqlite-utils.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

from cocode.core import archive
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.unreadable import Unreadable
from cocode.core.views import State, decode_state
from cocode.errors import CocodeError

# Plain SQL, not sqlite-utils, in the store: importing sqlite-utils costs a
# long-running process ~10 MiB of RSS. The admin commands use sqlite-utils.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, ts FLOAT NOT NULL, type TEXT NOT NULL,
    job TEXT, run TEXT, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS producers (producer TEXT PRIMARY KEY, last_id INTEGER);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY, version INTEGER, ts FLOAT, state BLOB
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events is append-only: DELETE refused'); END;
"""


# Rows go in 100 to a statement: a third less CPU per row than executemany's
# one-row steps (1.22 vs 1.66 us/row measured), which is most of the store's
# cost per event. SQLite takes up to 32,766 parameters a statement.
ROWS_PER_INSERT = (100, 10, 1)
_INSERTS = {n: "INSERT INTO events (seq, ts, type, job, run, payload) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?)"] * n) for n in ROWS_PER_INSERT}


def insert_events(conn: sqlite3.Connection, values: list) -> None:
    """Insert event rows given flat: [seq, ts, type, job, run, payload, seq, ...]."""
    at, end = 0, len(values)
    for n in ROWS_PER_INSERT:
        sql, width = _INSERTS[n], 6 * n
        while end - at >= width:
            conn.execute(sql, values[at : at + width])
            at += width


WAY_OUT = ("stop cocode and restore .cocode/events.db from a backup, or move the file aside "
           "(and archive/ with it) to start a new log; `cocode doctor` checks it in full")


def _unreadable(path: Path, err: Exception) -> CocodeError:
    return CocodeError(f"{path}: cannot use the event log ({err}); {WAY_OUT}")


def open_for_writing(path: Path) -> sqlite3.Connection:
    """Open (creating if new) the log for the store: WAL, durable commits. A log
    that fails SQLite's quick check, or does not continue its archive, is refused."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        quick_check(conn, path)
        conn.executescript(SCHEMA)
        conn.execute("SELECT max(seq) FROM events").fetchone()
        check_continues_archive(conn, path)
    except sqlite3.DatabaseError as err:
        raise _unreadable(path, err) from None
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise CocodeError(f"{path}: no event log yet; run `cocode up` first")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        quick_check(conn, path)
        conn.execute("SELECT max(seq) FROM events").fetchone()
    except sqlite3.DatabaseError as err:
        raise _unreadable(path, err) from None
    return conn


# -- trusting it ------------------------------------------------------------------------------


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's `PRAGMA quick_check` (the b-trees, not every index entry): a log
    with damaged pages would otherwise be served with rows silently missing."""
    rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    if rows != [("ok",)]:
        found = " ".join(str(rows[0][0]).split()) if rows else "no answer"  # SQLite's has newlines
        raise CocodeError(f"{path}: the event log is corrupt ({found}); {WAY_OUT}")


def log_end(conn: sqlite3.Connection) -> int:
    """The last seq this log stands for: its newest event, or its newest snapshot
    (a compaction may have archived the newest events)."""
    return conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM snapshots), 0))"
    ).fetchone()[0]


def last_archived_seq(directory: Path) -> int:
    names = (archive.ARCHIVE_RE.match(p.name) for p in archive.archive_files(directory))
    return max((int(m.group(2)) for m in names if m), default=0)


def check_continues_archive(conn: sqlite3.Connection, path: Path) -> None:
    """A log behind its archive (a new, emptied or older events.db beside archive/)
    would hand out seqs the archive already holds: refused, never restarted at 1."""
    archived = last_archived_seq(Path(path).parent / "archive")
    end = log_end(conn)
    if archived > end:
        raise CocodeError(
            f"{path}: the log ends at seq {end} but archive/ holds events up to seq {archived}, "
            f"so this is not the log that archive continues; {WAY_OUT}")


def full_check(conn: sqlite3.Connection, path: Path) -> list[str]:
    """Everything `cocode doctor` checks: every page and index (integrity_check),
    every payload decodes as the event its row says, and the archive continuity."""
    problems = [" ".join(row[0].split()) for row in conn.execute("PRAGMA integrity_check(20)") if row[0] != "ok"]
    if problems:
        return problems
    bad = []
    for seq, kind, payload in conn.execute("SELECT seq, type, payload FROM events ORDER BY seq"):
        try:
            event = ev.decode(payload)
        except Exception:
            bad.append(seq)
            continue
        if event.seq != seq or event.type != kind:
            bad.append(seq)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        problems.append(f"{len(bad)} events do not decode as stored (seq {shown})")
    try:
        check_continues_archive(conn, path)
    except CocodeError as err:
        problems.append(err.message)
    return problems


def head(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


def read_payloads(conn: sqlite3.Connection, after: int, limit: int | None = None) -> list[bytes]:
    sql = "SELECT payload FROM events WHERE seq > ? ORDER BY seq"
    args: tuple = (after,)
    if limit is not None:
        sql += " LIMIT ?"
        args = (after, limit)
    return [row[0] for row in conn.execute(sql, args)]


def read_typed(conn: sqlite3.Connection, after: int, types: list[str], limit: int) -> tuple[list[bytes], int | None]:
    """Payloads of the given types after `after`, and the last seq they stand for
    (None when fewer than `limit` matched: then everything up to the head is covered)."""
    marks = ",".join("?" * len(types))
    rows = conn.execute(
        f"SELECT seq, payload FROM events WHERE seq > ? AND type IN ({marks}) ORDER BY seq LIMIT ?",
        (after, *types, limit),
    ).fetchall()
    return [r[1] for r in rows], (rows[-1][0] if len(rows) >= limit else None)


def iter_events(conn: sqlite3.Connection, after: int = 0, batch: int = 10_000,
                unreadable: Unreadable | None = None) -> Iterator[ev.Event]:
    """Every event after `after`, decoded, in seq order. A row this cocode cannot
    decode (another version wrote it) is skipped and counted in `unreadable`."""
    while True:
        start = after
        rows = read_payloads(conn, start, batch)  # payloads only: the fast path of every replay
        if not rows:
            return
        seqs = None
        for i, payload in enumerate(rows):
            try:
                event = ev.decode(payload)
            except Exception:
                if seqs is None:  # rare: this batch's seqs, to name the row and read on past it
                    seqs = [r[0] for r in conn.execute(
                        "SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (start, batch))]
                after = seqs[i]
                if unreadable is not None:
                    _note(conn, unreadable, seqs[i])
                continue
            after = event.seq
            yield event
        if len(rows) < batch:
            return


def _note(conn: sqlite3.Connection, unreadable: Unreadable, seq: int) -> None:
    """Count the row, with its type and (for the first) the cocode version that ran
    when it was written: the last service_started before it says."""
    row = conn.execute("SELECT type FROM events WHERE seq = ?", (seq,)).fetchone()
    first = not unreadable.count
    unreadable.note(seq, row[0] if row else "")
    if first:
        for (payload,) in conn.execute("SELECT payload FROM events WHERE seq < ? AND type = 'service_started' "
                                       "ORDER BY seq DESC LIMIT 5", (seq,)):
            try:
                unreadable.written_by = ev.decode(payload).version
            except Exception:
                continue
            break


def latest_snapshot(conn: sqlite3.Connection) -> State | None:
    row = conn.execute(
        "SELECT state FROM snapshots WHERE version = ? ORDER BY seq DESC LIMIT 1",
        (st.FOLD_VERSION,),
    ).fetchone()
    if row is None:
        return None
    try:
        return decode_state(row[0])
    except Exception:
        return None


def archive_dir(conn: sqlite3.Connection) -> Path | None:
    """Where compaction put this log's archive segments (beside the database file)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return archive.archive_dir(Path(file))
    return None


def iter_all_events(conn: sqlite3.Connection, after: int = 0,
                    unreadable: Unreadable | None = None) -> Iterator[ev.Event]:
    """Every event ever recorded after `after`: archive segments and the live table,
    merged in seq order. Without compaction, the same as iter_events."""
    where = archive_dir(conn)
    if where is None or not archive.archive_files(where):
        return iter_events(conn, after=after, unreadable=unreadable)
    return archive.merge_unique(archive.iter_archived(where, after, unreadable),
                                iter_events(conn, after=after, unreadable=unreadable))


def start_state(conn: sqlite3.Connection, unreadable: Unreadable | None = None) -> State:
    """Where a follower starts: the latest snapshot, else an empty state; but a
    compacted log without a usable snapshot (FOLD_VERSION changed) starts from the
    fold of everything, archive included, since a sync only sees the live table."""
    snap = latest_snapshot(conn)
    if snap is not None:
        return snap
    where = archive_dir(conn)
    if where is not None and archive.archive_files(where):
        return load_state(conn, use_snapshot=False, unreadable=unreadable)
    return State()


def load_state(conn: sqlite3.Connection, use_snapshot: bool = True,
               unreadable: Unreadable | None = None) -> State:
    """The folded state at the log's head: from the latest snapshot, then the tail.
    Without a snapshot (or with use_snapshot=False) it is a fold from scratch over
    every event, archived ones included. Rows skipped as unreadable are counted in
    `unreadable` (those before a snapshot were counted, or not, when it was made)."""
    state = latest_snapshot(conn) if use_snapshot else None
    if state is None:
        return st.replay(iter_all_events(conn, unreadable=unreadable), State())
    return st.replay(iter_events(conn, after=state.seq, unreadable=unreadable), state)
