"""Hostile agents (issue 11, defect 4): real attacks on cocode's state from inside a
run, judged by their effects.

One victim run in its own job, one in the attackers' job (a sibling), and one
attacker run per attack (tests/agents/hostile.py): forged cancel_requested and
run_finished(ready) appended to the store socket, fake evt.* published on bus-in,
another run's branch moved to a forged ready commit with `git update-ref`, a row
inserted into .cocode/events.db, other runs' worktrees, logs and environments
searched for the victims' secret, and two daemons (fork, setsid, fork, chdir /; one
of them through `env -i`, with neither the run's session nor its marks).

With the sandbox every attack fails and the victims end ready with their own
commits; with `sandbox: off` the test asserts what remains possible, so that a
change in either direction is seen (the daemon dies with its run in both).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import zmq

from cocode import client
from cocode.core.views import RunView, State
from cocode.jobs import sandbox
from cocode.paths import Paths
from support import AGENTS_DIR, cocode, down, git, heavy, make_repo, up, wait_until

ATTACKS = ("forge_cancel", "forge_finished", "bus_in", "update_ref", "write_db", "read_others", "daemonise")
TOKEN = "VICTIM-SECRET-" + os.urandom(4).hex()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
# Without the sandbox, what an agent can still do. Forged appends are refused by the
# store's gate (cocode/core/gate.py): an agent is a descendant of the worker. Fake
# evt.* reach the bus but no follower takes them (they lack the store's seal). A daemon
# dies with its run either way (the worker is subreaper: resources/reaper.py).
POSSIBLE_WITHOUT_SANDBOX = {"update_ref", "write_db", "read_others"}


def write_config(repo: Path, mode: str) -> None:
    agents = {"victim": {"command": ["bash", str(AGENTS_DIR / "victim.sh")], "env": {**GIT_ENV, "VICTIM_TOKEN": TOKEN}}}
    for attack in ATTACKS:
        agents[attack] = {"command": ["{python}", str(AGENTS_DIR / "hostile.py"), attack], "env": GIT_ENV}
    config = {"agents": agents, "performance": {"max_concurrent_agents": 10, "max_worktrees": 12}, "sandbox": mode}
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config, indent=1))


def submit(repo: Path, *agents: str) -> str:
    args = [a for agent in agents for a in ("--agent", agent)]
    proc = cocode(repo, "submit", "--text", "attack or be attacked", *args, "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["job"]


def state_of(paths: Paths) -> State:
    return client.current_state(paths)


def run(paths: Paths, job: str, agent: str) -> RunView | None:
    j = state_of(paths).jobs.get(job)
    return j.runs.get(agent) if j else None


def stored(paths: Paths) -> list[tuple[int, str, str, bytes]]:
    conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT seq, type, job, payload FROM events ORDER BY seq"))
    finally:
        conn.close()


def daemons(job: str) -> list[psutil.Process]:
    want = ["sleep", f"4242.{int(job, 16)}"]
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if p.info["cmdline"] == want and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def attack_everything(tmp_path: Path, mode: str) -> tuple[dict[str, bool], dict]:
    """Run every attack against two live victims; which ones succeeded, and details."""
    repo = make_repo(tmp_path / "repo")
    write_config(repo, mode)
    paths = up(repo)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(paths.endpoint("bus"))
    sub.setsockopt(zmq.SUBSCRIBE, b"evt.")
    left: list[psutil.Process] = []
    # What a user following the log sees (a Follower, as every service and dashboard has).
    followed = tmp_path / "events-follow.jsonl"
    with open(followed, "wb") as out:
        watcher = subprocess.Popen([sys.executable, "-m", "cocode", "-C", str(repo), "events", "-f", "--json"],
                                   stdout=out, stderr=subprocess.DEVNULL)
    try:
        lone = submit(repo, "victim")
        wait_until(lambda: (r := run(paths, lone, "victim")) and r.commits >= 1, 60, what="the victim's first commit")
        job = submit(repo, "victim", *ATTACKS)
        wait_until(lambda: all((r := run(paths, job, a)) and r.final for a in ATTACKS), 120,
                   what="every attacker's run to end")
        # The daemonise run's run_finished is recorded after its sweep: its daemons are
        # gone by now (the bounded wait only covers a SIGKILL's delivery).
        try:
            wait_until(lambda: not daemons(job), 5, what="the daemons to be gone with their run")
        except AssertionError:
            left = daemons(job)
        # The bus carries the attackers' run_finished after whatever they published.
        bus_seen: list[bytes] = []
        wait_until(lambda: _drain(sub, bus_seen, job), 20, what="the bus_in attacker's run_finished on the bus")
        wait_until(lambda: _followed_end(followed.read_text(), job), 30,
                   what="`cocode events -f` to show the bus_in attacker's run_finished")
        reports = {a: json.loads((Path(run(paths, job, a).worktree) / "hostile-report.json").read_text())
                   for a in ATTACKS}

        victims = [(lone, "victim"), (job, "victim")]
        for j, a in victims:
            (Path(run(paths, j, a).worktree) / "release").touch()
        wait_until(lambda: all(run(paths, j, a).final for j, a in victims), 60, what="the victims to end")
        ends = {f"{j}/{a}": run(paths, j, a) for j, a in victims}
        rows = stored(paths)
        forged_on_branch = {
            k: git(repo, "log", "--format=%s", f"{r.branch}") for k, r in ends.items()
        }
        succeeded = {
            "forge_cancel": any(t == "cancel_requested" and j in (lone, job) for _, t, j, _ in rows),
            "forge_finished": any(t == "run_finished" and b"FORGED-FINISH" in p for _, t, _, p in rows)
            or any(r.ready_commit == "0" * 40 for r in ends.values()),
            "bus_in": "FORGED-BUS" in followed.read_text(),
            "update_ref": any("hostile: forged" in log for log in forged_on_branch.values()),
            "write_db": any(b"FORGED-DB" in p for _, _, _, p in rows),
            "read_others": TOKEN in reports["read_others"].get("found", []),
            "daemonise": bool(left),
        }
        details = {"reports": reports, "victims": {k: (r.state, r.reason, r.detail) for k, r in ends.items()},
                   "daemons_left": len(left), "ps": cocode(repo, "ps", "--json").stdout,
                   "forged_on_bus": any(b"FORGED-BUS" in frame for frame in bus_seen)}
        return succeeded, details
    finally:
        watcher.kill()
        watcher.wait(10)
        for p in left:
            p.kill()
        ctx.destroy(linger=0)
        down(repo)


def _followed_end(text: str, job: str) -> bool:
    """`cocode events -f --json` has shown the bus_in attacker's (real) run_finished."""
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line still being written
        if e.get("type") == "run_finished" and e.get("job") == job and e.get("agent") == "bus_in":
            return True
    return False


