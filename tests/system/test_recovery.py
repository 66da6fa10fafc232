"""Recovery of the job pipeline (issue 3), from outside with real processes.

`kill -9` of the scheduler or of the worker in mid-run, and `cocode down`/`up`:
no run is stuck, none is left `running` with no process behind it, no agent
process is orphaned, and the commits agents made are kept.
"""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from cocode import client
from cocode.paths import Paths
from support import (
    alive, cocode, live, events, heavy, job_now, rev_parse, runs_of, service_pid, sleeps_of, status, subjects,
    submit, wait_job, wait_run, wait_until,
)


@pytest.fixture
def repo(jobs_repo):
    """conftest's jobs_repo: the job agents (conftest.agent_table), written before `running`."""
    return jobs_repo


def kill9(pid: int) -> None:
    assert pid, "no pid to kill"
    os.kill(pid, signal.SIGKILL)


def restarted(repo, name: str, old_pid: int, timeout: float = 15) -> int:
    return wait_until(lambda: (p := service_pid(repo, name)) not in (0, old_pid) and p, timeout,
                      interval=0.2, what=f"{name} to be restarted")


def run_events(repo, job: str, agent: str) -> list[dict]:
    return [e for e in events(repo) if e.get("job") == job and e.get("agent") == agent]


def assert_no_ghost_runs(repo) -> None:
    """Every run shown `running` has a live agent process (its latest run_started pid)
    or is between dispatch and start; none is `running` with nothing behind it."""
    pids = {}
    for e in sorted(events(repo, "run_started", "run_dispatched"), key=lambda e: e["seq"]):
        pids[(e["job"], e["agent"])] = e.get("pid")  # None right after a (re)dispatch
    for job in status(repo):
        for run in job["runs"]:
            if run["state"] == "running":
                pid = pids.get((job["job"], run["agent"]))
                assert pid is None or alive(pid), f"{job['job']}/{run['agent']} is running with no process"


@heavy
@pytest.mark.parametrize("limits", [{"max_concurrent_agents": 1}], ids=["max1"])
def test_kill9_scheduler_mid_run(repo, running, tmp_path):
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", "gate")
    wait_run(repo, job, "gate", "running")
    wait_until(lambda: runs_of(status(repo, job))["gate"]["commits"] == 1, 10, what="the first commit")
    # `running` begins at dispatch; by its first commit the run has surely started.
    started = runs_of(status(repo, job))["gate"]
    assert started["started_at"] is not None
    old = service_pid(repo, "scheduler")
    kill9(old)
    # Submitted while the scheduler may be down: durable in the log, queued behind the gate.
    later = submit(repo, "--agent", "adr003")
    restarted(repo, "scheduler", old)
    assert runs_of(status(repo, job))["gate"]["state"] == "running"
    assert runs_of(status(repo, later))["adr003"]["state"] == "queued"
    assert_no_ghost_runs(repo)

    (tmp_path / "gate").touch()
    run = runs_of(wait_job(repo, job))["gate"]
    assert run["state"] == "ready", run
    assert run["ready_commit"] == rev_parse(repo, f"cocode/{job}/gate")
    assert run["attempt"] == 1 and run["commits"] == 2 and run["started_at"] == started["started_at"]
    assert subjects(repo, base, f"cocode/{job}/gate") == ["feat: through the gate", "wip: before the gate"]
    # The agent was never interrupted, restarted or started twice.
    kinds = [e["type"] for e in run_events(repo, job, "gate")]
    assert kinds.count("run_started") == 1 and "run_interrupted" not in kinds, kinds
    assert runs_of(wait_job(repo, later))["adr003"]["state"] == "ready"
    assert_no_ghost_runs(repo)


def interruptions(repo, job: str) -> int:
    """run_interrupted events of a job so far, read in-process (cheap to poll)."""
    return sum(e.job == job for e in client.events(Paths(repo), types={"run_interrupted"}))


