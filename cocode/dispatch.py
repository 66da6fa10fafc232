"""Which queued runs start now, on which worker, and which wait and why: a pure
function of the folded state, so it is tested and benchmarked without sockets.
"""

from __future__ import annotations

from typing import NamedTuple

from cocode import state as st


class Start(NamedTuple):
    job: st.JobView
    run: st.RunView
    worker: str


class Wait(NamedTuple):
    job: st.JobView
    run: st.RunView
    reason: str  # memory_pressure, max_worktrees


def plan(
    state: st.State,
    max_concurrent: int,
    max_worktrees: int,
    in_flight: set[tuple[str, str]],
    worker_loads: dict[str, int],
) -> tuple[list[Start], list[Wait]]:
    """Runs to start (priority, then FIFO) within the limits, and runs held back.

    `in_flight` are runs already being dispatched whose event has not come back;
    `worker_loads` maps each live worker to the runs it holds (least loaded wins).
    """
    starts: list[Start] = []
    waits: list[Wait] = []
    if not worker_loads:
        return starts, waits
    active = worktrees = 0
    for j in state.jobs.values():
        for r in j.runs.values():
            active += r.live
            worktrees += bool(r.worktree)
    free = max_concurrent - active - len(in_flight)
    if free <= 0:
        return starts, waits
    worktrees += len(in_flight)
    loads = dict(worker_loads)
    for job, run in st.iter_queued(state):
        if free <= 0:
            break
        if (job.job, run.agent) in in_flight:
            continue
        if state.pressure:
            waits.append(Wait(job, run, "memory_pressure"))
            continue
        if not run.worktree and worktrees >= max_worktrees:
            waits.append(Wait(job, run, "max_worktrees"))
            continue
        worker = min(loads, key=loads.__getitem__)
        loads[worker] += 1
        starts.append(Start(job, run, worker))
        worktrees += 0 if run.worktree else 1
        free -= 1
    return starts, waits
