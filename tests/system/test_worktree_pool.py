"""The worktree pool inside a running cocode: runs take ready worktrees, the pool
refills within max_worktrees, and a worker killed -9 while refilling leaves a pool
that recovers (nothing half-made stays registered with git)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from cocode import client
from cocode.gitops.pool import WorktreePool
from cocode.paths import Paths
from support import AGENTS_DIR, cocode, git, make_repo, wait_until

GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


def write_config(repo: Path, **performance: int) -> Paths:
    config = {"performance": performance,
              "agents": {"adr003": {"command": ["bash", str(AGENTS_DIR / "adr003_example.sh")], "env": GIT_ENV}}}
    (repo / ".cocode").mkdir(mode=0o700, exist_ok=True)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config))
    return Paths(repo)


def submit(repo: Path) -> str:
    proc = cocode(repo, "submit", "--json", "--text", "Fix it\n\nplease", "--agent", "adr003", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["job"]


def run_of(paths: Paths, job: str, agent: str = "adr003"):
    j = client.current_state(paths).jobs.get(job)
    return j.runs.get(agent) if j else None


def registered(repo: Path) -> list[str]:
    """The checkout and every workspace beside it: runs' clones and pool entries (each a
    clone of its own since runs have their own refs)."""
    home = repo / ".cocode"
    return [str(repo)] + [str(p) for d in ("worktrees", "pool") if (home / d).is_dir()
                          for p in sorted((home / d).iterdir()) if p.is_dir()]


@pytest.fixture
def cocode_up(tmp_path):
    started = []

    def start(repo: Path) -> None:
        proc = cocode(repo, "up", "--detach", timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        started.append(repo)

    yield start
    for repo in started:
        cocode(repo, "down", timeout=60)


def test_runs_take_ready_worktrees_and_the_pool_stays_within_max_worktrees(tmp_path, cocode_up):
    repo = make_repo(tmp_path / "repo")
    paths = write_config(repo, worktree_pool=2, max_worktrees=3)
    pool = WorktreePool(repo, paths.pool)
    cocode_up(repo)
    wait_until(lambda: len(pool.ready()) == 2, 30, what="two ready pool entries")
    entries = set(pool.ready())
    job = submit(repo)
    wait_until(lambda: (r := run_of(paths, job)) and r.final, 30, what="the run's end")
    run = run_of(paths, job)
    worktree = paths.worktrees / f"{job}-adr003"
    assert run.state == "ready" and run.worktree == str(worktree)
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == f"cocode/{job}/adr003"
    assert len(entries - set(pool.entries())) == 1, "the run took one ready entry"
    # One run holds a worktree: the pool refills to min(2, 3 - 1) entries, never more.
    wait_until(lambda: len(pool.ready()) == 2, 30, what="the pool refilled to 2")
    second = submit(repo)
    wait_until(lambda: (r := run_of(paths, second)) and r.final, 30, what="the second run's end")
    assert run_of(paths, second).state == "ready"
    wait_until(lambda: len(pool.entries()) == 1 and len(pool.ready()) == 1, 30, what="the pool trimmed to 1")
    assert len(registered(repo)) == 1 + 2 + 1  # the checkout, two runs, one pool entry


def test_entries_a_commit_left_behind_move_to_the_new_head(tmp_path, cocode_up):
    repo = make_repo(tmp_path / "repo")
    paths = write_config(repo, worktree_pool=2, max_worktrees=5)
    pool = WorktreePool(repo, paths.pool)
    cocode_up(repo)
    wait_until(lambda: len(pool.ready()) == 2, 30, what="two ready pool entries")
    entries = set(pool.ready())
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later")
    head = git(repo, "rev-parse", "HEAD")
    wait_until(lambda: len(pool.ready()) == 2 and not pool.stale(), 30, what="the entries moved to the new HEAD")
    assert set(pool.ready()) == entries, "moved in place, not made again"
    assert all((e / "later.txt").read_text() == "later\n" for e in entries)
    job = submit(repo)
    wait_until(lambda: (r := run_of(paths, job)) and r.final, 30, what="the run's end")
    worktree = paths.worktrees / f"{job}-adr003"
    assert run_of(paths, job).state == "ready" and (worktree / "later.txt").exists()
    assert git(worktree, "rev-parse", "HEAD~1") == head  # the agent's commit on the new base


def test_worker_killed_while_refilling_leaves_a_pool_that_recovers(tmp_path, cocode_up):
    repo = make_repo(tmp_path / "repo")
    # A slow smudge filter makes each entry's checkout take seconds: the kill lands inside one.
    for i in range(30):
        (repo / f"slow{i}.txt").write_text(f"{i}\n")
    (repo / ".gitattributes").write_text("slow* filter=slow\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "slow files")
    git(repo, "config", "filter.slow.smudge", "sleep 0.1; cat")
    git(repo, "config", "filter.slow.clean", "cat")
    paths = write_config(repo, worktree_pool=1)
    pool = WorktreePool(repo, paths.pool)
    cocode_up(repo)
    wait_until(lambda: any((e / "slow0.txt").exists() for e in pool.entries()), 30, what="a refill mid-checkout")
    worker = psutil.Process(int((paths.run / "worker.pid").read_text()))
    os.kill(worker.pid, signal.SIGKILL)
    half = pool.entries()
    assert half and not pool.ready(), "the kill came after the entry was ready"
    git(repo, "config", "--unset", "filter.slow.smudge")
    # The supervisor starts a new worker; it deletes the half-made entry and fills a new one.
    wait_until(lambda: pool.ready() and not set(half) & set(pool.entries()), 60, what="the half-made entry replaced")
    wait_until(lambda: len(registered(repo)) == 2, 30, what="one pool entry registered beside the checkout")
    assert git(repo, "worktree", "prune", "--dry-run", "-v") == ""
    job = submit(repo)
    wait_until(lambda: (r := run_of(paths, job)) and r.final, 30, what="the run's end")
    assert run_of(paths, job).state == "ready"
