"""What runs leave behind on the worker's host, and how it is settled: a run's
processes swept when it ends (daemons included), the runs a previous worker
process left running, finished runs' worktrees reclaimed under max_worktrees, and
the private HOME of a run that ended.

The worker (services/worker.py) calls these from its loop; each takes what it
needs (the fold, the reaper, a way to append an event) rather than the worker.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from pathlib import Path
from typing import Callable, Iterable

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.views import State
from cocode.errors import CocodeError
from cocode.jobs import agents, runtmp
from cocode.paths import Paths
from cocode.resources import cpushare, reaper
from cocode.resources.proctree import kill_stale_group
from cocode.runkey import RunKey

Append = Callable[[ev.Event], object]


def sweep(r: reaper.Reaper, key: RunKey, sid: int, others: dict[RunKey, int], preparing: Iterable[RunKey],
          log: logging.Logger) -> None:
    """Kill what is left of run `key` that ends (daemons included), before its end is
    recorded; `others`: the other live runs' sessions, `preparing` the runs not started yet."""
    spare = {pgid for k, pgid in others.items() if k != key}
    live = {(k.job, k.agent) for k in (*others, *preparing) if k != key}
    cpushare.kill(key.key)  # its cgroup, if it has one: all of it at once
    killed = r.sweep(key.job, key.agent, sid, spare, live)
    if killed:
        log.info("run %s: killed %d processes it left running", key, killed)


def recover(state: State, worker_id: str, paths: Paths, held: set[RunKey], append: Append,
            log: logging.Logger) -> None:
    """Runs this host's previous worker left running: kill, then say interrupted."""
    for job in state.jobs.values():
        for run in job.runs.values():
            key = RunKey(job.job, run.agent)
            if not run.live or run.worker != worker_id or key in held:
                continue
            if run.pgid:
                kill_stale_group(run.pgid, run.worktree)
            reaper.kill_marked(job.job, run.agent, str(key.worktree(paths)))  # daemons, now init's
            log.info("run %s was left by a previous worker: interrupted", key)
            append(ev.RunInterrupted(job=job.job, agent=run.agent, worker=worker_id, attempt=run.attempt))


def reclaim(root: Path, worktrees: list[wire.Reclaim], append: Append) -> None:
    """Make room under max_worktrees: delete finished runs' worktree directories
    (never a branch or a commit), each recorded with its reason."""
    from cocode import gitops

    for r in worktrees:
        try:
            gitops.remove_worktree(root, Path(r.path))
        except CocodeError as err:
            append(ev.WarningEvent(job=r.job, agent=r.agent, code="reclaim_failed", message=err.message))
            continue
        append(ev.WorktreeRemoved(job=r.job, agent=r.agent, path=r.path, reason="max_worktrees"))


def tidy_home(state: State, agent_table: dict, tmp: Path, executor: Executor, job_id: str, agent: str) -> None:
    """A run that ended loses its private HOME, unless a follow-up may resume from it."""
    job = state.jobs.get(job_id)
    run = job.runs.get(agent) if job else None
    if run is not None and run.final:
        spec = agent_table.get(agents.base_name(agent, agent_table))
        runtmp.tidy(tmp, RunKey(job_id, agent), spec.resume if spec else None, run.session_id, executor.submit)
