"""The fold (cocode.core.state), pure: a run's life from submission to its end, an
interruption and its requeue, cancellation, the queue's order, services, warnings,
and that replaying a log, applying it event by event and a snapshot round trip all
give the same state."""

from __future__ import annotations

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, decode_state, encode_state, iter_queued, queued_runs
from support import state_with


def numbered(events: list[ev.Event], first: int = 1) -> list[ev.Event]:
    """The events as the store would give them: consecutive seqs, increasing ts."""
    for i, e in enumerate(events):
        e.seq, e.ts = first + i, 1000.0 + first + i
    return events


def life_of_a_job() -> list[ev.Event]:
    return numbered([
        ev.JobSubmitted(job="j1", title="t", body="b", agents=["a", "b"], base_sha="base"),
        ev.RunWaiting(job="j1", agent="a", reason="max_worktrees"),
        ev.RunDispatched(job="j1", agent="a", worker="w@h", attempt=1, worker_pid=7),
        ev.RunStarted(job="j1", agent="a", worker="w@h", pid=11, pgid=11, worktree="/wt/j1-a",
                      branch="cocode/j1/a", base_sha="base", attempt=1, timeout_s=600, worker_pid=7),
        ev.RunProgress(job="j1", agent="a", head="h1", commits=1, attempt=1),
        ev.RunProgress(job="j1", agent="a", head="h2", commits=2, timeout_s=1200, attempt=1),
        ev.RunReady(job="j1", agent="a", commit="h2", attempt=1),
        ev.RunFinished(job="j1", agent="a", state="ready", exit_code=0, commits=2, ready_commit="h2",
                       attempt=1),
        ev.RunDispatched(job="j1", agent="b", worker="w@h", attempt=1, worker_pid=7),
        ev.RunFinished(job="j1", agent="b", state="failed", reason="exit_1", exit_code=1, attempt=1),
    ])


def test_a_run_from_submission_to_its_end():
    evts = life_of_a_job()
    s = State()
    seen = []
    for e in evts:
        st.apply(s, e)
        job = s.jobs["j1"]
        a = job.runs["a"]
        seen.append((job.state, a.state, a.reason, a.live, a.final))
    assert seen == [
        ("queued", "queued", None, False, False),
        ("queued", "queued", "max_worktrees", False, False),
        ("running", "running", None, True, False),  # running from dispatch on
        ("running", "running", None, True, False),
        ("running", "running", None, True, False),
        ("running", "running", None, True, False),
        ("running", "ready", None, True, False),  # ready, still alive until it ends
        ("running", "ready", None, False, True),
        ("running", "ready", None, False, True),
        ("done", "ready", None, False, True),  # every run final
    ]
    a, b = s.jobs["j1"].runs["a"], s.jobs["j1"].runs["b"]
    assert (a.started_at, a.ended_at) == (1004.0, 1008.0)
    assert (a.worktree, a.branch, a.pid, a.worker_pid, a.head, a.commits) == ("/wt/j1-a", "cocode/j1/a", 11, 7,
                                                                             "h2", 2)
    assert a.timeout_s == 1200, "the budget grown with the diff"
    assert (a.ready_commit, a.exit_code) == ("h2", 0)
    assert (b.state, b.reason, b.exit_code, b.started_at) == ("failed", "exit_1", 1, None)
    assert s.seq == 10


def test_a_final_run_is_never_reopened():
    s = st.replay(life_of_a_job())
    before = encode_state(s)
    for late in numbered([
        ev.RunDispatched(job="j1", agent="a", worker="w2@h", attempt=1),
        ev.RunStarted(job="j1", agent="a", worker="w2@h", pid=99, pgid=99, worktree="/x", branch="x",
                      base_sha="x", attempt=1),
        ev.RunReady(job="j1", agent="a", commit="other", attempt=1),
        ev.RunFinished(job="j1", agent="a", state="failed", reason="exit_2", attempt=1),
        ev.RunInterrupted(job="j1", agent="a", worker="w@h", reason="worker_lost", attempt=1),
        ev.RunRequeued(job="j1", agent="a", attempt=2),
        ev.RunWaiting(job="j1", agent="a", reason="memory_pressure"),
        ev.CancelRequested(job="j1"),
    ], first=11):
        st.apply(s, late)
    s.seq = 10
    assert encode_state(s) == before


