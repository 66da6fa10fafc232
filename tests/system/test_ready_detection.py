"""The worker's ready detection (a moved ref wakes it; polling is the fallback) with a
real worker and real agents whose branches move fast: nothing missed, nothing misread.

The agents are tests/agents/ready_moves.sh; each test waits for the job's end and
reads the events the worker recorded for it.
"""

from __future__ import annotations

from pathlib import Path

from cocode.jobs.agents import READY_MARKER
from support import (
    GitRepo, cocode, events, rev_parse, runs_of, status, subjects, submit, wait_job, wait_until,
)


def run_events(repo: Path, job: str) -> list[dict]:
    return [e for e in events(repo) if e.get("job") == job]


def ready_events(repo: Path, job: str) -> list[dict]:
    return [e for e in run_events(repo, job) if e["type"] == "run_ready"]


def finished(repo: Path, agent: str) -> tuple[str, dict, str, list[str]]:
    """Run `agent` to its end: (job, its run, its branch, the branch's subjects since base)."""
    base = rev_parse(repo, "HEAD")
    job = submit(repo, "--agent", agent)
    run = runs_of(wait_job(repo, job, timeout=30))[agent]
    branch = f"cocode/{job}/{agent}"
    return job, run, branch, subjects(repo, base, branch)


def test_commits_in_quick_succession_find_the_oldest_ready_commit(jobs_repo, running):
    job, run, branch, made = finished(jobs_repo, "moves_burst")
    assert made == ["chore: after ready", "feat: ready", "wip: two", "wip: one"]
    ready = rev_parse(jobs_repo, f"{branch}~1")
    assert (run["state"], run["ready_commit"], run["commits"]) == ("ready", ready, 4), run
    assert [e["commit"] for e in ready_events(jobs_repo, job)] == [ready]
    # Every head the worker reported is one the agent made, the last one its branch's.
    heads = [e["head"] for e in run_events(jobs_repo, job) if e["type"] == "run_progress"]
    assert heads and heads[-1] == rev_parse(jobs_repo, branch), heads


def test_an_amended_ready_commit_is_the_one_that_counts(jobs_repo, running):
    job, run, branch, made = finished(jobs_repo, "moves_amend")
    assert made == ["feat: second try"]
    head = rev_parse(jobs_repo, branch)
    assert (run["state"], run["ready_commit"], run["commits"]) == ("ready", head, 1), run
    # run_ready named the first try if the worker saw it before the amend, else the second.
    (seen,) = ready_events(jobs_repo, job)
    assert READY_MARKER in GitRepo(jobs_repo).git("log", "-1", "--format=%B", seen["commit"])


def test_a_ready_commit_on_another_branch_is_not_the_runs(jobs_repo, running):
    job, run, branch, made = finished(jobs_repo, "moves_switch")
    assert made == ["feat: ready on the run's branch"]
    head = rev_parse(jobs_repo, branch)
    assert (run["state"], run["ready_commit"], run["commits"]) == ("ready", head, 1), run
    assert [e["commit"] for e in ready_events(jobs_repo, job)] == [head]


def test_a_ready_commit_made_while_cocode_was_down_is_found_when_it_is_back(jobs_repo, running):
    """No ref moves after the new worker starts watching: only its poll can see it."""
    base = rev_parse(jobs_repo, "HEAD")
    job = submit(jobs_repo, "--agent", "moves_restart")
    wait_until(lambda: runs_of(status(jobs_repo, job))["moves_restart"]["commits"] == 1, 20,
               what="the first attempt's wip commit")
    workspace = Path(runs_of(status(jobs_repo, job))["moves_restart"]["worktree"])
    down = cocode(jobs_repo, "down", timeout=60)
    assert down.returncode == 0, down.stderr
    # The agent's last commit, made in its workspace while no worker watches.
    ws = GitRepo(workspace)
    ws.commit(f"feat: made while cocode was down\n\n{READY_MARKER}", {"late.txt": "late\n"})
    late = ws.head()
    up = cocode(jobs_repo, "up", "--detach", timeout=60)
    assert up.returncode == 0, up.stderr
    run = runs_of(wait_job(jobs_repo, job, timeout=40))["moves_restart"]
    branch = f"cocode/{job}/moves_restart"
    assert (run["state"], run["ready_commit"], run["attempt"]) == ("ready", late, 2), run
    assert subjects(jobs_repo, base, branch) == ["feat: made while cocode was down", "wip: attempt 1"]
    assert [e["commit"] for e in ready_events(jobs_repo, job)] == [late]
