"""The store's append gate (cocode/core/gate.py): who may report on a run, and which
senders are agents. Pure rules over a folded state; one real process tree for
`ancestors` and one real socket for `peer_pid`."""

from __future__ import annotations

import os
import subprocess
import sys

import zmq

from cocode.core import events as ev
from cocode.core import gate
from cocode.core import state as st
from cocode.core.views import State

WORKER = 4242


def live_state(worker_pid: int = WORKER) -> State:
    s = State()
    st.apply(s, ev.JobSubmitted(seq=1, job="j1", title="t", body="b", agents=["a"], base_sha="0" * 40))
    st.apply(s, ev.RunDispatched(seq=2, job="j1", agent="a", worker="worker@h", worker_pid=worker_pid))
    return s


def test_a_live_runs_reports_are_refused_from_anyone_but_its_worker():
    s = live_state()
    forged = ev.RunFinished(job="j1", agent="a", state="ready", ready_commit="0" * 40, attempt=1)
    why = gate.event_refusal(s, forged, 999, alive=lambda pid: True)
    assert why == "run_finished for j1/a from pid 999: the run belongs to worker pid 4242"
    assert gate.event_refusal(s, forged, WORKER, alive=lambda pid: True) is None
    for event in (ev.RunStarted(job="j1", agent="a", worker="w", pid=1, pgid=1, worktree="", branch="",
                                base_sha=""), ev.RunReady(job="j1", agent="a", commit="c"),
                  ev.RunProgress(job="j1", agent="a", head="c", commits=1), ev.RunInterrupted(job="j1", agent="a")):
        assert gate.event_refusal(s, event, 999, alive=lambda pid: True), event.type


def test_once_its_worker_is_gone_others_settle_the_run():
    s = live_state()
    lost = ev.RunInterrupted(job="j1", agent="a", reason="worker_lost", attempt=1)
    assert gate.event_refusal(s, lost, 999, alive=lambda pid: False) is None


def test_other_events_and_runs_not_live_are_not_the_gates_business():
    s = live_state()
    assert gate.event_refusal(s, ev.CancelRequested(job="j1"), 999, alive=lambda pid: True) is None
    st.apply(s, ev.RunFinished(seq=3, job="j1", agent="a", state="failed", attempt=1))
    late = ev.RunFinished(job="j1", agent="a", state="cancelled", attempt=1)
    assert gate.event_refusal(s, late, 999, alive=lambda pid: True) is None
    assert gate.event_refusal(live_state(worker_pid=0), late, 999, alive=lambda pid: True) is None


def test_the_workers_descendants_are_agents():
    tree = {10: [5, 3], 11: [3], 12: [7]}
    parents = lambda pid: tree.get(pid, [])  # noqa: E731
    assert gate.agent_refusal(10, {5}, parents).startswith("pid 10 runs an agent's code (under worker or checks pid 5)")
    assert gate.agent_refusal(11, {5}, parents) is None
    assert gate.agent_refusal(5, {5}, parents) is None  # the worker itself
    assert gate.agent_refusal(12, set(), parents) is None


def test_runner_pids_are_the_worker_and_checks_services_and_live_runs_workers():
    s = live_state()
    st.apply(s, ev.ServiceStarted(seq=3, service="worker", pid=77))
    st.apply(s, ev.ServiceStarted(seq=4, service="checks", pid=78))
    assert gate.runner_pids(s) == {WORKER, 77, 78}


def test_ancestors_walks_a_real_process_tree():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # pacing: a live child to walk up from
    try:
        assert list(gate.ancestors(child.pid))[:1] == [os.getpid()]
        assert os.getppid() in list(gate.ancestors(child.pid))
    finally:
        child.kill()
        child.wait()


def test_peer_pid_is_the_senders_process(tmp_path):
    ctx = zmq.Context()
    try:
        router, sender = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
        router.bind(f"ipc://{tmp_path}/s.ipc")
        sender.connect(f"ipc://{tmp_path}/s.ipc")
        sender.send(b"x")
        assert router.poll(5000)
        _, frame = router.recv_multipart(copy=False)
        assert gate.peer_pid(frame) == os.getpid()
    finally:
        ctx.destroy(linger=0)


def test_a_worker_beat_counts_only_from_the_process_it_names_and_never_from_an_agent():
    tree = {777: [WORKER, 1], 555: [2, 1]}  # 777: an agent under the worker; 555: anyone else
    parents = lambda pid: tree.get(pid, [])  # noqa: E731
    workers = {WORKER}
    assert gate.beat_refusal(WORKER, WORKER, workers, parents) is None
    assert gate.beat_refusal(WORKER, 555, workers, parents) == f"a beat claiming pid {WORKER} came from pid 555"
    assert "runs an agent's code" in gate.beat_refusal(777, 777, workers, parents)
    assert gate.beat_refusal(555, 555, workers, parents) is None  # a new worker, say, after a restart
    assert gate.beat_refusal(WORKER, 0, workers, parents) is None  # the transport does not say: as appends
