"""`cocode doctor`: its table, its exit code, and the event-log check."""

from __future__ import annotations

import json
import sqlite3

from support import cocode


def checks(repo) -> tuple[int, dict]:
    proc = cocode(repo, "doctor", "--json", timeout=60)
    return proc.returncode, {c["check"]: c for c in json.loads(proc.stdout)}


def test_doctor_reports_the_log_and_services(running, repo):
    code, found = checks(repo)
    assert code == 0
    assert found["git"]["ok"] and found["services"]["detail"] == "all ready"
    assert found["event log"]["ok"] and "append-only" in found["event log"]["detail"]
    assert found["agent demo"]["ok"] and not found["agent claude"]["required"]


def test_doctor_fails_on_a_log_that_lost_its_triggers(repo):
    db = repo / ".cocode" / "events.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, ts FLOAT, type TEXT, job TEXT, run TEXT, payload BLOB)")
    conn.commit()
    conn.close()
    code, found = checks(repo)
    assert code == 1
    assert not found["event log"]["ok"] and "events_no_delete" in found["event log"]["detail"]
