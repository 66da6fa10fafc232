"""Cleanup and bounded log growth (issue 5) from outside: `cocode clean` and
`cocode compact`, with real runs, real git and the real CLI.

The decisions (cocode.jobs.clean.plan, cocode.core.compaction.select_jobs) are pure and
tested in tests/unit/test_clean.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import lz4.frame
import msgspec
import pytest

from cocode.jobs import sandbox
from support import (
    AGENT_GIT_ENV, agents, cocode, down, events, git, heavy, make_repo, runs_of, status, submit, up, wait_job,
    wait_run, wait_until, write_config,
)

DONE = 'cd "$COCODE_REPO_PATH" && echo d >> done.txt && git add done.txt && ' \
       'git commit -q -m "feat: done" -m "$COCODE_READY_MARKER"'
WIP = 'cd "$COCODE_REPO_PATH" && echo w >> wip.txt && git add wip.txt && git commit -q -m "wip: half" && exit 1'
GATED = 'cd "$COCODE_REPO_PATH" && while [ ! -e "$GATE" ]; do sleep 0.05; done && ' + DONE.split("&& ", 1)[1]
ISSUE = "Clean up"


@pytest.fixture
def repo(tmp_path: Path):
    path = make_repo(tmp_path / "repo")
    write_config(path, {"agents": {
        "done": {"command": ["bash", "-c", DONE], "env": AGENT_GIT_ENV},
        "wip": {"command": ["bash", "-c", WIP], "env": AGENT_GIT_ENV},
        "empty": {"command": ["bash", "-c", "exit 1"], "env": AGENT_GIT_ENV},
        "gated": {"command": ["bash", "-c", GATED], "env": {**AGENT_GIT_ENV, "GATE": str(tmp_path / "gate")}},
    }, "sandbox": "off"})  # the gated agent waits on a file outside its worktree, which the sandbox hides
    return path


def ok(repo: Path, *args: str, input: str | None = None):
    proc = cocode(repo, *args, timeout=60, input=input)
    assert proc.returncode == 0, f"cocode {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_done(repo: Path, job: str, timeout: float = 20) -> dict:
    """The job's runs by agent, once it is done."""
    return runs_of(wait_job(repo, job, timeout))


def branch_sha(repo: Path, branch: str) -> str | None:
    out = git_maybe(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}")
    return out or None


def git_maybe(repo: Path, *args: str) -> str:
    try:
        return git(repo, *args)
    except Exception:
        return ""


