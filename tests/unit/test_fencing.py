"""A paused worker is slow, not dead: its runs are given up only once its process
is gone (jobs/liveness.py), and the reports of a worker that comes back after its
run was requeued are fenced off by attempt in the fold (core/state.py)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, encode_state
from cocode.jobs import liveness
from support import state_with, wait_until


def started(attempt: int) -> ev.RunStarted:
    return ev.RunStarted(job="j1", agent="a", worker="w@h", pid=100 + attempt, pgid=100 + attempt,
                         worktree="/wt/j1-a", branch="cocode/j1/a", base_sha="x", attempt=attempt,
                         worker_pid=10 * attempt)


def requeued_once() -> State:
    s = state_with([("j1", 0)])
    st.apply(s, ev.RunDispatched(job="j1", agent="a", worker="w@h", attempt=1, worker_pid=10))
    st.apply(s, started(1))
    st.apply(s, ev.RunInterrupted(job="j1", agent="a", worker="w@h", reason="worker_lost", attempt=1))
    st.apply(s, ev.RunRequeued(job="j1", agent="a", attempt=2))
    st.apply(s, ev.RunDispatched(job="j1", agent="a", worker="w@h", attempt=2, worker_pid=20))
    return s


def test_a_late_workers_reports_of_an_old_attempt_change_nothing():
    s = requeued_once()
    run = s.jobs["j1"].runs["a"]
    assert (run.state, run.attempt, run.live, run.pid, run.worker_pid) == ("running", 2, True, 0, 20)
    before = encode_state(s)
    for stale in (started(1),
                  ev.RunProgress(job="j1", agent="a", head="h1", commits=3, attempt=1),
                  ev.RunReady(job="j1", agent="a", commit="c1", attempt=1),
                  ev.RunInterrupted(job="j1", agent="a", worker="w@h", attempt=1),
                  ev.RunFinished(job="j1", agent="a", state="failed", reason="signal_9", attempt=1)):
        st.apply(s, stale)
        assert encode_state(s) == before, f"a stale {stale.type} changed the run"
    # The current attempt's reports count.
    st.apply(s, started(2))
    st.apply(s, ev.RunFinished(job="j1", agent="a", state="ready", ready_commit="c2", attempt=2))
    assert (run.state, run.ready_commit, run.pid, run.worker_pid) == ("ready", "c2", 102, 20)


def test_unfenced_reports_from_logs_before_fencing_still_count():
    s = requeued_once()
    st.apply(s, ev.RunFinished(job="j1", agent="a", state="failed", reason="exit_1"))  # attempt 0
    assert s.jobs["j1"].runs["a"].state == "failed"


def test_silence_alone_gives_up_a_worker_only_where_its_pid_cannot_be_probed():
    def alive(pid, name):
        return pid == 42

    assert not liveness.worker_gone("worker@h", 42, 9.0, 10.0, alive, host="h"), "not silent long enough"
    assert not liveness.worker_gone("worker@h", 42, 600.0, 10.0, alive, host="h"), "paused, not dead"
    assert liveness.worker_gone("worker@h", 43, 11.0, 10.0, alive, host="h"), "its process is gone"
    assert liveness.worker_gone("worker@other", 42, 11.0, 10.0, alive, host="h"), "cannot probe another host"
    assert liveness.worker_gone("worker@h", 0, 11.0, 10.0, alive, host="h"), "no pid known (an older log)"


def test_a_stopped_process_is_alive_a_dead_or_zombie_one_is_not():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        # Between fork and exec its cmdline is empty.
        wait_until(lambda: b"sleep" in cmdline.read_bytes(), 5, what="the exec of sleep", interval=0.005)
        assert liveness.pid_alive(proc.pid, "sleep")
        proc.send_signal(signal.SIGSTOP)
        assert liveness.pid_alive(proc.pid, "sleep"), "a paused process is not dead"
        assert not liveness.pid_alive(proc.pid, "worker"), "a pid reused by another program"
        proc.kill()
        # Killed but not yet reaped: a zombie, gone for our purposes.
        wait_until(lambda: not liveness.pid_alive(proc.pid, "sleep"), 5, what="the killed sleep to be gone",
                   interval=0.01)
    finally:
        proc.kill()
        proc.wait(10)
    assert not liveness.pid_alive(proc.pid, "sleep") and not liveness.pid_alive(0)
