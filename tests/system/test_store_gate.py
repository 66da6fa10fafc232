"""The store's trust in what it is sent (issue 11, defect 4), with a real cocode:
a live run's reports only from its worker, a row written behind the store's back
does not wedge it, and a store that refuses appends is shown unhealthy."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import msgspec

from cocode import client
from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from support import AGENTS_DIR, cocode, down, make_repo, up, wait_until

GIT_ENV = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@cocode.invalid", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@cocode.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def rows(paths, kind: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
    try:
        return [msgspec.msgpack.decode(p) for (p,) in conn.execute("SELECT payload FROM events WHERE type = ?", (kind,))]
    finally:
        conn.close()


def ps(repo) -> dict[str, dict]:
    proc = cocode(repo, "ps", "--json", timeout=20)
    return {r["name"]: r for r in json.loads(proc.stdout)}


def test_a_forged_run_finished_is_refused_and_the_users_cancel_is_not(tmp_path, ctx):
    repo = make_repo(tmp_path / "repo")
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(
        {"agents": {"gate": {"command": ["bash", str(AGENTS_DIR / "gate.sh")],
                             "env": {**GIT_ENV, "GATE_FILE": str(tmp_path / "gate")}}}}))
    paths = up(repo)
    try:
        out = cocode(repo, "submit", "--text", "t", "--agent", "gate", "--json", check=True)
        job = json.loads(out.stdout)["job"]
        run = wait_until(lambda: (r := client.current_state(paths).jobs[job].runs["gate"]).pid and r, 30)
        assert run, "the run never started"
        forged = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("forger"))
        forged.append(ev.RunFinished(job=job, agent="gate", state="ready", ready_commit="0" * 40,
                                     attempt=run.attempt))
        assert forged.wait(10), "the store did not answer"
        refused = wait_until(lambda: [w for w in rows(paths, "warning") if w["code"] == "append_refused"], 10)
        assert refused and refused[0]["job"] == job, refused
        assert f"the run belongs to worker pid {run.worker_pid}" in refused[0]["message"]
        assert not [e for e in rows(paths, "run_finished") if e["job"] == job]
        assert client.current_state(paths).jobs[job].runs["gate"].state == "running"
        forged.close()
        # The user's cancel is no agent's and no run report: it ends the run.
        cocode(repo, "cancel", job, check=True, timeout=60)
        assert client.current_state(paths).jobs[job].runs["gate"].state == "cancelled"
    finally:
        down(repo)


def test_a_row_written_behind_the_stores_back_does_not_wedge_it(tmp_path, ctx):
    repo = make_repo(tmp_path / "repo")
    paths = up(repo)
    try:
        conn = sqlite3.connect(paths.db)
        head = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        payload = ev.encode(ev.WarningEvent(seq=head + 2, code="foreign", message="x"))
        conn.execute("INSERT INTO events (seq, ts, type, job, run, payload) VALUES (?, ?, 'warning', '', '', ?)",
                     (head + 2, time.time(), payload))
        conn.commit()
        conn.close()
        app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"))
        for i in range(5):
            app.append(ev.BenchTick(job="after", n=i))
        assert app.wait(10), f"appends wedged: {app.refused}"
        warning = wait_until(lambda: [w for w in rows(paths, "warning") if w["code"] == "foreign_events"], 10)
        assert warning and f"events {head + 2}..{head + 2} were not written by the store" in warning[0]["message"]
        assert len(rows(paths, "bench_tick")) == 5
        assert ps(repo)["store"]["state"] == "ready"
        app.close()
    finally:
        down(repo)


def test_a_store_refusing_appends_is_unhealthy_in_ps_and_doctor(tmp_path, ctx):
    repo = make_repo(tmp_path / "repo")
    up(repo, env=dict(os.environ, COCODE_STORE_MAX_PAGES="40"))
    try:
        from cocode.paths import Paths

        paths = Paths(repo)
        app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("fill"), resend_after=0.2)
        deadline = time.monotonic() + 30
        while not app.refused and time.monotonic() < deadline:
            app.append(ev.WarningEvent(job="fill", code="fill", message="x" * 2000))
            app.wait(0.5)
        assert app.refused, "the store never refused"
        store = wait_until(lambda: (s := ps(repo)["store"])["state"] == "unhealthy" and s, 10)
        assert store, ps(repo)
        assert store["reason"].startswith("refusing appends: ") and "database or disk is full" in store["reason"]
        doctor = cocode(repo, "doctor", "--json", timeout=60)
        services = [c for c in json.loads(doctor.stdout) if c["check"] == "services"][0]
        assert not services["ok"] and "store" in services["detail"], services
        app.close()
    finally:
        down(repo)