def test_kill9_worker_mid_run(repo, running):
    """A run working when its worker dies is interrupted (its process group killed:
    no orphan), requeued once in the same worktree with its commits, and ends in a
    final state. A run that had made its ready commit stays ready with that commit."""
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", "resumable")
    wait_run(repo, job, "resumable", "running")
    (sleeping,) = wait_until(lambda: sleeps_of(job, "60"), 10, what="the first attempt's sleep")
    first = wait_run(repo, job, "resumable", "running")  # started: its worktree is recorded
    (start1,) = [e for e in run_events(repo, job, "resumable") if e["type"] == "run_started"]
    assert alive(start1["pid"])
    worker = service_pid(repo, "worker")
    linger = submit(repo, "--agent", "lingerer")
    # Killed while it is ready but not yet finished (its agent lingers; 3 s grace).
    wait_until(lambda: (j := job_now(repo, linger)) and j["runs"][0]["state"] == "ready", 10, interval=0.02,
               what="the lingerer's ready commit")
    kill9(worker)
    sha = rev_parse(repo, f"cocode/{linger}/lingerer")
    wait_until(lambda: interruptions(repo, job), 20, what="run_interrupted", interval=0.05)
    # By the time the run is recorded interrupted, its process group is dead: no orphan.
    assert not alive(start1["pid"]), "the first attempt's agent outlived its worker"
    assert not alive(sleeping.pid) and sleeps_of(job, "60") == [], "the first attempt's child is an orphan"

    run = runs_of(wait_job(repo, job, timeout=25))["resumable"]
    assert run["state"] == "ready", run
    assert run["attempt"] == 2 and run["worktree"] == first["worktree"]
    assert run["commits"] == 2 and run["ready_commit"] == rev_parse(repo, f"cocode/{job}/resumable")
    assert subjects(repo, base, f"cocode/{job}/resumable") == ["fix: finished after a restart", "wip: attempt 1"]

    evts = run_events(repo, job, "resumable")
    kinds = [e["type"] for e in evts]
    assert kinds.count("run_interrupted") == 1 and kinds.count("run_requeued") == 1, kinds
    assert kinds.count("run_finished") == 1, kinds
    starts = [e for e in evts if e["type"] == "run_started"]
    assert [s["attempt"] for s in starts] == [1, 2]
    assert starts[0]["worktree"] == starts[1]["worktree"] and starts[0]["branch"] == starts[1]["branch"]
    seq = {k: next(e["seq"] for e in evts if e["type"] == k) for k in ("run_interrupted", "run_requeued")}
    assert seq["run_interrupted"] < seq["run_requeued"] < starts[1]["seq"]
    (requeued,) = [e for e in evts if e["type"] == "run_requeued"]
    assert requeued["attempt"] == 2

    run = runs_of(wait_job(repo, linger, timeout=15))["lingerer"]
    assert (run["state"], run["ready_commit"]) == ("ready", sha), run
    assert "run_interrupted" in [e["type"] for e in run_events(repo, linger, "lingerer")], \
        "the worker was killed too late to interrupt the lingering run"
    assert run["commits"] == 1 and rev_parse(repo, f"cocode/{linger}/lingerer") == sha
    assert sleeps_of(linger, "999") == [], "the lingering agent outlived its worker"
    assert_no_ghost_runs(repo)


def test_worker_killed_on_both_attempts_fails_interrupted(repo, running):
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", "sleeper")
    for attempt in (1, 2):
        sleeps = wait_until(lambda: len(s := sleeps_of(job, "999", "1000")) == 2 and s, 20,
                            what=f"attempt {attempt}'s sleeps")
        assert runs_of(status(repo, job))["sleeper"]["attempt"] == attempt
        kill9(service_pid(repo, "worker"))
        wait_until(lambda: interruptions(repo, job) == attempt, 20, what=f"interruption {attempt}", interval=0.05)
        # This attempt's processes, by pid: the next attempt may have started its own by now.
        assert [p.pid for p in sleeps if live(p)] == [], "an interrupted agent's process is still alive"
    run = runs_of(wait_job(repo, job, timeout=20))["sleeper"]
    assert (run["state"], run["reason"], run["attempt"]) == ("failed", "interrupted", 2), run
    assert run["commits"] == 2, "both attempts' commits are kept"
    assert subjects(repo, base, f"cocode/{job}/sleeper") == ["wip: partial work"] * 2
    kinds = [e["type"] for e in run_events(repo, job, "sleeper")]
    assert kinds.count("run_requeued") == 1 and kinds.count("run_started") == 2, kinds
    assert_no_ghost_runs(repo)


