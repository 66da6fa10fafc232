"""The job pipeline (issue 3) from outside, with real parts only.

Real git repositories, the real `cocode` CLI in subprocesses, and real agent
processes (the scripts in tests/agents/) that make real commits. Each test that
needs cocode running uses the `running` fixture (always brought down); the `repo`
fixture below writes the agents' config before `cocode up` reads it, and after
the test checks that no agent process (nothing working in a worktree) is left.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import psutil
import pytest

from cocode.jobs.agents import READY_MARKER
from support import (
    AGENTS_DIR, ISSUE, PASSED, SECRET, agent_processes, cocode, cocode_processes, events, git, heavy,
    one_line_error, rev_parse, runs_of, sleeps_of, status, subjects, submit, two_scheduler_decisions,
    wait_job, wait_run, wait_until,
)

RUN_KEYS = {"agent", "state", "reason", "exit_code", "ready_commit", "commits", "branch",
            "worktree", "started_at", "ended_at", "attempt"}


@pytest.fixture
def repo(jobs_repo: Path) -> Path:
    """conftest's jobs_repo: the job agents (conftest.agent_table), written before `running`."""
    return jobs_repo


# ------------------------------------------------------------------------------ helpers


class Spotter:
    """Notes, from a thread, every `sleep` process that runs while a test waits: proof
    that a short-lived agent's processes existed, however late the test looks."""

    def __init__(self):
        self.seen: set[tuple[str, ...]] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        while not self.stop.is_set():
            for p in psutil.process_iter(["cmdline"]):
                argv = tuple(p.info["cmdline"] or ())
                if argv[:1] == ("sleep",):
                    self.seen.add(argv)
            self.stop.wait(0.02)

    def saw_sleeps(self, job: str, *prefixes: str) -> bool:
        return all(("sleep", f"{p}.{int(job, 16)}") in self.seen for p in prefixes)

    def __enter__(self) -> "Spotter":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def commit_message(repo: Path, sha: str) -> str:
    return git(repo, "log", "-1", "--format=%B", sha)


# ------------------------------------------------------------------- the agent protocol


