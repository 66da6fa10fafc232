"""The scheduler's in-flight records: each pending decision lives from the moment
it is taken until the log shows it, and no longer (cocode/jobs/inflight.py)."""

from __future__ import annotations

from cocode.core import events as ev
from cocode.core import wire
from cocode.jobs import dispatch
from cocode.jobs.inflight import InflightTable
from cocode.runkey import RunKey
from support import state_with

RUN = RunKey("j1", "a")


def dispatched(table: InflightTable, run: RunKey = RUN, attempt: int = 1, msg_id: int = 7) -> wire.Dispatch:
    msg = wire.Dispatch(job=run.job, agent=run.agent, attempt=attempt, job_seq=1)
    table.dispatch(run, attempt, "w", msg_id, msg)
    return msg


def test_a_dispatch_lives_from_the_decision_to_run_started():
    t = InflightTable()
    msg = dispatched(t)
    assert t.in_flight() == {RUN} and t.is_dispatching(RUN)
    assert t.acked(99) is None, "an ack for another append sends nothing"
    assert t.acked(7) == ("w", msg) and t.acked(7) is None, "sent once, at its ack"
    t.sent(RUN, 1, now=100.0)
    t.seen(ev.RunDispatched(job="j1", agent="a", worker="w", attempt=1))
    assert t.in_flight() == set() and t.get(RUN).sent_at == 100.0, "recorded; kept until it starts"
    t.seen(ev.RunStarted(job="j1", agent="a", worker="w", pid=1, pgid=1, worktree="", branch="",
                         base_sha="x", attempt=1))
    assert t.get(RUN) is None and t.records == {} and t.by_msg == {}


def test_the_plan_does_not_start_a_run_twice_while_its_dispatch_is_on_its_way():
    s = state_with([("j1", 0), ("j2", 0)])
    t = InflightTable()
    starts, _ = dispatch.plan(s, 5, 10, t.in_flight(), {"w": 0}, t.reclaiming())
    for job, run, worker, _ in starts:
        dispatched(t, RunKey(job.job, run.agent), msg_id=int(job.job[1:]))
    again, _ = dispatch.plan(s, 5, 10, t.in_flight(), {"w": 0}, t.reclaiming())
    assert len(starts) == 2 and again == []


def test_a_dispatch_is_resent_only_after_its_ack_and_a_quiet_while():
    t = InflightTable()
    assert t.resend_due(RUN, 1, now=106.0, since=100.0, after=5.0), "none sent by this scheduler"
    assert not t.resend_due(RUN, 1, now=104.0, since=100.0, after=5.0)
    dispatched(t)
    assert not t.resend_due(RUN, 1, now=200.0, since=100.0, after=5.0), "it goes out with its ack"
    t.acked(7)
    t.sent(RUN, 1, now=150.0)
    assert not t.resend_due(RUN, 1, now=154.0, since=100.0, after=5.0)
    assert t.resend_due(RUN, 1, now=156.0, since=100.0, after=5.0)
    t.sent(RUN, 1, now=156.0)
    assert not t.resend_due(RUN, 1, now=157.0, since=100.0, after=5.0)


def test_an_ack_for_an_unknown_worker_leaves_the_resend_to_the_timer():
    t = InflightTable()
    dispatched(t)
    t.seen(ev.RunDispatched(job="j1", agent="a", worker="w", attempt=1))
    assert t.acked(7) is not None  # the scheduler had no socket identity for "w": nothing went
    assert t.get(RUN) is None
    assert t.resend_due(RUN, 1, now=106.0, since=100.0, after=5.0)


def test_a_wait_is_said_once_until_the_log_shows_it():
    t = InflightTable()
    assert t.say_waiting(RUN, "max_worktrees") and not t.say_waiting(RUN, "max_worktrees")
    assert t.say_waiting(RUN, "memory_pressure"), "a new reason is said"
    t.seen(ev.RunWaiting(job="j1", agent="a", reason="memory_pressure"))
    assert t.get(RUN) is None


def test_an_interruption_and_its_settling_happen_once_per_attempt():
    t = InflightTable()
    assert t.interrupt(RUN, 1) and not t.interrupt(RUN, 1)
    t.seen(ev.RunInterrupted(job="j1", agent="a", reason="worker_lost", attempt=1))
    assert t.get(RUN) is None
    assert t.settle(RUN, 1) and not t.settle(RUN, 1)
    t.seen(ev.RunRequeued(job="j1", agent="a", attempt=2))
    assert t.get(RUN) is None
    assert t.settle(RUN, 2), "the next attempt is settled on its own"
    t.seen(ev.RunFinished(job="j1", agent="a", state="failed", reason="interrupted", attempt=2))
    assert t.records == {}


def test_events_of_another_attempt_settle_nothing():
    t = InflightTable()
    assert t.interrupt(RUN, 2)
    t.seen(ev.RunInterrupted(job="j1", agent="a", attempt=1))  # a late worker's, of attempt 1
    t.seen(ev.RunFinished(job="j1", agent="a", state="failed", attempt=1))
    assert t.get(RUN).interrupting and not t.interrupt(RUN, 2)


def test_a_reclaim_outlives_the_end_of_the_run_until_its_worktree_is_gone():
    t = InflightTable()
    old, other = RunKey("old", "a"), RunKey("other", "a")
    t.reclaim(old)
    t.reclaim(other)
    assert t.reclaiming() == {old, other} == {("old", "a"), ("other", "a")}
    t.seen(ev.RunFinished(job="old", agent="a", state="failed"))
    assert old in t.reclaiming(), "a final run's reclaim is not settled by its end"
    t.seen(ev.WorktreeRemoved(job="old", agent="a", path="/wt/old", reason="max_worktrees"))
    t.seen(ev.WarningEvent(job="other", agent="a", code="reclaim_failed", message="busy"))
    assert t.reclaiming() == frozenset() and t.records == {}


def test_resends_are_counted_per_attempt_so_the_scheduler_can_bound_them():
    # Issue 11, defect 2: a worker that takes a dispatch and drops it (its start
    # failing) was sent it again every 5 s forever; the scheduler stops at 3 resends.
    t = InflightTable()
    dispatched(t)
    t.acked(7)
    t.sent(RUN, 1, now=100.0)
    assert t.resends(RUN, 1) == 0, "the first send is no resend"
    for i in range(3):
        t.sent(RUN, 1, now=106.0 + 6 * i)
    assert t.resends(RUN, 1) == 3 and t.resends(RUN, 2) == 0
    t.seen(ev.RunStarted(job="j1", agent="a", worker="w", pid=1, pgid=1, worktree="", branch="",
                         base_sha="x", attempt=1))
    assert t.resends(RUN, 1) == 0, "a start ends the count"
