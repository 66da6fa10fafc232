"""The store's gate (issue 11, defect 4) with a real cocode: a live run's reports
are taken only from its worker; the user's own commands still pass. (An agent's
appends, refused whole, are in test_hostile.py.)"""

from __future__ import annotations

import json
import os
import sqlite3

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
        run = wait_until(lambda: (r := client.current_state(paths).jobs[job].runs["gate"]).pid and r, 30,
                         what="the run to start")
        forged = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("forger"))
        forged.append(ev.RunFinished(job=job, agent="gate", state="ready", ready_commit="0" * 40,
                                     attempt=run.attempt))
        assert forged.wait(10), "the store did not answer"
        refused = wait_until(lambda: [w for w in rows(paths, "warning") if w["code"] == "append_refused"], 10,
                             what="the refusal in the log")
        assert refused[0]["job"] == job, refused
        assert f"the run belongs to worker pid {run.worker_pid}" in refused[0]["message"]
        assert not [e for e in rows(paths, "run_finished") if e["job"] == job]
        assert client.current_state(paths).jobs[job].runs["gate"].state == "running"
        forged.close()
        # The user's cancel is no agent's and no run report: it ends the run.
        cocode(repo, "cancel", job, check=True, timeout=60)
        assert client.current_state(paths).jobs[job].runs["gate"].state == "cancelled"
    finally:
        down(repo)
