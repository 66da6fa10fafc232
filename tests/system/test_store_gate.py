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
from cocode.paths import Paths
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


def test_forged_worker_beats_are_dropped_and_claim_no_run(tmp_path):
    """Beats claiming the real worker's pid from another process, and beats from an
    unsandboxed agent claiming its own: neither counts as a worker. Counted, either
    would be the least loaded worker and get the next runs (never to start them)."""
    import socket
    import subprocess
    import sys

    from support import ROOT, service_pid

    forger = str(AGENTS_DIR / "beat_forger.py")
    real = f"worker@{socket.gethostname()}"
    repo = make_repo(tmp_path / "repo")
    paths = Paths(repo)
    beater = {"command": ["{python}", forger, paths.endpoint("scheduler"), "worker@agent", "self",
                          str(tmp_path / "agent-beats"), "60"], "env": {"PYTHONPATH": str(ROOT)}}
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({"agents": {"beater": beater}, "sandbox": "off"}))
    up(repo)
    outside = None
    try:
        # As the real worker, by name (and routing id) and pid: only the kernel says otherwise.
        outside = subprocess.Popen([sys.executable, forger, paths.endpoint("scheduler"), real,
                                    str(service_pid(repo, "worker")), str(tmp_path / "outside-beats"), "60"],
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        cocode(repo, "submit", "--text", "beat", "--agent", "beater", check=True, timeout=30)
        wait_until(lambda: (tmp_path / "agent-beats").exists() and (tmp_path / "outside-beats").exists(), 30,
                   what="both forgers to beat")
        jobs = [json.loads(cocode(repo, "submit", "--text", f"t{i}", "--agent", "demo", "--json",
                                  check=True, timeout=30).stdout)["job"] for i in range(3)]
        for job in jobs:
            run = wait_until(lambda: (r := client.current_state(paths).jobs[job].runs["demo"]).final and r, 60,
                             what=f"job {job}")
            assert (run.worker, run.state) == (real, "ready"), run
        log = (paths.home / "logs" / "services" / "scheduler.log").read_text()
        dropped = [ln for ln in log.splitlines() if "dropped a worker beat not from its worker" in ln]
        assert len(dropped) == 1, dropped  # throttled: one line for a flood
        assert ("came from pid" in dropped[0] or "runs an agent's code" in dropped[0]), dropped
        assert "worker worker@agent is live" not in log
    finally:
        if outside is not None:
            outside.kill()
            outside.wait()
        down(repo)


def test_a_check_is_refused_like_the_agent_whose_code_it_runs(tmp_path):
    """A check runs the run's own code (its tests, a conftest.py the agent committed):
    unsandboxed, it reaches the store socket, so the gate refuses it as an agent. Here the
    check tries the user's own `cocode cancel` on another job; that job runs on."""
    import sys

    repo = make_repo(tmp_path / "repo")
    target = tmp_path / "victim-job"
    check = (f"{sys.executable} -m cocode -C {repo} cancel $(cat {target}) > {tmp_path}/cancel.out 2>&1; "
             f"echo $? > {tmp_path}/cancel.rc")
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({
        "sandbox": "off",  # the gate, not the sandbox, is what this shows
        "checks": {"sneaky": check},
        "agents": {
            "gate": {"command": ["bash", str(AGENTS_DIR / "gate.sh")],
                     "env": {**GIT_ENV, "GATE_FILE": str(tmp_path / "gate")}},
            "adr003": {"command": ["bash", str(AGENTS_DIR / "adr003_example.sh")], "env": GIT_ENV},
        }}))
    paths = up(repo)
    try:
        victim = json.loads(cocode(repo, "submit", "--text", "t", "--agent", "gate", "--json", check=True).stdout)["job"]
        target.write_text(victim)
        wait_until(lambda: client.current_state(paths).jobs[victim].runs["gate"].pid, 30, what="the victim to start")
        checked = json.loads(cocode(repo, "submit", "--text", "t", "--agent", "adr003", "--json", check=True).stdout)["job"]
        wait_until(lambda: (c := client.current_state(paths).jobs[checked].runs["adr003"].checks.get("sneaky"))
                   and c.status not in ("", "running", "queued") and c, 60, what="the sneaky check to finish")
        said = (tmp_path / "cancel.out").read_text()
        assert (tmp_path / "cancel.rc").read_text().strip() != "0", said
        assert "runs an agent's code" in said, said
        assert client.current_state(paths).jobs[victim].runs["gate"].state == "running"
        assert not [e for e in rows(paths, "cancel_requested") if e["job"] == victim]
    finally:
        down(repo)
