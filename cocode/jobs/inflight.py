"""What the scheduler has decided about a run and the log does not show yet: one
in-flight record per run, in a pure table (no sockets, no clock: times come in).

The scheduler's queue is the fold over the log (core/state). Between appending a
decision and seeing it come back through its follower, the fold does not know
about it, and the scheduler must not decide it again. A run's record holds those
pending decisions, and lives exactly as long as one of them is pending:

  created  at a decision about the run: dispatch it (run_dispatched appended),
           tell why it waits (run_waiting), interrupt it (its worker is dead),
           settle it (requeue, or a final state), or give its worktree away to
           make room under max_worktrees (reclaim);
  updated  when the store acks its run_dispatched and the Dispatch goes to the
           worker, and at each resend of a Dispatch the worker did not take up;
  dropped  once the log shows every pending decision: run_started (or a final
           state, or run_requeued) ends a dispatch; run_waiting a wait;
           run_interrupted an interruption; run_requeued or a final state a
           settling; worktree_removed or a reclaim_failed warning a reclaim.

Events of another attempt than the record's (a late worker's) settle nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cocode.core import events as ev
from cocode.core import wire
from cocode.runkey import RunKey


@dataclass(slots=True)
class Inflight:
    run: RunKey
    attempt: int = 0  # the attempt its decisions are about; 0: none yet
    dispatching: bool = False  # run_dispatched appended, not yet in the log
    msg_id: int = 0  # that append's id while the store has not acked it
    worker: str = ""  # the worker the dispatch goes to
    message: wire.Dispatch | None = None  # sent to `worker` once acked
    sent_at: float | None = None  # the Dispatch last went out (until run_started)
    waiting: str = ""  # a run_waiting reason appended, not yet in the log
    interrupting: bool = False  # run_interrupted appended, not yet in the log
    settling: bool = False  # run_requeued or run_finished appended, not yet in the log
    reclaiming: bool = False  # its worktree given away, worktree_removed not yet in the log
    resends: int = 0  # Dispatches sent again in this attempt (bounded by the scheduler)

    @property
    def pending(self) -> bool:
        return bool(self.dispatching or self.message is not None or self.sent_at is not None
                    or self.waiting or self.interrupting or self.settling or self.reclaiming)

    def end_dispatch(self) -> None:
        self.dispatching, self.msg_id, self.message, self.sent_at = False, 0, None, None
        self.resends = 0

    def end_attempt(self) -> None:
        """The attempt is over (final or requeued): all but a reclaim is settled."""
        self.end_dispatch()
        self.waiting, self.interrupting, self.settling = "", False, False


class InflightTable:
    def __init__(self) -> None:
        self.records: dict[RunKey, Inflight] = {}
        self.by_msg: dict[int, RunKey] = {}  # unacked run_dispatched append id -> run

    def get(self, run: RunKey) -> Inflight | None:
        return self.records.get(run)

    def _open(self, run: RunKey, attempt: int = 0) -> Inflight:
        rec = self.records.get(run)
        if rec is None:
            rec = self.records[run] = Inflight(RunKey(*run))
        if attempt and rec.attempt != attempt:
            rec.end_dispatch()  # another attempt's dispatch means nothing now
            rec.attempt = attempt
        return rec

    # -- decisions ---------------------------------------------------------------------

    def dispatch(self, run: RunKey, attempt: int, worker: str, msg_id: int, message: wire.Dispatch) -> None:
        rec = self._open(run, attempt)
        rec.dispatching, rec.msg_id, rec.worker, rec.message = True, msg_id, worker, message
        self.by_msg[msg_id] = rec.run

    def acked(self, msg_id: int) -> tuple[str, wire.Dispatch] | None:
        """The store committed this run_dispatched: (worker, Dispatch) to send now
        (call `sent` once it went), or None if nothing waits for this ack."""
        run = self.by_msg.pop(msg_id, None)
        rec = self.records.get(run) if run is not None else None
        if rec is None or rec.msg_id != msg_id or rec.message is None:
            return None
        message, rec.msg_id, rec.message = rec.message, 0, None
        if not rec.pending:
            del self.records[rec.run]
        return rec.worker, message

    def sent(self, run: RunKey, attempt: int, now: float) -> None:
        """A Dispatch went to the worker (after its ack, or again)."""
        rec = self._open(run, attempt)
        rec.resends += rec.sent_at is not None
        rec.message, rec.sent_at = None, now

    def resends(self, run: RunKey, attempt: int) -> int:
        """How often this attempt's Dispatch was sent again."""
        rec = self.records.get(run)
        return rec.resends if rec is not None and rec.attempt == attempt else 0

    def resend_due(self, run: RunKey, attempt: int, now: float, since: float, after: float) -> bool:
        """A dispatched run that has not started: send again `after` seconds from the
        last send (from `since`, the scheduler's start, when it sent none)."""
        rec = self.records.get(run)
        if rec is not None and rec.attempt == attempt:
            if rec.message is not None:
                return False  # the store has not acked it: it goes out with the ack
            if rec.sent_at is not None:
                since = rec.sent_at
        return now - since > after

    def say_waiting(self, run: RunKey, reason: str) -> bool:
        """True if run_waiting(reason) is to be appended: not while the same is pending."""
        rec = self.records.get(run)
        if rec is not None and rec.waiting == reason:
            return False
        self._open(run).waiting = reason
        return True

    def interrupt(self, run: RunKey, attempt: int) -> bool:
        """True if run_interrupted is to be appended for this attempt (once)."""
        rec = self._open(run, attempt)
        if rec.interrupting:
            return False
        rec.interrupting = True
        return True

    def settle(self, run: RunKey, attempt: int) -> bool:
        """True if this attempt's requeue or end is to be appended (once)."""
        rec = self._open(run, attempt)
        if rec.settling:
            return False
        rec.settling = True
        return True

    def reclaim(self, run: RunKey) -> None:
        self._open(run).reclaiming = True

    # -- what is pending -----------------------------------------------------------------

    def in_flight(self) -> set[RunKey]:
        """Runs being dispatched whose run_dispatched is not in the log yet."""
        return {r.run for r in self.records.values() if r.dispatching}

    def is_dispatching(self, run: RunKey) -> bool:
        rec = self.records.get(run)
        return rec is not None and rec.dispatching

    def reclaiming(self) -> frozenset[RunKey]:
        return frozenset(r.run for r in self.records.values() if r.reclaiming)

    # -- the log -------------------------------------------------------------------------

    def seen(self, event: ev.Event) -> None:
        """The log shows `event`: settle what it settles, drop what is then empty."""
        rec = self.records.get(RunKey(event.job, event.agent))
        if rec is None:
            return
        attempt = getattr(event, "attempt", 0)
        current = not attempt or not rec.attempt or attempt == rec.attempt
        if isinstance(event, ev.RunDispatched):
            if current:
                rec.dispatching = False
        elif isinstance(event, ev.RunStarted):
            if current:
                rec.end_dispatch()
        elif isinstance(event, ev.RunFinished):
            if current:
                rec.end_attempt()
        elif isinstance(event, ev.RunRequeued):
            rec.end_attempt()
        elif isinstance(event, ev.RunInterrupted):
            if current:
                rec.interrupting = False
        elif isinstance(event, ev.RunWaiting):
            rec.waiting = ""
        elif isinstance(event, ev.WorktreeRemoved) or (
                isinstance(event, ev.WarningEvent) and event.code == "reclaim_failed"):
            rec.reclaiming = False  # done, or it failed and the worktree stays
        if not rec.pending:
            del self.records[rec.run]
            if rec.msg_id:
                self.by_msg.pop(rec.msg_id, None)