def _drain(sub: zmq.Socket, seen: list[bytes], job: str) -> bool:
    """Collect bus frames; True once the bus_in attacker's run_finished is among them."""
    while sub.poll(50):
        seen.append(sub.recv_multipart()[1])  # [topic, envelope, seal]; a forgery has no seal
    from cocode.core import events as ev

    for payload in seen:
        try:
            e = ev.decode(payload)
        except Exception:
            continue
        if isinstance(e, ev.RunFinished) and e.job == job and e.agent == "bus_in" and e.seq:
            return True
    return False


@heavy
def test_every_attack_fails_in_the_sandbox(tmp_path):
    why = sandbox.unavailable()
    if why:
        pytest.skip(f"sandbox unavailable: {why}")
    succeeded, details = attack_everything(tmp_path, "bwrap")
    assert [a for a, ok in succeeded.items() if ok] == [], details
    for key, (state, reason, detail) in details["victims"].items():
        assert state == "ready", (key, state, reason, detail)
    assert details["daemons_left"] == 0 and details["reports"]["daemonise"].get("daemons") == 2, details


@heavy
def test_without_the_sandbox_what_remains_possible(tmp_path):
    succeeded, details = attack_everything(tmp_path, "off")
    assert {a for a, ok in succeeded.items() if ok} == POSSIBLE_WITHOUT_SANDBOX, (succeeded, details)
    assert details["forged_on_bus"], "the bus_in attack never reached the bus: its failure proves nothing"
    assert details["daemons_left"] == 0 and details["reports"]["daemonise"].get("daemons") == 2, details
    # The store did not wedge on the row written behind its back: the victims ended. The
    # sibling's branch, moved to an orphan, is no run's work: it fails with the reason;
    # the other, moved on top of its tip, passes for its own (what the sandbox prevents).
    (lone_state, _, _), (sibling_state, reason, detail) = details["victims"].values()
    assert lone_state == "ready", details
    assert (sibling_state, reason) == ("failed", "not_from_base"), details
    assert "does not descend from the run's base" in detail
    assert '"unhealthy"' not in details["ps"], details["ps"]
