"""`cocode doctor` with no service running: the event-log check on a log that lost its
triggers, and which CPU share is in force. tests/system/test_doctor.py runs it beside a
running cocode."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from cocode.resources import cpushare
from support import cocode


def checks(repo) -> tuple[int, dict]:
    proc = cocode(repo, "doctor", "--json", timeout=60)
    return proc.returncode, {c["check"]: c for c in json.loads(proc.stdout)}


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


def test_doctor_says_which_cpu_share_is_in_force(repo):
    out = cocode(repo, "doctor", "--json", timeout=60)
    check = next(c for c in json.loads(out.stdout) if c["check"] == "cpu shares")
    assert check["detail"] == cpushare.describe()
    kind = cpushare.mode()[0]
    assert check["detail"].startswith("cgroup v2" if kind == "cgroup" else f"nice {cpushare.AGENT_NICE}")
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert kind == "nice"  # this machine: cgroup v1, so the nice fallback is in force
    assert sys.platform.startswith("linux")


