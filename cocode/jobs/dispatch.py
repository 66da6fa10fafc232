"""Which queued runs start now, on which worker, and which wait and why: a pure
function of the folded state, so it is tested and benchmarked without sockets.
"""

from __future__ import annotations

from typing import NamedTuple

from cocode.core.views import JobView, RunView, State, iter_queued


class Start(NamedTuple):
    job: JobView
    run: RunView
    worker: str
    reclaim: tuple[str, RunView] | None = None  # (job, run) whose worktree makes room


class Wait(NamedTuple):
    job: JobView
    run: RunView
    reason: str  # memory_pressure, max_worktrees


def plan(
    state: State,
    max_concurrent: int,
    max_worktrees: int,
    in_flight: set[tuple[str, str]],
    worker_loads: dict[str, int],
    reclaiming: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[list[Start], list[Wait]]:
    """Runs to start (priority, then FIFO) within the limits, and runs held back.

    `in_flight` are runs already being dispatched whose event has not come back;
    `worker_loads` maps each live worker to the runs it holds (least loaded wins);
    `reclaiming` are finished runs whose worktree a dispatch already gave away.
    """
    starts: list[Start] = []
    waits: list[Wait] = []
    if not worker_loads:
        return starts, waits
    active = worktrees = checks = 0
    reclaimable: list[tuple[str, RunView]] = []
    for j in state.jobs.values():
        for r in j.runs.values():
            active += r.live
            if r.checks:
                checks += sum(c.status == "running" for c in r.checks.values())
            if r.worktree and not r.worktree_removed and (j.job, r.agent) not in reclaiming:
                worktrees += 1
                if r.final:
                    reclaimable.append((j.job, r))
            elif r.live:
                worktrees += 1  # dispatched, its worktree not made yet: it will be
    # The worktrees of finished runs are what max_worktrees gives back first, oldest
    # first: only the directory goes, the branch and its commits stay.
    reclaimable.sort(key=lambda jr: jr[1].ended_at or 0.0, reverse=True)
    # Checks share the cap, but one runs outside it (cocode.jobs.checks.may_start):
    # agents queued behind checks wait for those beyond the first.
    free = max_concurrent - active - max(0, checks - 1) - len(in_flight)
    if free <= 0:
        return starts, waits
    worktrees += len(in_flight)
    loads = dict(worker_loads)
    for job, run in iter_queued(state):
        if free <= 0:
            break
        if (job.job, run.agent) in in_flight:
            continue
        if state.pressure:
            waits.append(Wait(job, run, "memory_pressure"))
            continue
        reclaim = None
        needs_worktree = not run.worktree or run.worktree_removed
        if needs_worktree and worktrees >= max_worktrees:
            if not reclaimable:
                waits.append(Wait(job, run, "max_worktrees"))
                continue
            reclaim = reclaimable.pop()
            worktrees -= 1
        worker = min(loads, key=loads.__getitem__)
        loads[worker] += 1
        starts.append(Start(job, run, worker, reclaim))
        worktrees += 1 if needs_worktree else 0
        free -= 1
    return starts, waits
