"""A damaged event log is refused, never served as truth (issue 11, defect 5):
`up` and readers run SQLite's quick check, `doctor` a full check that decodes
every payload, and a log that does not continue its archive does not start.

Real logs made by a real running cocode, damaged on disk as bad luck would."""

from __future__ import annotations

import json
import random
import sqlite3
import struct
from pathlib import Path

import pytest

from support import cocode, down, up, wait_until


def one_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def make_log(repo: Path, compact: bool = False, jobs: int = 1) -> Path:
    """A real log: cocode up, demo jobs to the end, (compacted,) cocode down."""
    up(repo)
    try:
        for i in range(jobs):
            text = f"# corrupt-me {i}\n" + "x" * 3000  # a few KB an event: several pages
            proc = cocode(repo, "submit", "--text", text, "--agent", "demo", "--wait", timeout=60)
            assert proc.returncode == 0, proc.stderr
        if compact:
            proc = cocode(repo, "compact", "--older-than", "0", timeout=60)
            assert proc.returncode == 0 and "archived" in proc.stdout, proc.stdout + proc.stderr
    finally:
        down(repo)
    db = repo / ".cocode" / "events.db"
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    return db


def flip_a_leaf(db: Path) -> None:
    """200 bytes flipped in the events table's first leaf page (not its root, so
    reading the newest seq still works and the damage shows only deeper)."""
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    at = (root - 1) * page
    assert data[at] == 0x05, "the root is an interior page: enough events were made"
    cell = struct.unpack(">H", data[at + 12 : at + 14])[0]
    leaf = (struct.unpack(">I", data[at + cell : at + cell + 4])[0] - 1) * page
    for i in random.Random(3).sample(range(leaf + 100, leaf + page), 200):
        data[i] ^= 0xFF
    db.write_bytes(bytes(data))


def refused_up(repo: Path) -> str:
    """`cocode up` must refuse: its one line. Should it start anyway (the old
    code did), it is brought down again: a failing test leaves nothing running."""
    try:
        return one_line(cocode(repo, "up", "--detach", timeout=60))
    finally:
        cocode(repo, "down", timeout=60)


def doctor_log(repo: Path) -> dict:
    proc = cocode(repo, "doctor", "--json", timeout=60)
    assert proc.returncode == 1, proc.stdout
    return {c["check"]: c for c in json.loads(proc.stdout)}["event log"]


def test_a_log_with_damaged_pages_is_refused_by_up_readers_and_doctor(repo):
    db = make_log(repo, jobs=4)
    flip_a_leaf(db)
    line = refused_up(repo)
    assert "event log is corrupt" in line and "restore" in line and "backup" in line, line
    line = one_line(cocode(repo, "status", timeout=30))
    assert "corrupt" in line
    line = one_line(cocode(repo, "events", timeout=30))
    assert "corrupt" in line
    check = doctor_log(repo)
    assert not check["ok"] and "corrupt" in check["detail"]


def test_doctor_decodes_every_payload(repo):
    db = make_log(repo)
    data = db.read_bytes()
    at = data.find(b"\xa4type\xadjob_submitted")
    assert at > 0
    db.write_bytes(data[:at] + b"\xa4typx" + data[at + 5 :])  # SQLite's pages stay valid
    check = doctor_log(repo)
    assert not check["ok"] and "1 events do not decode as stored" in check["detail"], check


@pytest.mark.parametrize("how", ["zero_bytes", "missing"])
def test_a_log_that_does_not_continue_its_archive_is_refused(repo, how):
    db = make_log(repo, compact=True)
    assert list((repo / ".cocode" / "archive").glob("events-*.lz4"))
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if how == "zero_bytes":
        db.write_bytes(b"")
    else:
        db.unlink()
    line = refused_up(repo)
    assert "archive/ holds events up to seq" in line and "restore" in line, line
    wait_until(lambda: not (repo / ".cocode" / "run" / "store.ipc").exists(), 5, what="no store socket")
    check = doctor_log(repo) if db.exists() else None
    if check:
        assert not check["ok"] and "archive/ holds events" in check["detail"]
