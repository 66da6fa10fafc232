"""What `cocode clean` and `cocode compact` choose, as pure decisions over a folded
state: cocode.jobs.clean (final_runs, plan, needs_confirmation) and
cocode.core.compaction (select_jobs) and cocode.core.archive (archive_name). tests/system/test_cleanup.py runs
them end to end."""

from __future__ import annotations

from cocode.core import archive, compaction
from cocode.core.views import JobView, RunView, State
from cocode.jobs import clean, runtmp

DAY = 86400.0


def _state(now: float) -> State:
    s = State()
    s.jobs["j1"] = JobView(job="j1", seq=1, ts=now - 20 * DAY, title="t", agents=["a", "b"], base_sha="base",
                              done=True, runs={
        "a": RunView(agent="a", state="ready", final=True, ended_at=now - 10 * DAY,
                        worktree="/w/j1-a", branch="cocode/j1/a"),
        "b": RunView(agent="b", state="failed", final=True, ended_at=now - 9 * DAY,
                        worktree="/w/j1-b", branch="cocode/j1/b"),
    })
    s.jobs["j2"] = JobView(job="j2", seq=9, ts=now - 20 * DAY, title="t", agents=["a", "c"], base_sha="base",
                              runs={
        "a": RunView(agent="a", state="failed", final=True, ended_at=now - 8 * DAY,
                        worktree="/w/j2-a", branch="cocode/j2/a"),
        "c": RunView(agent="c", state="running", live=True, worktree="/w/j2-c", branch="cocode/j2/c"),
    })
    return s


def test_clean_plan_never_touches_live_runs_and_keeps_dirty_work():
    now = 1_000_000_000.0
    runs = clean.final_runs(_state(now), now, 7)
    assert [r.key for r in runs] == ["j1/a", "j1/b", "j2/a"]  # j2/c is running: never
    assert [r.key for r in clean.final_runs(_state(now), now, 8.5)] == ["j1/a", "j1/b"]
    facts = {
        "j1/a": clean.Facts(exists=True, last_used=now - 10 * DAY, tip="t1", merged=True),
        "j1/b": clean.Facts(exists=True, last_used=now - 9 * DAY, dirty=2, tip="t2", merged=False,
                            unmerged_commits=3),
        "j2/a": clean.Facts(exists=True, last_used=now - 1 * DAY, tip="t3", merged=False, unmerged_commits=1),
    }
    soft = clean.plan(runs, facts, now, 7, hard=False)
    assert [(a.kind, a.run.key) for a in soft] == [("remove_worktree", "j1/a"), ("keep", "j1/b")]
    assert not clean.needs_confirmation(soft)  # nothing destroyed: worktree only, dirty kept
    hard = clean.plan(runs, facts, now, 7, hard=True)
    assert [(a.kind, a.run.key) for a in hard] == [
        ("remove_worktree", "j1/a"), ("remove_worktree", "j1/b"), ("delete_branch", "j1/b")]
    assert "2 uncommitted" in hard[1].destroys and "3 commits never merged" in hard[2].destroys
    assert clean.needs_confirmation(hard)
    # j2/a was used a day ago: its worktree stays, so its branch (checked out there) too.


def test_compaction_selects_only_finished_old_jobs():
    now = 1_000_000_000.0
    s = _state(now)
    assert compaction.select_jobs(s, now, 7) == ["j1"]  # j2 still has a running run
    assert compaction.select_jobs(s, now, 9.5) == []  # j1's last run ended 9 days ago
    assert archive.archive_name(3, 1234) == "events-000000000003-000000001234.msgpack.lz4"




def test_tmp_leftovers_keep_live_runs_and_a_resumable_session_home():
    now = 1_000_000_000.0
    s = _state(now)
    s.jobs["j1"].runs["a"].session_id = "s1"  # a can resume (below); b reported no session
    names = ["j1-a-home", "j1-b-home", "j1-b-issue.md", "j2-a-home", "j2-c-home", "j2-c-issue.md",
             "j9-x-home", ".gone-j1-b-home.123", "notes.txt"]
    resume = {"a": ["claude", "--resume"], "b": ["claude", "--resume"]}.get
    assert runtmp.leftovers(s, names, resume) == [
        ".gone-j1-b-home.123", "j1-b-home", "j1-b-issue.md", "j2-a-home", "j9-x-home"]
    # Its worktree goes in this cleanup (or went before): no follow-up, so no HOME kept for one.
    assert "j1-a-home" in runtmp.leftovers(s, names, resume, {"j1/a"})
    s.jobs["j1"].runs["a"].worktree_removed = True
    assert "j1-a-home" in runtmp.leftovers(s, names, resume)
    assert runtmp.keeps_home(["x"], "s") and not runtmp.keeps_home([], "s") and not runtmp.keeps_home(["x"], "")
