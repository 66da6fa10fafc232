"""The pure parts of checks, compare and pick (issue 10): which checks are due,
the sharing rule with agents, what a check's output says, the ranking, and the
landing in real git repositories (merge, squash, rebase, and the refusals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, running_checks
from cocode.jobs import checks, dispatch, landing, rank, review
from cocode.jobs.landing import Git, Refused
from support import GitRepo


def ready_state(*agents: str, job: str = "j") -> State:
    s = State()
    st.apply(s, ev.JobSubmitted(seq=1, job=job, title="Fix add", body="", agents=list(agents), base_sha="base"))
    for i, a in enumerate(agents):
        st.apply(s, ev.RunStarted(seq=10 + i, job=job, agent=a, worker="w", pid=1, pgid=1,
                                  worktree=f"/wt/{a}", branch=f"cocode/{job}/{a}", base_sha="base", ts=100.0))
        st.apply(s, ev.RunReady(seq=20 + i, job=job, agent=a, commit=f"c-{a}", ts=110.0 + i))
        st.apply(s, ev.RunFinished(seq=30 + i, job=job, agent=a, state="ready", ready_commit=f"c-{a}", ts=111.0 + i))
    return s


def start(s: State, agent: str, name: str, commit: str, seq: int, job: str = "j") -> None:
    st.apply(s, ev.CheckStarted(seq=seq, job=job, agent=agent, name=name, commit=commit, pgid=5, host="h"))


def end(s: State, agent: str, name: str, commit: str, status: str, seq: int, failed=None, passed=None) -> None:
    st.apply(s, ev.CheckFinished(seq=seq, job="j", agent=agent, name=name, commit=commit, status=status,
                                 failed=failed, passed=passed))


def due(s: State, names=("tests",), heads=None) -> list[tuple[str, str, str]]:
    return [(d.agent, d.name, d.commit) for d in checks.due(s, list(names), heads or {})]


# -- due -------------------------------------------------------------------------------------------


def test_ready_runs_are_due_once_per_commit():
    s = ready_state("a", "b")
    assert due(s) == [("a", "tests", "c-a"), ("b", "tests", "c-b")]
    start(s, "a", "tests", "c-a", 40)
    assert due(s) == [("b", "tests", "c-b")], "a running check is not started twice"
    end(s, "a", "tests", "c-a", "failed", 41)
    start(s, "b", "tests", "c-b", 42)
    end(s, "b", "tests", "c-b", "passed", 43)
    assert due(s) == []
    assert due(s, heads={("j", "a"): "c-a2"}) == [("a", "tests", "c-a2")], "a new commit reruns"


def test_a_request_reruns_and_a_cancelled_check_waits_for_one():
    s = ready_state("a")
    start(s, "a", "tests", "c-a", 40)
    end(s, "a", "tests", "c-a", "passed", 41)
    st.apply(s, ev.CheckRequested(seq=42, job="j", agent="a", names=["tests"]))
    assert due(s) == [("a", "tests", "c-a")]
    start(s, "a", "tests", "c-a", 43)
    end(s, "a", "tests", "c-a", "cancelled", 44)  # `cocode cancel` stopped it
    assert due(s, heads={("j", "a"): "new"}) == [], "cancelled: no automatic rerun, not even at a new head"
    assert checks.settled(s.jobs["j"], ["tests"])
    st.apply(s, ev.CheckRequested(seq=46, job="j"))
    assert due(s, heads={("j", "a"): "new"}) == [("a", "tests", "new")]


def test_an_interrupted_check_reruns_once_at_the_same_commit():
    s = ready_state("a")
    start(s, "a", "tests", "c-a", 40)
    assert [c[2].name for c in checks.stale(s, "h", set())] == ["tests"]
    assert checks.stale(s, "h", {("j", "a", "tests")}) == [], "ours: not stale"
    assert checks.stale(s, "other-host", set()) == []
    end(s, "a", "tests", "c-a", "interrupted", 41)
    assert due(s) == [("a", "tests", "c-a")]
    start(s, "a", "tests", "c-a", 42)
    end(s, "a", "tests", "c-a", "interrupted", 43)
    assert due(s) == [], "interrupted twice: left for `cocode check`, not a crash loop"
    assert s.jobs["j"].runs["a"].checks["tests"].status == "interrupted"


def test_runs_without_a_ready_commit_are_not_checked():
    s = State()
    st.apply(s, ev.JobSubmitted(seq=1, job="j", title="t", body="", agents=["a"], base_sha="b"))
    st.apply(s, ev.RunFinished(seq=2, job="j", agent="a", state="failed"))
    assert due(s) == [] and checks.settled(s.jobs["j"], ["tests"])


def test_settled_waits_for_every_check_of_every_ready_run():
    s = ready_state("a")
    job = s.jobs["j"]
    assert not checks.settled(job, ["tests"])
    start(s, "a", "tests", "c-a", 40)
    assert not checks.settled(job, ["tests"])
    end(s, "a", "tests", "c-a", "failed", 41)
    assert checks.settled(job, ["tests"]) and not checks.settled(job, ["tests", "lint"])
    assert checks.settled(job, [])


# -- sharing the cap ---------------------------------------------------------------------------------


def test_one_check_always_may_run_others_only_into_free_slots_with_no_queue():
    assert checks.may_start(running_checks=0, live_agents=3, queued_agents=5, cap=3)
    assert not checks.may_start(running_checks=1, live_agents=1, queued_agents=1, cap=3), "agents first"
    assert checks.may_start(running_checks=1, live_agents=1, queued_agents=0, cap=3)
    assert checks.may_start(running_checks=2, live_agents=1, queued_agents=0, cap=3)
    assert not checks.may_start(running_checks=3, live_agents=1, queued_agents=0, cap=3)


def test_the_scheduler_counts_running_checks_but_the_first():
    s = ready_state("a", "b")
    st.apply(s, ev.JobSubmitted(seq=50, job="q", title="t", body="", agents=["x", "y"], base_sha="b"))
    assert len(dispatch.plan(s, 2, 10, set(), {"w": 0})[0]) == 2
    start(s, "a", "tests", "c-a", 60)
    assert len(dispatch.plan(s, 2, 10, set(), {"w": 0})[0]) == 2, "the checks lane takes no agent slot"
    start(s, "b", "tests", "c-b", 61)
    assert len(dispatch.plan(s, 2, 10, set(), {"w": 0})[0]) == 1
    assert running_checks(s) == 2


# -- what the output says ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, passed, failed", [
    ("collected 4 items\n\n== 3 passed, 1 failed in 0.12s ==\n", 3, 1),
    ("....\n5 passed in 0.1s", 5, 0),
    ("Ran 4 tests in 0.001s\n\nFAILED (failures=1, errors=1)\n", 2, 2),
    ("Ran 4 tests in 0.001s\n\nOK\n", 4, 0),
    ("All checks passed!\n", None, None),
    ("", None, None),
])
def test_counts_from_the_last_lines(text, passed, failed):
    c = checks.from_last_line(text)
    assert (c.passed, c.failed) == (passed, failed)


def test_counts_from_junit_xml(tmp_path: Path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="5" failures="1" errors="1" skipped="1"/>'
                   '<testsuite tests="2" failures="0" errors="0"/></testsuites>')
    assert checks.from_junit(xml) == checks.Counts(4, 2, "4 passed, 2 failed, 1 skipped (JUnit XML)")
    xml.write_text("<testsuite tests='1' failures='0'/>")
    assert checks.from_junit(xml).passed == 1
    xml.write_text("not xml")
    assert checks.from_junit(xml) is None and checks.from_junit(tmp_path / "none.xml") is None


# -- ranking ------------------------------------------------------------------------------------------


def rows(**kw) -> list[rank.Row]:
    base = dict(state="ready", commit="c", checks={"tests": "passed"}, checks_ok=True)
    return [rank.Row(agent=a, **{**base, **v}) for a, v in kw.items()]


ORDER = list(rank.RULE_WORDS)


def test_all_pass_beats_fewer_failures_beats_smaller_diff_beats_earlier():
    r, why = rank.rank(rows(
        big=dict(added=100, ready_s=1.0),
        small=dict(added=3, ready_s=9.0),
        failing=dict(checks_ok=False, failures=1, added=1, ready_s=0.5),
        worse=dict(checks_ok=False, failures=4, added=1),
    ), ORDER)
    assert [x.agent for x in r] == ["small", "big", "failing", "worse"]
    assert [x.rank for x in r] == [1, 2, 3, 4]
    assert why.startswith("recommended: small (3 changed lines against 100 for big;")
    assert "rule: all checks pass > fewer failures > smaller diff > earlier ready" in why


def test_the_order_is_configurable_and_ties_break_by_name():
    r, why = rank.rank(rows(big=dict(added=100, ready_s=1.0), small=dict(added=3, ready_s=9.0)),
                       ["ready", "diff", "checks", "failures"])
    assert r[0].agent == "big" and "ready sooner than small" in why
    r, why = rank.rank(rows(b={}, a={}), ORDER)
    assert [x.agent for x in r] == ["a", "b"] and "first by name" in why


def test_only_ready_runs_are_recommended():
    r, why = rank.rank(rows(ok=dict(checks_ok=False, failures=9), gone=dict(state="failed", commit=None)), ORDER)
    assert [(x.agent, x.rank) for x in r] == [("ok", 1), ("gone", 0)] and "the only ready run" in why
    r, why = rank.rank(rows(gone=dict(state="failed", commit=None)), ORDER)
    assert why.startswith("no run is ready")


def test_rows_from_the_fold():
    s = ready_state("a")
    start(s, "a", "tests", "c-a", 40)
    end(s, "a", "tests", "c-a", "failed", 41, failed=2, passed=5)
    start(s, "a", "lint", "c-a", 42)
    end(s, "a", "lint", "c-a", "failed", 43)
    r = rank.row(s.jobs["j"].runs["a"], 4, 1, 2)
    assert (r.checks_ok, r.failures, r.passed, r.failed, r.ready_s) == (False, 3, 5, 2, 10.0)
    assert (r.added, r.removed, r.files) == (4, 1, 2)


# -- landing in real repositories ------------------------------------------------------------------------


@pytest.fixture
def two_lines(tmp_path: Path, monkeypatch) -> tuple[GitRepo, str, str]:
    """main with a file, and a run branch changing its first line in two commits."""
    from support import isolated_env

    for k, v in isolated_env().items():
        if k.startswith("GIT_"):
            monkeypatch.setenv(k, v)
    repo = GitRepo.init(tmp_path / "r", {"f.txt": "one\ntwo\n", "g.txt": "g\n"})
    base = repo.head()
    repo.git("switch", "-q", "-c", "run")
    repo.commit("first", {"f.txt": "ONE\ntwo\n"})
    ready = repo.commit("second", {"h.txt": "new\n"})
    repo.git("switch", "-q", "main")
    return repo, base, ready


def test_land_merge_squash_rebase(two_lines):
    repo, base, ready = two_lines
    git = Git(repo.path, 30)
    assert landing.diffstat(repo.path, base, ready) == (2, 1, 2)
    co = landing.ready_checkout(git, "HEAD")
    assert co == ("main", base) and landing.conflicts(git, co.head, ready) == []
    merged = landing.land(git, "merge", ready, base, "merge it")
    assert repo.git("rev-list", "--parents", "-n1", merged).split()[1:] == [base, ready]
    repo.git("reset", "-q", "--hard", base)
    squashed = landing.land(git, "squash", ready, base, "squash it")
    assert repo.git("rev-list", "--parents", "-n1", squashed).split()[1:] == [base]
    assert repo.git("log", "-1", "--format=%s") == "squash it" and (repo.path / "h.txt").exists()
    repo.git("reset", "-q", "--hard", base)
    assert landing.land(git, "rebase", ready, base, "") == ready, "fast-forward when the base did not move"
    repo.git("reset", "-q", "--hard", base)
    moved = repo.commit("elsewhere", {"g.txt": "G\n"})
    rebased = landing.land(git, "rebase", ready, base, "")
    assert repo.git("rev-list", "--count", f"{moved}..{rebased}") == "2"
    assert repo.git("rev-list", "--count", "--merges", rebased) == "0"


def test_refusals_change_nothing(two_lines):
    repo, base, ready = two_lines
    git = Git(repo.path, 30)
    (repo.path / "g.txt").write_text("dirty\n")
    with pytest.raises(Refused, match="uncommitted change.*git stash"):
        landing.ready_checkout(git, "HEAD")
    repo.git("checkout", "g.txt")
    repo.commit("clash", {"f.txt": "uno\ntwo\n"})
    assert landing.conflicts(git, repo.head(), ready) == ["f.txt"]
    head = repo.head()
    with pytest.raises(Exception):
        landing.land(git, "rebase", ready, base, "")  # a cherry-pick that conflicts is undone
    assert repo.head() == head and repo.git("status", "--porcelain") == ""
    repo.git("switch", "-q", "--detach")
    with pytest.raises(Refused, match="detached HEAD"):
        landing.ready_checkout(git, "HEAD")
    repo.git("switch", "-q", "run")
    with pytest.raises(Refused, match="git switch main"):
        landing.ready_checkout(git, "main")
    with pytest.raises(Refused, match="git remote add origin"):
        landing.remote(git)


def test_pr_body_closes_an_issue_from_github_only():
    s = ready_state("a")
    job = s.jobs["j"]
    p = review.Pick(job, job.runs["a"], rank.Row(agent="a", state="ready", commit="c-a", added=2, files=1), "", True)
    assert not review.pr_body(p).startswith("Fixes")
    job.issue_number, job.issue_url = 7, "https://github.com/o/r/issues/7"
    body = review.pr_body(p)
    assert body.startswith("Fixes #7\n") and "`a` agent" in body and "+2/-0 in 1 file(s)" in body


# -- notifications ------------------------------------------------------------------------------------------


def test_notices_once_per_moment():
    from cocode.jobs import notify

    s = State()
    st.apply(s, ev.JobSubmitted(seq=1, job="j", title="T", body="", agents=["a", "b"], base_sha="x"))
    said: set = set()

    def fold(e):
        st.apply(s, e)
        return [(n.trigger, n.agent, n.state) for n in notify.notices(e, s, ["tests"], said)]

    assert fold(ev.RunReady(seq=2, job="j", agent="a", commit="c")) == [("run_ready", "a", "ready")]
    assert fold(ev.RunFinished(seq=3, job="j", agent="a", state="ready", ready_commit="c")) == []
    assert fold(ev.RunFinished(seq=4, job="j", agent="b", state="failed")) == [
        ("run_failed", "b", "failed"), ("job_done", "", "1/2 ready")]
    assert fold(ev.CheckStarted(seq=5, job="j", agent="a", name="tests", commit="c")) == []
    assert fold(ev.CheckFinished(seq=6, job="j", agent="a", name="tests", commit="c", status="passed")) == [
        ("checks_done", "", "1 run(s) pass every check")]
    st.apply(s, ev.CheckStarted(seq=7, job="j", agent="a", name="tests", commit="c"))
    assert fold(ev.CheckFinished(seq=8, job="j", agent="a", name="tests", commit="c", status="passed")) == [], \
        "checks_done once per job"


def test_checks_start_at_the_ready_commit_not_an_earlier_head():
    """run_ready comes before the run_progress that moves the head to it: the ready
    commit is the head from run_ready on, so the first check tests the right commit."""
    s = State()
    st.apply(s, ev.JobSubmitted(seq=1, job="j", title="t", body="", agents=["a"], base_sha="base"))
    st.apply(s, ev.RunStarted(seq=2, job="j", agent="a", worker="w", pid=1, pgid=1, worktree="/wt/a",
                              branch="b", base_sha="base"))
    st.apply(s, ev.RunProgress(seq=3, job="j", agent="a", head="wip", commits=1))
    st.apply(s, ev.RunReady(seq=4, job="j", agent="a", commit="done"))
    assert due(s) == [("a", "tests", "done")]
    start(s, "a", "tests", "done", 5)
    end(s, "a", "tests", "done", "passed", 6)
    st.apply(s, ev.RunFinished(seq=7, job="j", agent="a", state="ready", ready_commit="done"))
    assert checks.settled(s.jobs["j"], ["tests"])
    st.apply(s, ev.RunProgress(seq=8, job="j", agent="a", head="later", commits=2))
    assert not checks.settled(s.jobs["j"], ["tests"]), "a result for an older head is not the last word"


def test_pick_refuses_a_running_run_no_ready_commit_a_second_pick_and_unknown_agents(tmp_path: Path):
    from cocode.errors import ConfigError

    s = ready_state("a", "b")
    st.apply(s, ev.JobSubmitted(seq=90, job="r", title="t", body="", agents=["x", "y"], base_sha="base"))
    st.apply(s, ev.RunStarted(seq=91, job="r", agent="x", worker="w", pid=1, pgid=1, worktree="/wt/x",
                              branch="b", base_sha="base"))
    st.apply(s, ev.RunFinished(seq=92, job="r", agent="y", state="failed", reason="exit_1"))
    pick = lambda job, agent, mode="merge": review.choose(s, tmp_path, job, agent, mode, False, ORDER)  # noqa: E731
    with pytest.raises(Refused, match="still running: wait .*cocode cancel r x"):
        pick("r", "x")
    with pytest.raises(Refused, match="has no ready commit .*failed, exit_1.*cocode compare r"):
        pick("r", "y")
    with pytest.raises(Refused, match="no run of r is ready"):
        pick("r", None)
    with pytest.raises(ConfigError, match="has no agent 'z'"):
        pick("j", "z")
    assert pick("j", None).run.agent == "a", "the recommended run (a tie: first by name)"
    st.apply(s, ev.Picked(seq=93, job="j", agent="a", mode="merge", commit="c-a"))
    with pytest.raises(Refused, match="already picked \\(a, merge\\)"):
        pick("j", "b")
    assert review.choose(s, tmp_path, "j", "a", "", True, ORDER).pr, "a PR after a merge is still allowed"


def test_rows_carry_the_runs_reported_tokens_and_cost():
    s = ready_state("a", "b")
    st.apply(s, ev.RunUsage(seq=50, job="j", agent="a", attempt=1, input_tokens=1000, output_tokens=200,
                            cost_usd=0.25))
    a, b = rank.row(s.jobs["j"].runs["a"]), rank.row(s.jobs["j"].runs["b"])
    assert (a.tokens, a.cost_usd) == (1200, 0.25) and (b.tokens, b.cost_usd) == (None, None)
    assert "$0.25" in review.table([a, b])
