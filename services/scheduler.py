"""The scheduler: the queue (priority, then FIFO), concurrency, worktree and
memory-pressure gating, and dispatch to live workers.

Its queue is the fold over the log (cocode.core.state), rebuilt by replay on every
start; beside it, it keeps which workers are alive and, per run, the decisions
on their way to the log (cocode.jobs.inflight). Submissions and
cancellations arrive as events (durable the moment the store acks them, even
while the scheduler is down). Workers connect to its ROUTER socket and beat
every second (the Paranoid Pirate pattern), a beat counted only from the process
whose pid it claims (cocode/core/gate.py); a run goes only to a worker heard
from within LIVENESS seconds. A dispatch is recorded (run_dispatched, acked)
before the worker is told, so a scheduler crash can neither lose a run nor
start it twice.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import msgspec

from cocode.core import gate
from cocode.core.loop import drain
from cocode.core.logthrottle import Throttled
from cocode.jobs import dispatch
from cocode.jobs import liveness
from cocode.jobs.inflight import InflightTable
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.sockets import router
from cocode.config import Config
from cocode.paths import Paths
from cocode.runkey import RunKey
from cocode.core.service import Service, supervisor_alive

LIVENESS = 3.0  # seconds without a beat before a worker counts as gone
ORPHAN_AFTER = 10.0  # a silent worker's runs are interrupted after this long, if its pid is gone
MAX_ATTEMPTS = 2
REDISPATCH_AFTER = 5.0  # a dispatched run the worker does not report is sent again
MAX_REDISPATCH = 3  # ... this many times at most, then it fails
BURST_S = 0.005  # in a burst of events, decisions at most this often (one for many events)


class WorkerSeen(NamedTuple):
    ident: bytes  # its ROUTER routing id
    seen: float  # monotonic time of its last beat
    runs: set[str]  # the run keys it holds
    pid: int  # its process, probed before its runs are given up


class Scheduler(Service):
    name = "scheduler"

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__(paths, config)
        self.state = self.snapshot_state()
        self.workers: dict[str, WorkerSeen] = {}
        self.said_alive: set[str] = set()  # silent workers whose process is still there, logged once
        # Decisions appended and not yet seen back in the log, one record per run.
        self.inflight = InflightTable()
        # No ROUTER_HANDOVER: a worker's routing id is the one its connection was given,
        # learnt from its last beat that passed the gate (a restarted worker's is new).
        self.dirty = False
        self.last_tick = 0.0  # when decisions were last made (bursts are coalesced from there)
        self.born = time.monotonic()
        self.appender.on_ack = self.on_ack
        self.bad_frame = Throttled(self.log, "dropped an undecodable worker message")
        self.forged_beat = Throttled(self.log, "dropped a worker beat not from its worker: %s")

    def setup(self) -> None:
        self.router = router(self.ctx, self.paths.endpoint("scheduler"))
        self.loop.add(self.router, self.on_worker)
        self.follower = self.follow(self.on_event, after=self.state.seq, types=st.FOLDED_TYPES)
        self.loop.every(1.0, self.interrupt_orphans)
        self.loop.every(1.0, self.mark_dirty)  # a worker may have gone quiet: look again

    def heartbeat_info(self) -> dict:
        return {"head": self.state.seq, "workers": len(self.live_workers())}

    # -- the log ---------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        st.apply(self.state, event)
        self.inflight.seen(event)
        self.mark_dirty()

    def decide(self) -> None:
        """Settle runs no process is working on: interrupted ones are requeued once,
        then failed; cancelled ones that never started end `cancelled`. Decided from
        state, not from the triggering event, so a restart mid-decision redoes it."""
        for job in self.state.jobs.values():
            for run in job.runs.values():
                key = RunKey(job.job, run.agent)
                if run.final or run.live or self.inflight.is_dispatching(key):
                    continue
                if not (run.interrupted or run.cancel_requested) or not self.inflight.settle(key, run.attempt):
                    continue
                if run.cancel_requested:
                    self.append(ev.RunFinished(
                        job=job.job, agent=run.agent, state="cancelled", reason="cancelled",
                        commits=run.commits, head=run.head, attempt=run.attempt))
                elif run.attempt - run.follow_ups < MAX_ATTEMPTS:  # follow-ups are not retries
                    self.append(ev.RunRequeued(job=job.job, agent=run.agent, attempt=run.attempt + 1))
                else:
                    self.append(ev.RunFinished(
                        job=job.job, agent=run.agent, state="failed", reason="interrupted",
                        commits=run.commits, head=run.head, attempt=run.attempt))

    # -- workers ---------------------------------------------------------------------

    def on_worker(self) -> None:
        for frames in drain(self.router, multipart=True, copy=False):
            if len(frames) != 2:
                continue
            ident, raw = frames[0].bytes, frames[1]
            try:
                msg = wire.scheduler_decoder.decode(raw.buffer)
            except msgspec.MsgspecError:
                self.bad_frame()
                continue
            if isinstance(msg, wire.WorkerBeat):
                # The kernel's word on the sender (SO_PEERCRED), as the store's gate takes it.
                refusal = gate.beat_refusal(msg.pid, gate.peer_pid(raw), gate.runner_pids(self.state))
                if refusal is not None:
                    self.forged_beat(refusal)
                    continue
                fresh = msg.worker not in self.live_workers()
                self.workers[msg.worker] = WorkerSeen(ident, time.monotonic(), set(msg.runs), msg.pid)
                self.said_alive.discard(msg.worker)
                if fresh:
                    self.log.info("worker %s is live", msg.worker)
                    self.mark_dirty()

    def live_workers(self) -> list[str]:
        now = time.monotonic()
        return [w for w, seen in self.workers.items() if now - seen.seen < LIVENESS]

    # -- dispatch --------------------------------------------------------------------

    def mark_dirty(self) -> None:
        """Something changed: decide at once after a quiet moment (a submission is
        dispatched without waiting), and at most once per BURST_S in a burst of events."""
        if not self.dirty:
            self.dirty = True
            self.loop.call_later(max(0.0, self.last_tick + BURST_S - time.monotonic()), self.tick)

    def tick(self) -> None:
        self.last_tick = time.monotonic()
        if not supervisor_alive():
            # Every service is stopping on its own after a supervisor kill -9: the
            # worker's run_interrupted must not be requeued and dispatched now (the
            # run would be left `dispatched` to a worker that is gone). The next
            # `cocode up` requeues it, as after `cocode down`.
            self.loop.stop()
            return
        if not self.follower.caught_up:
            self.loop.call_later(0.05, self.tick)
            return
        if self.dirty:
            self.dirty = False
            self.decide()
            self.dispatch()

    def interrupt_orphans(self) -> None:
        """A run must not stay `running` on a worker that is gone for good (silent,
        and its process gone: a paused worker is slow, not dead), and a dispatch the
        worker never received must be sent again."""
        now = time.monotonic()
        for job in self.state.jobs.values():
            for run in job.runs.values():
                if not run.live:
                    continue
                ident, seen, held, beat_pid = self.workers.get(run.worker, (None, self.born, set(), 0))
                key = RunKey(job.job, run.agent)
                if now - seen > ORPHAN_AFTER:
                    # The process that took the run; the one beating last if none is recorded.
                    pid = run.worker_pid or beat_pid
                    if liveness.worker_gone(run.worker, pid, now - seen, ORPHAN_AFTER):
                        if self.inflight.interrupt(key, run.attempt):
                            self.append(ev.RunInterrupted(job=job.job, agent=run.agent, worker=run.worker,
                                                          reason="worker_lost", attempt=run.attempt))
                    elif run.worker not in self.said_alive:
                        self.said_alive.add(run.worker)
                        self.log.warning("worker %s silent for %.0f s, its process %d is still there: "
                                         "its runs are kept", run.worker, now - seen, pid)
                # Not started in this attempt (run_started sets a pid, run_interrupted clears it).
                elif (ident is not None and not run.pid and now - seen < LIVENESS
                      and key.key not in held
                      and self.inflight.resend_due(key, run.attempt, now, self.born, REDISPATCH_AFTER)):
                    if self.inflight.resends(key, run.attempt) >= MAX_REDISPATCH:
                        # The worker takes it and drops it (its start keeps failing): stop.
                        if self.inflight.settle(key, run.attempt):
                            self.append(ev.RunFinished(
                                job=job.job, agent=run.agent, state="failed", reason="dispatch_failed",
                                attempt=run.attempt,
                                detail=f"worker {run.worker} did not start it after {MAX_REDISPATCH + 1} dispatches"))
                        continue
                    self.inflight.sent(key, run.attempt, now)
                    self.router.send_multipart([ident, wire.encoder.encode(wire.Dispatch(
                        job=job.job, agent=run.agent, attempt=run.attempt, job_seq=job.seq))])

    def dispatch(self) -> None:
        live = self.live_workers()
        starts, waits = dispatch.plan(
            self.state, self.config.limits.max_concurrent_agents, self.config.limits.max_worktrees,
            self.inflight.in_flight(), {w: len(self.workers[w].runs) for w in live}, self.inflight.reclaiming(),
        )
        for job, run, reason in waits:
            # Once, not every tick: not again while the same reason is on its way.
            if run.reason != reason and self.inflight.say_waiting(RunKey(job.job, run.agent), reason):
                self.append(ev.RunWaiting(job=job.job, agent=run.agent, reason=reason))
        for job, run, worker, reclaim in starts:
            msg_id = self.appender.append(
                ev.RunDispatched(job=job.job, agent=run.agent, worker=worker, attempt=run.attempt,
                                 worker_pid=self.workers[worker].pid))
            reclaims = []
            if reclaim:
                old_job, old_run = reclaim
                reclaims.append(wire.Reclaim(job=old_job, agent=old_run.agent, path=old_run.worktree))
                self.inflight.reclaim(RunKey(old_job, old_run.agent))
            self.inflight.dispatch(RunKey(job.job, run.agent), run.attempt, worker, msg_id, wire.Dispatch(
                job=job.job, agent=run.agent, attempt=run.attempt, job_seq=job.seq, reclaim=reclaims))
        self.appender.flush()

    def on_ack(self, msg_id: int, seq: int) -> None:
        sent = self.inflight.acked(msg_id)
        if sent is None:
            return
        worker, msg = sent
        seen = self.workers.get(worker)
        ident = seen.ident if seen is not None else None
        if ident is not None:
            self.inflight.sent(RunKey(msg.job, msg.agent), msg.attempt, time.monotonic())
            self.router.send_multipart([ident, wire.encoder.encode(msg)])


def main(paths: Paths, config: Config) -> int:
    return Scheduler(paths, config).run()