@heavy
def test_clean_dry_run_removes_nothing_and_clean_keeps_branches(repo, running):
    job = submit(repo, *agents("done", "wip", "empty"), text=ISSUE)
    runs = wait_done(repo, job)
    assert [runs[a]["state"] for a in ("done", "wip", "empty")] == ["ready", "failed", "failed"], runs
    wt = {a: Path(runs[a]["worktree"]) for a in runs}
    br = {a: f"cocode/{job}/{a}" for a in runs}
    git(repo, "merge", "-q", "--ff-only", br["done"])  # the person picked `done`
    (wt["wip"] / "notes.txt").write_text("not committed\n")  # and left a note in `wip`
    shas = {a: branch_sha(repo, b) for a, b in br.items()}
    assert not list((repo / ".cocode" / "tmp").glob(f"{job}-*")), "issue files go when runs end"

    assert "nothing to clean" in ok(repo, "clean", "--dry-run")  # default: 7 idle days
    out = ok(repo, "clean", "--dry-run", "--older-than", "0")
    assert f"would remove worktree {wt['done']}" in out and f"would remove worktree {wt['empty']}" in out
    assert f"keep {wt['wip']}" in out and "1 uncommitted or untracked files" in out
    out_hard = ok(repo, "clean", "--dry-run", "--older-than", "0", "--hard")
    assert f"would delete branch {br['wip']}" in out_hard and "1 commits never merged" in out_hard
    assert f"would delete branch {br['empty']}" in out_hard
    assert f"delete branch {br['done']}" not in out_hard, "a merged branch is kept"
    assert all(p.is_dir() for p in wt.values()), "--dry-run removed something"
    assert {a: branch_sha(repo, b) for a, b in br.items()} == shas
    assert events(repo, "worktree_removed") == []

    out = ok(repo, "clean", "--older-than", "0")
    assert not wt["done"].exists() and not wt["empty"].exists()
    assert (wt["wip"] / "notes.txt").exists(), "uncommitted work is never removed without --hard"
    assert {a: branch_sha(repo, b) for a, b in br.items()} == shas, "branches and commits stay"
    removed = events(repo, "worktree_removed")
    assert sorted(e["path"] for e in removed) == sorted([str(wt["done"]), str(wt["empty"])])
    assert {e["reason"] for e in removed} == {"cocode clean"}
    assert str(wt["done"]) not in git(repo, "worktree", "list")

    refused = cocode(repo, "clean", "--older-than", "0", "--hard", input="n\n", timeout=60)
    assert refused.returncode == 1 and "nothing removed" in refused.stderr, refused.stderr
    assert (wt["wip"] / "notes.txt").exists() and branch_sha(repo, br["wip"]) == shas["wip"]

    ok(repo, "clean", "--older-than", "0", "--hard", "--yes")
    assert not wt["wip"].exists()
    assert branch_sha(repo, br["wip"]) is None and branch_sha(repo, br["empty"]) is None
    assert branch_sha(repo, br["done"]) == shas["done"], "the picked branch stays"
    deleted = {e["agent"]: e["message"] for e in events(repo, "warning") if e["code"] == "branch_deleted"}
    assert shas["wip"][:12] in deleted["wip"], "the deletion says how to restore it"
    git(repo, "cat-file", "-e", shas["wip"])  # the commit still exists, restorable
    assert {r["agent"] for r in status(repo)[0]["runs"]} == {"done", "wip", "empty"}

    # What the monitor runs hourly (with worktree_idle_days): silent, never --hard.
    later = submit(repo, *agents("done", "wip"), text=ISSUE)
    runs = wait_done(repo, later)
    assert ok(repo, "clean", "--auto", "--older-than", "0") == ""
    assert not Path(runs["done"]["worktree"]).exists() and not Path(runs["wip"]["worktree"]).exists()
    assert branch_sha(repo, f"cocode/{later}/wip"), "the unmerged branch stays"
    idle = [e for e in events(repo, "worktree_removed") if e["job"] == later]
    assert len(idle) == 2 and {e["reason"] for e in idle} == {"idle"}


@heavy
def test_compact_keeps_status_and_replay_and_archives_readably(repo, tmp_path):
    up(repo)
    try:
        old = [submit(repo, *agents("done", "wip"), text=ISSUE) for _ in range(2)]
        for job in old:
            wait_done(repo, job)
        live = submit(repo, *agents("gated"), text=ISSUE)
        wait_run(repo, live, "gated", "running", timeout=10)
        before = status(repo)
        all_before = events(repo)
        out = ok(repo, "compact", "--older-than", "0")
        assert "archived" in out and "2 jobs" in out, out

        assert status(repo) == before, "status changed with compaction"
        verify = ok(repo, "replay", "--verify")
        assert "identical" in verify, verify
        (archive,) = (repo / ".cocode" / "archive").glob("events-*.msgpack.lz4")
        stored = msgspec.msgpack.decode(lz4.frame.decompress(archive.read_bytes()))
        assert {e["job"] for e in stored if e["job"]} == set(old)
        assert [e["seq"] for e in stored] == sorted(e["seq"] for e in stored)
        live_now = events(repo)
        assert not {e["job"] for e in live_now} & set(old), "archived events left the live table"
        assert any(e["type"] == "compacted" for e in live_now)
        everything = events(repo, archived=True)
        seqs = [e["seq"] for e in everything]
        assert seqs == sorted(seqs) and {e["seq"] for e in all_before} <= set(seqs)
        assert [e for e in everything if e["seq"] <= all_before[-1]["seq"]] == all_before
        only = events(repo, "run_finished", archived=True)
        assert len(only) == 4 and {e["job"] for e in only} == set(old)

        db = sqlite3.connect(repo / ".cocode" / "events.db")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE events SET type = 'x' WHERE seq = (SELECT max(seq) FROM events)")
        db.close()

        (tmp_path / "gate").touch()  # the log goes on after the swap
        assert wait_done(repo, live)["gated"]["state"] == "ready"
        after = status(repo)
    finally:
        down(repo)
    assert "identical" in ok(repo, "replay", "--verify")  # and from the file alone
    up(repo)
    try:
        assert status(repo) == after, "status changed across a restart after compaction"
        ok(repo, "compact", "--older-than", "0")  # a second segment: the gated job
        assert len(list((repo / ".cocode" / "archive").glob("events-*.msgpack.lz4"))) == 2
        assert status(repo) == after
        assert "identical" in ok(repo, "replay", "--verify")
        assert "nothing to compact" in ok(repo, "compact", "--older-than", "0")
        job = submit(repo, *agents("done"), text=ISSUE)  # and it still runs jobs
        assert wait_done(repo, job)["done"]["state"] == "ready"
    finally:
        down(repo)
    # Without a usable snapshot (as after a FOLD_VERSION change), state is the fold of
    # the archive and the live table together: still the same.
    final = status(repo)
    db = sqlite3.connect(repo / ".cocode" / "events.db")
    db.execute("DELETE FROM snapshots")
    db.commit()
    db.close()
    assert status(repo) == final
    assert "identical" in ok(repo, "replay", "--verify")
    not_running = cocode(repo, "compact", timeout=30)
    assert not_running.returncode != 0 and "cocode up" in not_running.stderr


