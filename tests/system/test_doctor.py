"""`cocode doctor` beside a running cocode: its table, its exit code, and the event-log
check. Without services: tests/unit/test_doctor_checks.py."""

from __future__ import annotations

import json

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


