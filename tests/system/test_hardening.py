"""Issue 11, from outside: runs that cannot start end at once and say why, cancel
ends a run in any state, and nothing a failed start leaves behind stays.

Real running cocode, the real CLI, real agent processes (tests/agents/).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cocode import client, lock
from cocode.paths import Paths
from support import AGENTS_DIR, cocode, down, make_repo, up, wait_until

GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
GLUED = "ghp_" + "Zy09" * 9  # a GitHub token; `KEY_ghp_…` hid it from the old rules


def write_config(repo: Path, tmp: Path, **extra) -> None:
    table = {
        # {prompt} as an argument: a NUL byte in the issue cannot be passed to exec.
        "echoer": {"command": ["bash", "-c", "echo \"$1\"", "echoer", "{prompt}"], "env": GIT_ENV},
        # Fails with a token glued to a word as its last line: that line becomes run_finished.detail.
        "leaky": {"command": ["bash", "-c", f"echo 'auth failed for KEY_{GLUED}' >&2; exit 1"], "env": GIT_ENV},
        # Announces ready, then resets the ready commit off its branch before exiting.
        "unready": {"command": ["bash", "-c", 'cd "$COCODE_REPO_PATH" && echo x > f && git add f && '
                                'git commit -qm done -m "$COCODE_READY_MARKER" && sleep 1 && '
                                'git reset -q --hard HEAD~1 && echo reset'], "env": GIT_ENV},
        "gate": {"command": ["bash", str(AGENTS_DIR / "gate.sh")],
                 "env": {**GIT_ENV, "GATE_FILE": str(tmp / "gate")}},
    }
    (repo / ".cocode").mkdir(mode=0o700, exist_ok=True)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({"agents": table, **extra}))


@pytest.fixture
def hrepo(tmp_path: Path):
    repo = make_repo(tmp_path / "repo")
    # The gate agent waits on a file outside its worktree, which the sandbox hides.
    write_config(repo, tmp_path, performance={"max_concurrent_agents": 1}, sandbox="off")
    up(repo)
    try:
        yield repo
    finally:
        down(repo)


def run_of(repo: Path, job: str, agent: str):
    j = client.current_state(Paths(repo)).jobs.get(job)
    return j.runs[agent] if j else None


def submit(repo: Path, *args: str) -> str:
    proc = cocode(repo, "submit", "--json", *args, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["job"]


def test_an_agent_that_cannot_be_started_ends_spawn_failed_with_the_reason(hrepo, tmp_path):
    issue = tmp_path / "i.md"
    issue.write_bytes(b"# t\nbody\0x\n")
    job = submit(hrepo, "--issue-file", str(issue), "--agent", "echoer")
    run = wait_until(lambda: (r := run_of(hrepo, job, "echoer")) and r.final and r, 20,
                     what="the run to end")
    assert (run.state, run.reason) == ("failed", "spawn_failed"), run
    assert "null byte" in run.detail, run.detail
    dispatched = [e for e in client_events(hrepo, "run_dispatched") if e["job"] == job]
    assert len(dispatched) == 1, "started once, never redispatched"
    spool = Paths(hrepo).home / "spool"
    wait_until(lambda: not list(spool.glob(f"{job}*")), 10, what="no spool file left")
    tmp = Paths(hrepo).home / "tmp"
    assert not list(tmp.glob(f"{job}-*")), "the issue file of a run that never started is gone"


def client_events(repo: Path, kind: str) -> list[dict]:
    proc = cocode(repo, "events", "--json", "--type", kind, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_cancel_ends_a_queued_run_and_a_running_one(hrepo, tmp_path):
    first = submit(hrepo, "--text", "hold the only slot", "--agent", "gate")
    wait_until(lambda: (r := run_of(hrepo, first, "gate")) and r.started_at, 20, what="the first run")
    queued = submit(hrepo, "--text", "wait behind it", "--agent", "gate")
    proc = cocode(hrepo, "cancel", queued, timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = wait_until(lambda: (r := run_of(hrepo, queued, "gate")) and r.final and r, 10,
                     what="the queued run to end")
    assert (run.state, run.started_at) == ("cancelled", None)
    proc = cocode(hrepo, "cancel", first, timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = wait_until(lambda: (r := run_of(hrepo, first, "gate")) and r.final and r, 15,
                     what="the running run to end")
    assert run.state == "cancelled"


def test_cancel_ends_a_run_still_being_prepared_and_it_never_starts(tmp_path):
    # git runs post-checkout when a run's clone is checked out; with that hook in the
    # templates the worker's git inherits (GIT_TEMPLATE_DIR), the run's preparation
    # blocks until the test opens the hold file.
    hold = tmp_path / "hold"
    hook = tmp_path / "templates" / "hooks" / "post-checkout"
    hook.parent.mkdir(parents=True)
    hook.write_text(f"#!/bin/sh\nfor i in $(seq 200); do [ -e {hold} ] && exit 0; sleep 0.1; done\n")
    hook.chmod(0o755)
    hrepo = make_repo(tmp_path / "repo")
    write_config(hrepo, tmp_path, performance={"max_concurrent_agents": 1}, sandbox="off")
    up(hrepo, env=dict(os.environ, GIT_TEMPLATE_DIR=str(hook.parent.parent)))
    try:
        job = submit(hrepo, "--text", "cancel me early", "--agent", "gate")
        wait_until(lambda: (r := run_of(hrepo, job, "gate")) and r.live, 10, what="the dispatch")
        proc = cocode(hrepo, "cancel", job, timeout=30)
        assert proc.returncode == 0, proc.stderr
        run = wait_until(lambda: (r := run_of(hrepo, job, "gate")) and r.final and r, 5,
                         what="the run being prepared to end")
        assert (run.state, run.reason, run.started_at) == ("cancelled", "cancelled", None)
        hold.touch()
        (tmp_path / "gate").touch()
        # A later run starts on the same worker once the cancelled one's preparation is over.
        later = submit(hrepo, "--text", "after it", "--agent", "gate")
        wait_until(lambda: (r := run_of(hrepo, later, "gate")) and r.final, 20, what="the later run")
        assert not [e for e in client_events(hrepo, "run_started") if e["job"] == job], "it never started"
    finally:
        down(hrepo)


def test_a_failing_agents_last_line_is_redacted_before_it_is_logged(hrepo):
    job = submit(hrepo, "--text", "leak a token", "--agent", "leaky")
    run = wait_until(lambda: (r := run_of(hrepo, job, "leaky")) and r.final and r, 20, what="the run to end")
    assert run.reason == "exit_1" and "[REDACTED:github-token]" in run.detail, run.detail
    proc = cocode(hrepo, "events", "--json", timeout=30)
    assert proc.returncode == 0 and GLUED[4:] not in proc.stdout
    assert GLUED[4:].encode() not in (Paths(hrepo).home / "events.db").read_bytes()


@pytest.mark.parametrize("days", [-1.0, float("nan"), float("inf")])
def test_the_store_refuses_a_compaction_age_that_is_not_one(hrepo, ctx, days):
    from cocode.core import wire
    from cocode.core.sockets import dealer

    job = submit(hrepo, "--text", "finish", "--agent", "demo")
    wait_until(lambda: (r := run_of(hrepo, job, "demo")) and r.final, 30, what="the demo run")
    sock = dealer(ctx, Paths(hrepo).endpoint("store"))
    sock.send(wire.encoder.encode(wire.Compact(older_than_days=days)))
    assert sock.poll(30_000), "the store answers"
    reply = wire.reply_decoder.decode(sock.recv())
    sock.close(0)
    assert isinstance(reply, wire.CompactDone) and reply.archive is None, reply
    assert "is not a compaction age" in reply.error
    assert not list((Paths(hrepo).home / "archive").glob("*")), "nothing archived"
    proc = cocode(hrepo, "compact", "--older-than", "nan", timeout=60)
    assert proc.returncode == 1 and "is not a compaction age" in proc.stderr, proc.stderr
    assert run_of(hrepo, job, "demo").state == "ready", "the job is still in the log"


def test_a_finished_runs_log_leaves_no_partial_lz4_file(hrepo):
    job = submit(hrepo, "--text", "say something", "--agent", "demo")
    wait_until(lambda: (r := run_of(hrepo, job, "demo")) and r.final, 30, what="the demo run")
    logs = Paths(hrepo).logs
    assert (logs / f"{job}-demo.log").stat().st_size > 0
    assert wait_until(lambda: not list(logs.glob(".*.partial")), 10, what="the .lz4.partial to go")
    proc = cocode(hrepo, "tail", job, "demo", timeout=30)
    assert proc.returncode == 0 and proc.stdout.strip(), "the log still reads back"


def test_submit_wait_says_so_and_exits_when_cocode_is_brought_down(hrepo):
    import subprocess
    import sys

    waiter = subprocess.Popen(
        [sys.executable, "-m", "cocode", "-C", str(hrepo), "submit", "--text", "wait for me",
         "--agent", "gate", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def started():
            jobs = client.current_state(Paths(hrepo)).jobs.values()
            return any(r.started_at for j in jobs for r in j.runs.values())

        wait_until(started, 20, what="the run to start")
        assert cocode(hrepo, "down", timeout=60).returncode == 0
        out, err = waiter.communicate(timeout=10)
    finally:
        waiter.kill()
        waiter.wait()
    lines = err.strip().splitlines()
    assert waiter.returncode == 1, (out, err)
    assert len(lines) == 1 and "cocode stopped before job" in lines[0] and "cocode up" in lines[0], err


def test_a_ready_commit_reset_off_its_branch_is_not_ready(hrepo):
    job = submit(hrepo, "--text", "take it back", "--agent", "unready")
    run = wait_until(lambda: (r := run_of(hrepo, job, "unready")) and r.final and r, 20, what="the run to end")
    announced = [e for e in client_events(hrepo, "run_ready") if e["job"] == job]
    assert announced, "the worker saw the ready commit before it went"
    assert (run.state, run.reason, run.ready_commit) == ("failed", "ready_commit_lost", None), run
    assert announced[0]["commit"][:12] in run.detail


def test_kill9_of_the_supervisor_loses_no_last_event_and_the_cli_knows_at_once(hrepo):
    import os
    import signal
    import time

    from support import cocode_processes

    job = submit(hrepo, "--text", "be running", "--agent", "gate")
    wait_until(lambda: (r := run_of(hrepo, job, "gate")) and r.started_at, 20, what="the run to start")
    supervisor = lock.running_pid(Paths(hrepo))
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not cocode_processes(hrepo), 30, what="every service to stop on its own")
    assert (Paths(hrepo).socket_dir / "store.ipc").exists(), "stale socket files were left (as by a real crash)"
    assert not client.is_running(Paths(hrepo)), "a dead supervisor's stale sockets are not a running cocode"
    t0 = time.monotonic()
    proc = cocode(hrepo, "events", "--json", timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 0
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    last_start = max(e["seq"] for e in events if e["type"] == "service_started" and e["service"] == "store")
    stopped = {e["service"] for e in events if e["type"] == "service_stopped" and e["seq"] > last_start}
    assert stopped >= {"scheduler", "worker", "logs", "monitor", "store"}, stopped
    assert [e["type"] for e in events if e["type"] == "service_stopped"][-1:] == ["service_stopped"]
    assert events[-1]["type"] == "service_stopped" and events[-1]["service"] == "store", "the store stopped last"
    assert any(e["type"] == "run_interrupted" and e["job"] == job for e in events)
    run = run_of(hrepo, job, "gate")
    assert run.state != "running" and not run.live, run
    assert took < 3.0, f"`cocode events` took {took:.1f} s over stale sockets"


ATTACKS = ("write_log", "reach_store", "read_other_worktree", "read_logs", "forge_ref",
           "write_main_checkout", "write_git_config", "real_home")


def test_hostile_agent_in_and_out_of_the_sandbox(tmp_path, sandbox_mode):
    """With `sandbox: bwrap` every attack is blocked; with `sandbox: off` the report
    documents what an agent can do (most of it). Its daemon dies with it in both."""
    import psutil

    mode = sandbox_mode
    repo = make_repo(tmp_path / "repo")
    env = {**GIT_ENV, "REAL_HOME": os.environ.get("HOME", "/root")}
    agents = {"hostile": {"command": ["bash", str(AGENTS_DIR / "hostile.sh")], "env": env},
              "gate": {"command": ["bash", str(AGENTS_DIR / "gate.sh")],
                       "env": {**GIT_ENV, "GATE_FILE": str(tmp_path / "gate")}}}
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({"agents": agents, "sandbox": mode}))
    up(repo)
    try:
        other = submit(repo, "--text", "a victim run", "--agent", "gate")  # a worktree to go after
        wait_until(lambda: (r := run_of(repo, other, "gate")) and r.started_at, 20, what="the victim run")
        job = submit(repo, "--text", "attack", "--agent", "hostile")
        run = wait_until(lambda: (r := run_of(repo, job, "hostile")) and r.final and r, 30, what="the hostile run")
        assert run.state == "ready", run
        found = dict(line.split(": ") for line in
                     subprocess.run(["git", "show", f"{run.ready_commit}:report.txt"], cwd=repo,
                                    capture_output=True, text=True, check=True).stdout.splitlines())
        assert set(found) == set(ATTACKS)
        daemon = [p for p in psutil.process_iter(["cmdline", "status"])
                  if (p.info["cmdline"] or [])[:2] == ["sleep", f"1000.{int(job, 16)}"]
                  and p.info["status"] != psutil.STATUS_ZOMBIE]
        (tmp_path / "gate").touch()
        assert daemon == [], f"a daemon outlived its run (sandbox: {mode})"
        if mode == "bwrap":
            assert found == dict.fromkeys(ATTACKS, "blocked"), found
        else:  # what remains possible without the sandbox (documented, not wished for)
            assert {a for a, v in found.items() if v == "possible"} >= {
                "write_log", "reach_store", "read_other_worktree", "read_logs", "forge_ref",
                "write_main_checkout", "write_git_config", "real_home"}, found
        for p in daemon:
            p.kill()
    finally:
        down(repo)


def test_a_row_written_behind_the_stores_back_does_not_wedge_it(hrepo):
    import sqlite3

    from cocode.core import events as ev

    first = submit(hrepo, "--text", "before", "--agent", "demo")
    wait_until(lambda: (r := run_of(hrepo, first, "demo")) and r.final, 30, what="the first run")
    db = Paths(hrepo).home / "events.db"
    conn = sqlite3.connect(db)
    head = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    forged = ev.WarningEvent(seq=head + 2, code="forged", message="written straight into the file")
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                 (head + 2, forged.ts, forged.type, None, None, ev.encode(forged)))
    conn.commit()
    conn.close()
    jobs = [submit(hrepo, "--text", f"after {i}", "--agent", "demo") for i in range(3)]
    for job in jobs:
        run = wait_until(lambda: (r := run_of(hrepo, job, "demo")) and r.final and r, 30, what=f"job {job}")
        assert run.state == "ready", run