def test_an_interrupted_run_waits_for_the_scheduler_then_goes_again():
    s = state_with([("j1", 0)])
    for e in numbered([
        ev.RunDispatched(job="j1", agent="a", worker="w@h", attempt=1),
        ev.RunStarted(job="j1", agent="a", worker="w@h", pid=5, pgid=5, worktree="/wt/j1-a",
                      branch="cocode/j1/a", base_sha="x", attempt=1),
        ev.RunInterrupted(job="j1", agent="a", worker="w@h", reason="worker_lost", attempt=1),
    ], first=2):
        st.apply(s, e)
    run = s.jobs["j1"].runs["a"]
    assert (run.state, run.live, run.interrupted, run.reason, run.pid) == ("queued", False, True, "worker_lost", 0)
    assert queued_runs(s) == [], "not queued again until the scheduler decides"
    st.apply(s, ev.RunRequeued(job="j1", agent="a", attempt=2, seq=5))
    assert (run.state, run.attempt, run.interrupted, run.reason) == ("queued", 2, False, None)
    assert run.worktree == "/wt/j1-a", "the next attempt works in the same worktree"
    assert [(j.job, r.agent) for j, r in queued_runs(s)] == [("j1", "a")]


def test_cancel_marks_unfinished_runs_and_leaves_the_queue():
    s = state_with([("j1", 0), ("j2", 0)], agents=("a", "b"))
    st.apply(s, ev.CancelRequested(job="j1", agent="b", seq=3))
    st.apply(s, ev.CancelRequested(job="j2", seq=4))
    flags = {(j, a): r.cancel_requested for j, job in s.jobs.items() for a, r in job.runs.items()}
    assert flags == {("j1", "a"): False, ("j1", "b"): True, ("j2", "a"): True, ("j2", "b"): True}
    assert [(j.job, r.agent) for j, r in queued_runs(s)] == [("j1", "a")]
    st.apply(s, ev.CancelRequested(job="nope", seq=5))  # an unknown job: nothing, no error


def test_the_queue_is_priority_then_submission_then_agent_order():
    s = state_with([("p0", 0), ("p5", 5), ("n1", -1), ("p5b", 5), ("p0b", 0)], agents=("x", "a"))
    assert [(j.job, r.agent) for j, r in iter_queued(s)] == [
        ("p5", "x"), ("p5", "a"), ("p5b", "x"), ("p5b", "a"), ("p0", "x"), ("p0", "a"),
        ("p0b", "x"), ("p0b", "a"), ("n1", "x"), ("n1", "a")]
    st.apply(s, ev.RunDispatched(job="p5", agent="x", worker="w", attempt=1, seq=6))
    assert next(iter_queued(s))[1].agent == "a", "a run handed to a worker is not queued"


def test_pressure_worktrees_services_and_warnings():
    s = State()
    st.apply(s, ev.MemoryPressure(on=True, percent=91.0, threshold=80.0, seq=1))
    assert s.pressure
    st.apply(s, ev.MemoryPressure(on=False, percent=70.0, threshold=80.0, seq=2))
    assert not s.pressure
    st.apply(s, ev.ServiceStarted(service="monitor", pid=10, seq=3, ts=3.0))
    st.apply(s, ev.ServiceStopped(service="monitor", pid=9, reason="old", seq=4))  # another pid: ignored
    assert (s.services["monitor"].state, s.services["monitor"].pid) == ("running", 10)
    st.apply(s, ev.ServiceCrashed(service="monitor", pid=10, exit_code=-9, restarts=1, seq=5, ts=5.0))
    assert (s.services["monitor"].state, s.services["monitor"].reason, s.services["monitor"].restarts) == (
        "crashed", "exit -9", 1)
    st.apply(s, ev.ServiceGaveUp(service="monitor", crashes=5, window_s=60.0, reason="too many", seq=6))
    assert s.services["monitor"].state == "gave_up"
    for i in range(25):
        st.apply(s, ev.WarningEvent(code="c", message=str(i), seq=7 + i))
    assert [w.message for w in s.warnings] == [str(i) for i in range(5, 25)], "the last 20 kept"
    st.apply(s, ev.BenchTick(n=1, seq=40))  # not folded: only the seq moves
    assert s.seq == 40 and "bench_tick" not in st.FOLDED_TYPES and "job_submitted" in st.FOLDED_TYPES
    s2 = state_with([("j1", 0)])
    st.apply(s2, ev.WorktreeRemoved(job="j1", agent="a", path="/wt/j1-a", reason="idle", seq=2))
    assert s2.jobs["j1"].runs["a"].worktree_removed


def test_replay_event_by_event_and_a_snapshot_agree():
    evts = life_of_a_job()
    whole = st.replay(evts)
    split = st.replay(evts[4:], decode_state(encode_state(st.replay(evts[:4]))))
    assert encode_state(split) == encode_state(whole)
    assert decode_state(encode_state(whole)) == whole
