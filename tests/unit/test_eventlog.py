"""The event log file (cocode.core.eventlog) without the store: its schema keeps
`events` append-only, events read back in seq order (bad rows skipped), typed reads
say how far they cover, state loads from a snapshot plus the tail as from scratch,
and a missing or corrupt file is one clear error."""

from __future__ import annotations

import sqlite3

import pytest

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import encode_state
from cocode.errors import CocodeError


def write(conn: sqlite3.Connection, events: list[ev.Event]) -> None:
    """What the store does with a batch: rows with their seq, in one transaction."""
    conn.execute("BEGIN")
    for e in events:
        conn.execute("INSERT INTO events (seq, ts, type, job, run, payload) VALUES (?, ?, ?, ?, ?, ?)",
                     (e.seq, e.ts, e.type, e.job, "", ev.encode(e)))
    conn.execute("COMMIT")


def log(n: int) -> list[ev.Event]:
    evts: list[ev.Event] = [ev.JobSubmitted(job="j1", title="t", body="b", agents=["a"], base_sha="x")]
    evts += [ev.WarningEvent(code="c", message=str(i)) if i % 3 == 0 else ev.BenchTick(n=i) for i in range(1, n)]
    for seq, e in enumerate(evts, 1):
        e.seq, e.ts = seq, float(seq)
    return evts


def test_events_is_append_only(tmp_path):
    conn = eventlog.open_for_writing(tmp_path / "events.db")
    write(conn, log(5))
    for sql in ("UPDATE events SET type = 'x' WHERE seq = 1", "DELETE FROM events WHERE seq = 1",
                "DELETE FROM events"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    assert eventlog.head(conn) == 5
    conn.close()
    again = eventlog.open_for_writing(tmp_path / "events.db")  # reopening keeps it all
    assert [e.seq for e in eventlog.iter_events(again)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 100, 101, 235])
def test_insert_events_writes_every_row_of_any_batch_size(tmp_path, n):
    """The store's batched insert (100, 10 and 1 rows a statement) leaves out nothing
    and misplaces no column, whatever the remainder."""
    conn = eventlog.open_for_writing(tmp_path / "events.db")
    evts = log(n + 1)[1:]
    values: list = []
    for e in evts:
        values += (e.seq, e.ts, e.type, e.job, f"run{e.seq}", ev.encode(e))
    conn.execute("BEGIN")
    eventlog.insert_events(conn, values)
    conn.execute("COMMIT")
    rows = conn.execute("SELECT seq, ts, type, job, run, payload FROM events ORDER BY seq").fetchall()
    assert rows == [(e.seq, e.ts, e.type, e.job, f"run{e.seq}", ev.encode(e)) for e in evts]


def test_reading_in_order_skipping_bad_rows_and_typed_reads(tmp_path):
    path = tmp_path / "events.db"
    conn = eventlog.open_for_writing(path)
    evts = log(30)
    write(conn, evts[:20])
    conn.execute("INSERT INTO events (seq, ts, type, job, run, payload) VALUES (21, 21.0, 'x', '', '', ?)",
                 (b"\xc1 not msgpack",))
    write(conn, evts[21:])
    reader = eventlog.open_for_reading(path)
    assert [e.seq for e in eventlog.iter_events(reader, batch=7)] == [s for s in range(1, 31) if s != 21]
    assert [e.seq for e in eventlog.iter_events(reader, after=25)] == [26, 27, 28, 29, 30]
    warnings = [e.seq for e in evts if e.type == "warning"]
    payloads, covered = eventlog.read_typed(reader, 0, ["warning"], limit=4)
    assert [ev.decode(p).seq for p in payloads] == warnings[:4] and covered == warnings[3]
    payloads, covered = eventlog.read_typed(reader, warnings[3], ["warning"], limit=100)
    assert [ev.decode(p).seq for p in payloads] == warnings[4:] and covered is None, "all covered up to the head"
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("INSERT INTO producers VALUES ('p', 1)")  # a reader cannot write


def test_state_from_a_snapshot_and_its_tail_is_the_state_from_scratch(tmp_path):
    conn = eventlog.open_for_writing(tmp_path / "events.db")
    evts = log(40)
    write(conn, evts)
    scratch = eventlog.load_state(conn, use_snapshot=False)
    assert scratch.seq == 40 and "j1" in scratch.jobs and len(scratch.warnings) == 13
    assert eventlog.latest_snapshot(conn) is None
    at = st.replay(evts[:25])
    conn.execute("INSERT INTO snapshots (seq, version, ts, state) VALUES (?, ?, ?, ?)",
                 (25, st.FOLD_VERSION, 0.0, encode_state(at)))
    conn.execute("INSERT INTO snapshots (seq, version, ts, state) VALUES (?, ?, ?, ?)",
                 (30, st.FOLD_VERSION - 1, 0.0, b"an older fold: ignored"))
    assert eventlog.latest_snapshot(conn).seq == 25
    assert encode_state(eventlog.load_state(conn)) == encode_state(scratch)
    assert eventlog.start_state(conn).seq == 25, "a follower starts at the snapshot"


def test_a_missing_or_corrupt_log_is_one_clear_error(tmp_path):
    with pytest.raises(CocodeError, match="cocode up"):
        eventlog.open_for_reading(tmp_path / "none.db")
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" + bytes(range(256)) * 32)
    for opener in (eventlog.open_for_reading, eventlog.open_for_writing):
        with pytest.raises(CocodeError) as err:
            opener(bad)
        assert str(bad) in str(err.value) and "move the file aside" in str(err.value)
