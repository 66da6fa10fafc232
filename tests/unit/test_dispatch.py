"""The pure dispatch decision: order, limits, worktree reclaim, pressure."""

from __future__ import annotations

from cocode.jobs import dispatch
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from support import state_with


def finish(s: State, job: str, ts: float, agent: str = "a") -> None:
    st.apply(s, ev.RunStarted(job=job, agent=agent, worker="w", pid=1, pgid=1,
                              worktree=f"/wt/{job}", branch="b", base_sha="x"))
    st.apply(s, ev.RunFinished(job=job, agent=agent, state="failed", ts=ts))


def started(starts) -> list[str]:
    return [f"{job.job}/{run.agent}" for job, run, _, _ in starts]


def test_priority_first_then_fifo_within_the_concurrency_limit():
    s = state_with([("low1", 0), ("high", 5), ("low2", 0), ("low3", 0)])
    starts, waits = dispatch.plan(s, 3, 10, set(), {"w": 0})
    assert started(starts) == ["high/a", "low1/a", "low2/a"] and waits == []


def test_in_flight_and_live_runs_use_up_slots():
    s = state_with([("j1", 0), ("j2", 0), ("j3", 0)])
    st.apply(s, ev.RunDispatched(job="j1", agent="a", worker="w"))
    starts, _ = dispatch.plan(s, 2, 10, {("j2", "a")}, {"w": 0})
    assert starts == []
    assert dispatch.plan(s, 2, 10, set(), {}) == ([], []), "no live worker: nothing starts"


def test_a_full_worktree_budget_reclaims_the_oldest_finished_run_once():
    s = state_with([("old", 0), ("older", 0), ("new1", 0), ("new2", 0)])
    finish(s, "old", ts=200.0)
    finish(s, "older", ts=100.0)
    starts, waits = dispatch.plan(s, 5, 2, set(), {"w": 0})
    reclaimed = [rc[0] for *_, rc in starts]
    assert started(starts) == ["new1/a", "new2/a"] and reclaimed == ["older", "old"]
    # While "older" is being reclaimed, it is not offered again.
    s2 = state_with([("old", 0), ("older", 0), ("new1", 0)])
    finish(s2, "old", ts=200.0)
    finish(s2, "older", ts=100.0)
    starts, _ = dispatch.plan(s2, 5, 1, set(), {"w": 0}, frozenset({("older", "a")}))
    assert [rc[0] for *_, rc in starts] == ["old"]


def test_worktrees_of_live_runs_are_never_reclaimed():
    s = state_with([("live", 0), ("next", 0)])
    st.apply(s, ev.RunStarted(job="live", agent="a", worker="w", pid=1, pgid=1,
                              worktree="/wt/live", branch="b", base_sha="x"))
    starts, waits = dispatch.plan(s, 5, 1, set(), {"w": 0})
    assert starts == [] and [(j.job, reason) for j, _, reason in waits] == [("next", "max_worktrees")]


def test_memory_pressure_holds_every_queued_run():
    s = state_with([("j1", 0), ("j2", 0)])
    st.apply(s, ev.MemoryPressure(on=True, percent=90, threshold=80))
    starts, waits = dispatch.plan(s, 5, 10, set(), {"w": 0})
    assert starts == [] and {reason for *_, reason in waits} == {"memory_pressure"}
    st.apply(s, ev.MemoryPressure(on=False, percent=70, threshold=80))
    assert len(dispatch.plan(s, 5, 10, set(), {"w": 0})[0]) == 2


def test_a_dispatched_run_whose_worktree_is_not_made_yet_counts_against_max_worktrees():
    # Parallel submits: runs dispatched (recorded) but not started have no worktree
    # in the log yet; they are about to make one each.
    s = state_with([("j1", 0), ("j2", 0), ("j3", 0)])
    st.apply(s, ev.RunDispatched(job="j1", agent="a", worker="w"))
    st.apply(s, ev.RunDispatched(job="j2", agent="a", worker="w"))
    starts, waits = dispatch.plan(s, 5, 2, set(), {"w": 2})
    assert starts == [] and [(j.job, reason) for j, _, reason in waits] == [("j3", "max_worktrees")]