# A run that reports a claude session (claude's stream-json first line) and can resume it.
SESSION = ('echo \'{"type":"system","subtype":"init","session_id":"sess-1","model":"m"}\'; '
           'echo cache > "$HOME/cache.txt"; ' + DONE)


@pytest.mark.skipif(sandbox.unavailable() is not None, reason="bubblewrap cannot confine runs here")
def test_a_sandboxed_runs_home_goes_when_it_ends_and_clean_removes_leftovers(tmp_path):
    """A sandboxed run's private HOME under .cocode/tmp goes when the run ends, unless
    `cocode say` may resume the agent's session from it (kept while its worktree stays).
    `cocode clean` removes what final runs left there and never a live run's."""
    repo = make_repo(tmp_path / "repo")
    write_config(repo, {"agents": {
        "done": {"command": ["bash", "-c", 'echo x > "$HOME/cache.txt"; ' + DONE], "env": AGENT_GIT_ENV},
        "session": {"command": ["bash", "-c", SESSION], "resume": ["bash", "-c", DONE],
                    "format": "claude-stream-json", "env": AGENT_GIT_ENV},
        "slow": {"command": ["bash", "-c", 'echo x > "$HOME/cache.txt"; sleep 60'], "env": AGENT_GIT_ENV},
    }, "sandbox": "bwrap"})
    tmp = repo / ".cocode" / "tmp"
    up(repo)
    try:
        job = submit(repo, *agents("done", "session"), text=ISSUE)
        runs = wait_done(repo, job)
        assert [runs[a]["state"] for a in ("done", "session")] == ["ready", "ready"], runs
        wait_until(lambda: not (tmp / f"{job}-done-home").exists(), 10, what="the finished run's HOME to go")
        assert (tmp / f"{job}-session-home" / "cache.txt").exists(), "a resumable session's HOME was removed"
        assert sorted(p.name for p in tmp.iterdir()) == [f"{job}-session-home"]

        # What a killed worker would have left of a final run, and a live run's own HOME.
        (tmp / f"{job}-done-home").mkdir()
        (tmp / f"{job}-done-issue.md").write_text("# left\n")
        live = submit(repo, *agents("slow"), text=ISSUE)
        wait_until(lambda: (tmp / f"{live}-slow-home" / "cache.txt").exists(), 20, what="the live run's HOME")

        out = ok(repo, "clean", "--dry-run")
        assert f"would remove {tmp / f'{job}-done-home'}" in out and f"{job}-done-issue.md" in out
        assert (tmp / f"{job}-done-home").exists()
        ok(repo, "clean")  # worktrees are not idle yet: the resumable HOME stays with them
        assert sorted(p.name for p in tmp.iterdir()) == sorted(
            [f"{job}-session-home", f"{live}-slow-home", f"{live}-slow-issue.md"])
        ok(repo, "clean", "--older-than", "0")  # the worktree goes: no follow-up, no HOME
        assert sorted(p.name for p in tmp.iterdir()) == sorted([f"{live}-slow-home", f"{live}-slow-issue.md"])

        ok(repo, "cancel", live)
        wait_done(repo, live)
        wait_until(lambda: list(tmp.iterdir()) == [], 10, what="the cancelled run's HOME to go")
    finally:
        down(repo)