def test_adr003_agent_ends_ready_and_failures_map_to_reasons(repo, running):
    """ADR-003's example agent ends ready with its commit; an agent with the marker
    only in a file, and non-zero exits, end failed with their reasons. `submit
    --wait` exits 0 when a run is ready and 1 when none is."""
    base = rev_parse(repo, "HEAD")
    proc = cocode(repo, "submit", "--text", ISSUE, "--agent", "adr003", "--wait", timeout=30)
    assert proc.returncode == 0, f"submit --wait must exit 0 when a run is ready:\n{proc.stdout}\n{proc.stderr}"
    job = re.search(r"^job (\w+):", proc.stdout, re.M).group(1)
    # --wait showed the run's milestones, prefixed with its name, and the final table.
    sha = rev_parse(repo, f"cocode/{job}/adr003")
    assert re.search(rf"^adr003 +\| -- ready: commit {sha[:12]}", proc.stdout, re.M), proc.stdout
    assert re.search(rf"^{job} +adr003 +ready .* {sha[:12]}$", proc.stdout, re.M), proc.stdout

    j = status(repo, job)
    assert {"job", "state", "runs"} <= set(j) and j["job"] == job and j["state"] == "done"
    (run,) = j["runs"]
    assert RUN_KEYS <= set(run), f"missing keys: {RUN_KEYS - set(run)}"

    branch = f"cocode/{job}/adr003"
    worktree = repo / ".cocode" / "worktrees" / f"{job}-adr003"
    sha = rev_parse(repo, branch)
    assert run["state"] == "ready" and run["reason"] is None and run["exit_code"] == 0
    assert run["ready_commit"] == sha
    assert READY_MARKER in commit_message(repo, sha)
    assert run["commits"] == 1 and subjects(repo, base, branch) == ["fix: issue #0"]
    assert run["branch"] == branch and run["worktree"] == str(worktree)
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == branch
    assert Path(git(worktree, "rev-parse", "--show-toplevel")).resolve() == worktree.resolve()
    assert run["attempt"] == 1
    assert run["started_at"] <= run["ended_at"]
    assert git(repo, "rev-parse", "HEAD") == base, "the user's checkout is untouched"

    # cocode diff shows the agent's change against the base.
    d = cocode(repo, "diff", job, "adr003", timeout=30)
    assert d.returncode == 0, d.stderr
    assert "fix.js" in d.stdout
    changed = [ln for ln in d.stdout.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert changed == ["+// Fix for issue #0"], d.stdout

    proc = cocode(repo, "submit", "--text", ISSUE, "--agent", "marker_in_file", "--agent", "exit1",
                  "--agent", "exit3", "--wait", timeout=30)
    assert proc.returncode == 1, f"submit --wait must exit 1 when no run is ready:\n{proc.stdout}\n{proc.stderr}"
    job = re.search(r"^job (\w+):", proc.stdout, re.M).group(1)
    runs = runs_of(status(repo, job))

    mif = runs["marker_in_file"]
    branch = f"cocode/{job}/marker_in_file"
    assert (mif["state"], mif["reason"], mif["exit_code"]) == ("failed", "no_ready_marker", 0)
    assert mif["ready_commit"] is None and mif["commits"] == 1
    # The marker really is in the committed file, and only there.
    assert git(repo, "show", f"{branch}:STATUS.txt") == READY_MARKER
    assert READY_MARKER not in commit_message(repo, branch)
    assert subjects(repo, base, branch) == ["chore: write status file"]

    e1 = runs["exit1"]
    assert (e1["state"], e1["reason"], e1["exit_code"], e1["commits"]) == ("failed", "exit_1", 1, 0)
    e3 = runs["exit3"]
    assert (e3["state"], e3["reason"], e3["exit_code"]) == ("failed", "missing_dependency", 3)
    for r in runs.values():
        assert r["ended_at"] is not None and r["ready_commit"] is None


def test_agent_environment_is_the_protocol_and_an_allowlist(repo, running, tmp_path):
    issue_file = tmp_path / "issue.md"
    issue_text = "# Crash on empty input\n\nRunning `app ''` crashes with IndexError.\n"
    issue_file.write_text(issue_text)
    job = submit(repo, "--issue-file", str(issue_file), "--agent", "envdump")
    job42 = submit(repo, "--agent", "envdump", "--issue-number", "42")
    for j in (job, job42):
        run = runs_of(wait_job(repo, j))["envdump"]
        assert run["state"] == "ready", run

    seen = json.loads((tmp_path / f"dump-{job}.json").read_text())
    env, worktree = seen["env"], repo / ".cocode" / "worktrees" / f"{job}-envdump"
    assert env["COCODE_REPO_PATH"] == str(worktree)
    assert Path(seen["cwd"]).resolve() == worktree.resolve() == Path(env["COCODE_REPO_PATH"]).resolve()
    assert env["COCODE_ISSUE_NUMBER"] == "0"
    assert env["COCODE_ISSUE_URL"].startswith("file://")
    assert env["COCODE_READY_MARKER"] == READY_MARKER == "cocode ready for check"
    assert env["COCODE_JOB_ID"] == job and env["COCODE_AGENT_NAME"] == "envdump"
    assert "Running `app ''` crashes with IndexError." in seen["body"], seen["body"]
    assert "Crash on empty input" in seen["body"]
    # The body file is outside the worktree: nothing to commit by accident.
    assert not Path(env["COCODE_ISSUE_BODY_FILE"]).resolve().is_relative_to(worktree.resolve())
    # The user's environment is an allowlist: secrets stay out unless passed through.
    assert "MY_SECRET" not in env and SECRET not in json.dumps(env)
    assert env.get("MY_PASSED") == PASSED
    # The agent's configured env is there, and {python} was filled in.
    assert env["AGENT_FLAVOUR"] == "vanilla" and env["DUMP_FILE"].endswith("dump-{job}.json")
    assert Path(seen["argv"][0]).name == "env_dump.py"

    seen42 = json.loads((tmp_path / f"dump-{job42}.json").read_text())
    assert seen42["env"]["COCODE_ISSUE_NUMBER"] == "42"
    assert ISSUE.splitlines()[-1] in seen42["body"]
    assert seen42["env"]["COCODE_JOB_ID"] == job42


# ----------------------------------------------------------------- stopping an agent


@heavy
def test_timeouts_and_ready_grace_stop_the_whole_group(repo, running):
    """Timed-out agents (and the child each left that ignores SIGTERM) leave no process,
    their partial commits recorded; the budget doubles for medium complexity and grows
    with the diff. An agent that lingers after its ready commit is stopped after the
    grace period and stays ready."""
    base = rev_parse(repo, "HEAD")
    with Spotter() as spotter:
        plain = submit(repo, "--agent", "sleeper", "--timeout", "2")
        medium = submit(repo, "--agent", "sleeper", "--timeout", "1", "--complexity", "medium")
        grown = submit(repo, "--agent", "sleeper_big", "--timeout", "2")
        linger = submit(repo, "--agent", "lingerer")
        jobs = {plain: "sleeper", medium: "sleeper", grown: "sleeper_big", linger: "lingerer"}
        runs = {job: runs_of(wait_job(repo, job, timeout=20))[agent] for job, agent in jobs.items()}

    for job, agent in jobs.items():
        if agent == "lingerer":
            continue
        run = runs[job]
        # The agent's own sleep and the child that ignores SIGTERM really ran, and are gone.
        assert spotter.saw_sleeps(job, "999", "1000"), f"{job}/{agent}: its sleeps never ran"
        assert sleeps_of(job, "999", "1000") == [], "a process of the timed-out agent is still alive"
        assert (run["state"], run["reason"]) == ("failed", "timeout_exceeded"), run
        # The partial commit is recorded and kept on the branch.
        assert run["commits"] == 1
        assert subjects(repo, base, f"cocode/{job}/{agent}") == ["wip: partial work"]
        budget, took = 4 if job == grown else 2, run["ended_at"] - run["started_at"]
        assert budget <= took < budget + 5 + 2, f"{job}/{agent}: {took:.1f}s for a {budget}s budget"

    started = {e["job"]: e["timeout_s"] for e in events(repo, "run_started") if e["job"] != linger}
    assert started == {plain: 2, medium: 2, grown: 2}, "medium complexity doubles the base"
    # A diff past 100 changed lines grows the budget to the next level (medium: x2).
    assert [e["timeout_s"] for e in events(repo, "run_progress") if e["job"] == grown] == [4]

    # The lingering agent: ready with its commit, recorded before it ended; stopped
    # after the grace period (it would have slept on), its exit code recorded.
    run, sha = runs[linger], rev_parse(repo, f"cocode/{linger}/lingerer")
    assert (run["state"], run["ready_commit"], run["commits"]) == ("ready", sha, 1), run
    assert spotter.saw_sleeps(linger, "999") and sleeps_of(linger, "999") == []
    assert run["exit_code"] not in (None, 0), "it was terminated, and its exit code recorded"
    assert 3 <= run["ended_at"] - run["started_at"] < 3 + 5 + 3
    kinds = [e["type"] for e in events(repo, "run_ready", "run_finished") if e["job"] == linger]
    assert kinds == ["run_ready", "run_finished"], kinds


def test_cancel_stops_the_group_and_keeps_the_work(repo, running):
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", "sleeper")
    wait_until(lambda: len(sleeps_of(job, "999", "1000")) == 2, 10, what="the sleeper's two sleeps")
    t0 = time.monotonic()
    proc = cocode(repo, "cancel", job, timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = runs_of(status(repo, job))["sleeper"]
    assert run["state"] == "cancelled", run
    assert time.monotonic() - t0 < 10
    assert sleeps_of(job, "999", "1000") == [], "a process of the cancelled agent is still alive"
    assert run["commits"] == 1
    assert subjects(repo, base, f"cocode/{job}/sleeper") == ["wip: partial work"], "the work is kept"


# ------------------------------------------------------------------------- scheduling


def replay_running(evts: list[dict], start: str) -> tuple[int, int]:
    """(max running at once, runs started), replaying `start`/run_finished in seq order."""
    running, peak, started = set(), 0, 0
    for e in sorted(evts, key=lambda e: e["seq"]):
        key = (e["job"], e["agent"])
        if e["type"] == start:
            running.add(key)
            started += 1
            peak = max(peak, len(running))
        elif e["type"] == "run_finished":
            running.discard(key)
    return peak, started


@pytest.mark.parametrize("limits", [{"max_concurrent_agents": 2}], ids=["max2"])
def test_never_more_than_max_concurrent_agents(repo, running, tmp_path):
    agents = [a for i in range(1, 5) for a in ("--agent", f"c{i}")]
    jobs = [submit(repo, *agents), submit(repo, *agents)]
    for job in jobs:
        j = wait_job(repo, job, timeout=25)
        assert all(r["state"] == "ready" for r in j["runs"]), json.dumps(j["runs"])

    evts = events(repo, "run_dispatched", "run_started", "run_finished")
    peak, started = replay_running(evts, "run_started")
    assert started == 8 and peak == 2, f"{started} runs started, at most {peak} at once (want 8 and 2)"
    peak_dispatched, _ = replay_running(evts, "run_dispatched")
    assert peak_dispatched <= 2, f"{peak_dispatched} runs dispatched at once"
    # What the agents themselves saw: never more than two of them alive together.
    counts = [int(x) for x in (tmp_path / "active.max").read_text().split()]
    assert len(counts) == 8 and max(counts) <= 2, counts


@heavy
@pytest.mark.parametrize("limits", [{"max_concurrent_agents": 1}], ids=["max1"])
def test_queue_order_priority_then_fifo(repo, running, tmp_path):
    """Behind a running job: higher --priority first, FIFO within a priority; a queued
    run cancelled before it starts ends cancelled; a run whose binary vanished after
    submit fails with missing_dependency."""
    binary = tmp_path / "bin" / "vanish.sh"
    binary.parent.mkdir()
    binary.write_bytes((AGENTS_DIR / "adr003_example.sh").read_bytes())
    binary.chmod(0o755)
    blocker = submit(repo, "--agent", "gate")
    wait_run(repo, blocker, "gate", "running")
    order = {}
    for name, prio in (("a", "0"), ("b", "5"), ("c", "0"), ("d", "5"), ("e", "-1")):
        order[submit(repo, "--agent", "adr003", "--priority", prio)] = name
    dropped = submit(repo, "--agent", "adr003", "--priority", "9")
    doomed = submit(repo, "--agent", "vanish", "--priority", "-9")
    binary.unlink()  # gone after submit accepted it, before its run is dispatched

    # Without JOB, status lists the running job, then the queue in dispatch order.
    listed = [j["job"] for j in status(repo)]
    assert listed[0] == blocker
    assert [order.get(j, j) for j in listed[1:]] == [dropped, "b", "d", "a", "c", "e", doomed]

    proc = cocode(repo, "cancel", dropped, timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = runs_of(status(repo, dropped))["adr003"]
    assert run["state"] == "cancelled" and run["started_at"] is None, run

    (tmp_path / "gate").touch()
    run = runs_of(wait_job(repo, doomed))["vanish"]  # the last in the queue
    assert (run["state"], run["reason"]) == ("failed", "missing_dependency"), run
    final = {j["job"]: j["runs"][0]["state"] for j in status(repo)}
    assert final == {blocker: "ready", dropped: "cancelled", doomed: "failed", **dict.fromkeys(order, "ready")}
    started = [e["job"] for e in sorted(events(repo, "run_started"), key=lambda e: e["seq"])]
    assert started[0] == blocker
    assert [order[j] for j in started[1:]] == ["b", "d", "a", "c", "e"]


@heavy
@pytest.mark.parametrize("limits", [{"max_worktrees": 1}], ids=["wt1"])
def test_max_worktrees_waits_for_a_live_run_then_reclaims_a_finished_one(repo, running, tmp_path):
    first = submit(repo, "--agent", "gate")
    wait_run(repo, first, "gate", "running")
    second = submit(repo, "--agent", "adr003")
    run = runs_of(wait_job(repo, second, 10, lambda j: runs_of(j)["adr003"]["reason"] == "max_worktrees"))["adr003"]
    assert run["state"] == "queued" and run["worktree"] == ""
    two_scheduler_decisions(repo, "adr003", "max_worktrees")  # would have dispatched it by now
    assert runs_of(status(repo, second))["adr003"]["state"] == "queued"
    assert not [e for e in events(repo, "run_dispatched") if e["job"] == second]
    assert not (repo / ".cocode" / "worktrees" / f"{second}-adr003").exists()
    # The only worktree's run finishes: its directory (not its branch) makes room.
    (tmp_path / "gate").touch()
    assert runs_of(wait_job(repo, second))["adr003"]["state"] == "ready"
    removed = [e for e in events(repo, "worktree_removed") if e["job"] == first]
    assert removed and removed[0]["reason"] == "max_worktrees"
    assert not (repo / ".cocode" / "worktrees" / f"{first}-gate").exists()
    assert git(repo, "rev-parse", f"cocode/{first}/gate"), "the finished run's branch stays"
    assert runs_of(status(repo, first))["gate"]["state"] == "ready"


# ------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_queues_nothing(repo, running, tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_text("  \n\n")
    cases = [
        (["--text", ISSUE, "--agent", "nosuchagent"], "nosuchagent"),
        (["--issue-file", str(tmp_path / "missing.md"), "--agent", "adr003"], "missing.md"),
        (["--issue-file", str(empty), "--agent", "adr003"], "empty"),
        (["--text", "   ", "--agent", "adr003"], "empty"),
        (["--text", ISSUE, "--agent", "adr003", "--base", "no-such-ref-123"], "no-such-ref-123"),
        (["--text", ISSUE, "--agent", "adr003", "--timeout", "0"], "--timeout"),
        (["--text", ISSUE, "--agent", "adr003", "--timeout", "99999"], "--timeout"),
        (["--text", ISSUE, "--agent", "adr003", "--priority", "1000"], "--priority"),
        (["--text", ISSUE], "--agent"),  # no agent named and no default_agents
    ]
    for args, word in cases:
        line = one_line_error(cocode(repo, "submit", *args, timeout=30))
        assert word in line, f"submit {args}: {line!r} does not mention {word!r}"
    assert status(repo) == []
    assert events(repo, "job_submitted") == []


# ------------------------------------------------------------------------------ demo


def test_demo_completes_with_a_table_and_leaves_nothing(tmp_path):
    where = tmp_path / "demo"
    t0 = time.monotonic()
    proc = cocode(where, "demo", str(where), timeout=45)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert took < 30, f"demo took {took:.1f}s"
    table = proc.stdout[proc.stdout.rindex("JOB "):]
    assert re.search(r"^\w+ +demo +ready ", table, re.M), table
    assert re.search(r"^\w+ +demo-fail +failed +exit_1 ", table, re.M), table
    assert re.search(r"^\w+ +demo-slow +ready ", table, re.M), table
    # The good demo agent fixes the bug, so the repository's own tests pass for it only.
    assert re.search(r"^1 +demo +ready +pass \(3 passed, 0 failed\)", table, re.M), table
    assert re.search(r"^2 +demo-slow +ready +tests failed", table, re.M), table
    assert "recommended: demo (its checks all pass" in table
    assert re.search(r"cocode pick \w+ demo --merge --yes$", proc.stdout.strip()), proc.stdout[-300:]
    assert not cocode_processes(where)
    assert not agent_processes(where)