@heavy
def test_down_and_up_keep_status(repo, running, tmp_path):
    done = submit(repo, "--agent", "adr003", "--agent", "exit1")
    wait_job(repo, done)
    gated = submit(repo, "--agent", "gate")
    wait_until(lambda: runs_of(status(repo, gated))["gate"]["commits"] == 1, 15, what="the gate's first commit")
    before = status(repo, done)
    assert [r["state"] for r in before["runs"]] == ["ready", "failed"]

    down = cocode(repo, "down", timeout=60)
    assert down.returncode == 0, down.stderr
    # Read from the log file while nothing runs: the same, and nothing left `running`.
    assert status(repo, done) == before
    while_down = runs_of(status(repo, gated))["gate"]
    assert while_down["state"] != "running", f"a run is shown running while cocode is down: {while_down}"
    assert while_down["state"] not in ("ready", "failed", "cancelled"), while_down

    up = cocode(repo, "up", "--detach", timeout=60)
    assert up.returncode == 0, up.stderr
    assert status(repo, done) == before
    # The run stopped by `down` goes again, in its worktree, and its first commit is kept.
    wait_until(lambda: runs_of(status(repo, gated))["gate"]["attempt"] == 2, 15, what="the requeue")
    wait_run(repo, gated, "gate", "running")
    (tmp_path / "gate").touch()
    run = runs_of(wait_job(repo, gated))["gate"]
    assert run["state"] == "ready" and run["attempt"] == 2, run
    assert run["commits"] == 3  # wip (attempt 1), wip (attempt 2), ready
    assert status(repo, done) == before
    assert_no_ghost_runs(repo)


@heavy
def test_a_paused_worker_keeps_its_runs(repo, running):
    """A worker stopped (SIGSTOP: a debugger, a swap storm, a starved CPU) for longer
    than the scheduler's silence limit is slow, not dead: its pid is still there, so
    nothing is interrupted or killed. Resumed, it finishes the run with every line."""
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", "ticker")
    wait_until(lambda: any(e.job == job for e in client.events(Paths(repo), types={"run_started"})),
               20, interval=0.05, what="the ticker's run_started")
    wait_until(lambda: "tick 2 of" in cocode(repo, "tail", job, timeout=30).stdout, 20, interval=0.2, what="two ticks")
    worker = service_pid(repo, "worker")
    os.kill(worker, signal.SIGSTOP)
    try:
        # Past the scheduler's 10 s of silence: on the old code the run was interrupted
        # here and its agent killed. The pause is the stimulus, not a wait for nothing.
        time.sleep(12)  # pacing: past the scheduler's silence limit (the stimulus, not a wait)
        assert psutil.Process(worker).status() == psutil.STATUS_STOPPED
    finally:
        os.kill(worker, signal.SIGCONT)
    run = runs_of(wait_job(repo, job, timeout=40))["ticker"]
    assert (run["state"], run["reason"], run["attempt"]) == ("ready", None, 1), run
    assert subjects(repo, base, f"cocode/{job}/ticker") == ["feat: ticked 25 times"]
    kinds = [e["type"] for e in run_events(repo, job, "ticker")]
    assert "run_interrupted" not in kinds and "run_requeued" not in kinds, kinds
    assert kinds.count("run_started") == 1 and kinds.count("run_finished") == 1, kinds
    lines = cocode(repo, "tail", job, "-n", "1000", check=True).stdout.splitlines()
    ticks = [ln for ln in lines if "tick " in ln and " of 25" in ln]
    assert len(ticks) == 25 and all(f"tick {i} of 25" in t for i, t in enumerate(ticks, 1)), lines
    assert service_pid(repo, "worker") == worker, "the paused worker was not replaced"
