"""The runs' diff sizes `cocode top` shows (`+12/-3`, and the diff key of the
recommended run), measured in git by a worker thread of their own, never on the
app's thread nor the feed's (one `git diff --numstat` is milliseconds, a slow disk
or a big diff much more, and the output must keep flowing meanwhile).

The feed tells it what happened (the snapshot it started from, each event, the job
the app watches); it asks for each (run, head) once: the heads in the newest jobs
of the snapshot (as many as `status` measures), any job's once the app watches it,
and every head an event names later (run_progress, run_ready, run_finished). The
measuring is review.measure, `status`'s and `compare`'s own. A head git cannot
read yet (a light workspace's commits come back only as the run ends) is asked
again when an event names it again. Results go to `deliver` as (job, agent, head,
stat or None) tuples, in the worker's thread; the feed puts them in its batches.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Callable

from cocode.core import events as ev
from cocode.core.views import State
from cocode.jobs import rank, review


def event_heads(e: ev.Event) -> tuple[str | None, ...]:
    """The commits an event says a run's branch is at."""
    if isinstance(e, ev.RunProgress):
        return (e.head,)
    if isinstance(e, ev.RunReady):
        return (e.commit,)
    if isinstance(e, ev.RunFinished):
        return (e.ready_commit, e.head)
    return ()


class RunStats:
    def __init__(self, root: Path, deliver: Callable[[list], None]) -> None:
        self.root, self.deliver = root, deliver
        # The feed's thread only: what is known of the jobs, what was asked.
        self.bases: dict[str, str] = {}  # job -> base sha
        self.snapshot: dict[str, list[tuple[str, str]]] = {}  # job -> (agent, head) not yet asked
        self.asked: set[tuple[str, str, str]] = set()  # (job, agent, head); the worker drops failed ones
        # Shared with the worker, under `cond`.
        self.cond = threading.Condition()
        self.todo: deque[tuple[str, str, str, str]] = deque()
        self.running = False
        self.thread = threading.Thread(target=self._run, name="cocode-top-runstats", daemon=True)

    # -- the feed's side ---------------------------------------------------------------------------

    def start(self, state: State) -> None:
        """Measure the snapshot's newest jobs (newest first); the others once watched."""
        jobs = sorted(state.jobs.values(), key=lambda j: j.seq, reverse=True)
        for job in jobs:
            self.bases[job.job] = job.base_sha
            heads = [(a, h) for a, r in job.runs.items() if (h := rank.measured_head(job.base_sha, r))]
            if heads:
                self.snapshot[job.job] = heads
        for job in jobs[:review.DIFFSTAT_JOBS]:
            self.watch(job.job)
        self.running = True
        self.thread.start()

    def watch(self, job: str | None) -> None:
        """The app shows this job's runs: its snapshot heads go first."""
        for agent, head in reversed(self.snapshot.pop(job or "", [])):
            self.ask(job, agent, head, first=True)

    def on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.JobSubmitted):
            self.bases[e.job] = e.base_sha
            return
        for head in event_heads(e):
            if head:
                self.ask(e.job, e.agent, head)

    def ask(self, job: str, agent: str, head: str, first: bool = False) -> None:
        base = self.bases.get(job)
        key = (job, agent, head)
        if base is None or head == base or key in self.asked:
            return
        self.asked.add(key)
        with self.cond:
            (self.todo.appendleft if first else self.todo.append)((job, agent, base, head))
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.running = False
            self.cond.notify()
        if self.thread.is_alive():
            self.thread.join(timeout=2)  # a git call in flight ends on its own (daemon thread)

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.cond:
                while self.running and not self.todo:
                    self.cond.wait()
                if not self.running:
                    return
                job, agent, base, head = self.todo.popleft()
            try:
                stat = review.measure(self.root, base, head)
            except Exception:  # OSError, say: the thread lives on, the head is asked again later
                stat = None
            if stat is None:
                self.asked.discard((job, agent, head))  # not readable yet: asked again when named again
            self.deliver([(job, agent, head, stat)])
