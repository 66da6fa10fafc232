"""What the log means: a pure fold over events, shared by every reader.

`apply(state, event)` is the only place an event changes state; it does no I/O
and reads no clock, so replaying the same events always gives the same state.
(For speed it updates `state` in place and returns it.) The scheduler queue,
`cocode status`, snapshots and `cocode replay --verify` are all this fold.
Bump FOLD_VERSION whenever the fold's meaning changes: older snapshots are then
ignored and the state is rebuilt from the events. The state's data classes and the
questions asked of it are views.py.
"""

from __future__ import annotations

from typing import Callable

from cocode.core import events as ev
from cocode.core.views import CheckView, JobView, RunView, ServiceView, State, Usage

FOLD_VERSION = 6  # 6: RunView.attempt_causes


def _run(state: State, e: ev.Event) -> RunView | None:
    job = state.jobs.get(e.job)
    return job.runs.get(e.agent) if job else None


def _reported(state: State, e) -> RunView | None:
    """The run a worker's report is about, if it is from the run's current attempt.

    Fencing: a worker that was paused (SIGSTOP, swap, a debugger) while its run was
    requeued, and came back, reports for an older attempt: that changes nothing.
    Attempt 0 is not fenced (logs from before fencing). Inline: every run event
    passes here."""
    job = state.jobs.get(e.job)
    r = job.runs.get(e.agent) if job else None
    if r is None or (e.attempt and e.attempt != r.attempt):
        return None
    return r


def _service(state: State, name: str) -> ServiceView:
    return state.services.setdefault(name, ServiceView(name=name))


def _service_started(state: State, e: ev.ServiceStarted) -> None:
    s = _service(state, e.service)
    s.pid, s.state, s.since, s.reason = e.pid, "running", e.ts, ""


def _service_stopped(state: State, e: ev.ServiceStopped) -> None:
    s = _service(state, e.service)
    if s.pid == e.pid:
        s.state, s.since, s.reason = "stopped", e.ts, e.reason


def _service_crashed(state: State, e: ev.ServiceCrashed) -> None:
    s = _service(state, e.service)
    s.state, s.since, s.restarts = "crashed", e.ts, e.restarts
    s.reason = f"exit {e.exit_code}"


def _service_gave_up(state: State, e: ev.ServiceGaveUp) -> None:
    s = _service(state, e.service)
    s.state, s.since, s.reason = "gave_up", e.ts, e.reason


def _job_submitted(state: State, e: ev.JobSubmitted) -> None:
    state.jobs[e.job] = JobView(
        job=e.job, seq=e.seq, ts=e.ts, title=e.title, agents=list(e.agents),
        base_sha=e.base_sha, base_ref=e.base_ref, priority=e.priority,
        complexity=e.complexity, timeout_s=e.timeout_s, issue_number=e.issue_number,
        issue_url=e.issue_url, light=e.light, sparse=list(e.sparse),
        runs={a: RunView(agent=a) for a in e.agents},
    )


def _run_waiting(state: State, e: ev.RunWaiting) -> None:
    if (r := _run(state, e)) and not r.final and not r.live:
        r.reason = e.reason


def _run_dispatched(state: State, e: ev.RunDispatched) -> None:
    if (r := _run(state, e)) and not r.final:
        r.state, r.live, r.worker, r.attempt, r.reason = "running", True, e.worker, e.attempt, None
        r.worker_pid = e.worker_pid


def _run_started(state: State, e: ev.RunStarted) -> None:
    if (r := _reported(state, e)) and not r.final:
        r.state, r.live = "running", True
        r.worker, r.pid, r.pgid, r.worker_pid = e.worker, e.pid, e.pgid, e.worker_pid
        r.worktree, r.branch, r.attempt = e.worktree, e.branch, e.attempt
        r.timeout_s, r.setup_ms = e.timeout_s, e.setup_ms
        if r.started_at is None:
            r.started_at = e.ts


def _run_progress(state: State, e: ev.RunProgress) -> None:
    if r := _reported(state, e):
        r.head, r.commits = e.head, e.commits
        if e.timeout_s:
            r.timeout_s = e.timeout_s


def _run_ready(state: State, e: ev.RunReady) -> None:
    if (r := _reported(state, e)) and not r.final:
        r.state, r.ready_commit = "ready", e.commit
        r.ready_at = r.ready_at or e.ts
        r.head = e.commit  # on the branch by now; the run_progress after it may go further


def _run_finished(state: State, e: ev.RunFinished) -> None:
    if (r := _reported(state, e)) and not r.final:
        r.state, r.reason, r.exit_code = e.state, e.reason, e.exit_code
        r.commits, r.ready_commit = e.commits, e.ready_commit
        r.head = e.head or r.head
        r.detail = e.detail
        r.live, r.final, r.ended_at, r.interrupted = False, True, e.ts, False
        job = state.jobs[e.job]
        job.done = all(run.final for run in job.runs.values())


def _run_interrupted(state: State, e: ev.RunInterrupted) -> None:
    if (r := _reported(state, e)) and not r.final:
        # Nothing runs it any more: it waits for the scheduler (requeue once, or fail),
        # so it is not shown `running` with no process behind it (e.g. after `down`).
        r.state, r.live, r.interrupted, r.reason, r.pid, r.pgid = "queued", False, True, e.reason, 0, 0


def requeue_cause(interrupted_by: str | None) -> str:
    """Why a requeued attempt began, as the log's separator says it."""
    return f"requeued after {interrupted_by}" if interrupted_by else "requeued"


def follow_up_cause(message: str) -> str:
    said = (message.strip().splitlines() or [""])[0]
    return f"follow-up: {said[:60]}{'...' if len(said) > 60 else ''}"


def _run_requeued(state: State, e: ev.RunRequeued) -> None:
    if (r := _run(state, e)) and not r.final:
        r.attempt_causes[e.attempt] = requeue_cause(r.reason if r.interrupted else None)
        r.state, r.live, r.attempt, r.reason = "queued", False, e.attempt, None
        r.interrupted = False


def _agent_session(state: State, e: ev.AgentSession) -> None:
    if r := _run(state, e):
        r.session_id, r.model = e.session_id, e.model or r.model


def _run_usage(state: State, e: ev.RunUsage) -> None:
    if r := _run(state, e):
        r.usage_by_attempt[e.attempt] = Usage(e.input_tokens, e.cached_input_tokens, e.output_tokens,
                                              e.cost_usd, e.tool_calls, e.turns)


def _follow_up_requested(state: State, e: ev.FollowUpRequested) -> None:
    if (r := _run(state, e)) and r.final:
        # The message before the attempt: a worker thread waiting for the attempt then sees both.
        r.follow_up, r.follow_up_attempt, r.follow_ups = e.message, e.attempt, r.follow_ups + 1
        r.attempt_causes[e.attempt] = follow_up_cause(e.message)
        r.state, r.final, r.live, r.attempt = "queued", False, False, e.attempt
        r.reason, r.exit_code, r.ready_commit, r.detail, r.ended_at = None, None, None, "", None
        r.cancel_requested = r.interrupted = False
        state.jobs[e.job].done = False


def _cancel_requested(state: State, e: ev.CancelRequested) -> None:
    job = state.jobs.get(e.job)
    if job:
        for r in job.runs.values():
            if not r.final and (not e.agent or r.agent == e.agent):
                r.cancel_requested = True


def _worktree_removed(state: State, e: ev.WorktreeRemoved) -> None:
    if r := _run(state, e):
        r.worktree_removed = True


def _check_requested(state: State, e: ev.CheckRequested) -> None:
    job = state.jobs.get(e.job)
    for r in (job.runs.values() if job else ()):
        if not e.agent or r.agent == e.agent:
            for name in e.names or [""]:
                r.check_requests[name] = e.seq


def _check_started(state: State, e: ev.CheckStarted) -> None:
    if r := _run(state, e):
        old = r.checks.get(e.name)
        # "running": the checks service applies its own start before the log returns it.
        again = old is not None and old.commit == e.commit and old.status in ("interrupted", "running")
        r.checks[e.name] = CheckView(
            name=e.name, commit=e.commit, pgid=e.pgid, host=e.host, started_at=e.ts,
            started_seq=e.seq, execution=max(e.execution, old.execution if old else 0),
            interruptions=old.interruptions if again else 0)


def _check_finished(state: State, e: ev.CheckFinished) -> None:
    r = _run(state, e)
    c = r.checks.get(e.name) if r else None
    if c is not None and c.status == "running" and c.commit == e.commit:
        c.status, c.exit_code, c.duration_s, c.summary = e.status, e.exit_code, e.duration_s, e.summary
        c.passed, c.failed, c.reason, c.pgid = e.passed, e.failed, e.reason, 0
        c.interruptions += e.status == "interrupted"


def _picked(state: State, e: ev.Picked) -> None:
    if job := state.jobs.get(e.job):
        job.picked, job.picked_mode, job.pr_url = e.agent, e.mode, e.pr_url or job.pr_url



def _memory_pressure(state: State, e: ev.MemoryPressure) -> None:
    state.pressure = e.on


def _warning(state: State, e: ev.WarningEvent) -> None:
    state.warnings = (state.warnings + [e])[-20:]


FOLDS: dict[type, Callable[[State, ev.Event], None]] = {
    ev.ServiceStarted: _service_started,
    ev.ServiceStopped: _service_stopped,
    ev.ServiceCrashed: _service_crashed,
    ev.ServiceGaveUp: _service_gave_up,
    ev.JobSubmitted: _job_submitted,
    ev.RunWaiting: _run_waiting,
    ev.RunDispatched: _run_dispatched,
    ev.RunStarted: _run_started,
    ev.RunProgress: _run_progress,
    ev.RunReady: _run_ready,
    ev.RunFinished: _run_finished,
    ev.RunInterrupted: _run_interrupted,
    ev.RunRequeued: _run_requeued,
    ev.AgentSession: _agent_session,
    ev.RunUsage: _run_usage,
    ev.FollowUpRequested: _follow_up_requested,
    ev.CancelRequested: _cancel_requested,
    ev.MemoryPressure: _memory_pressure,
    ev.WorktreeRemoved: _worktree_removed,
    ev.WarningEvent: _warning,
    ev.CheckRequested: _check_requested,
    ev.CheckStarted: _check_started,
    ev.CheckFinished: _check_finished,
    ev.Picked: _picked,
}


# The event types the fold reads: a follower that keeps this state needs no others.
FOLDED_TYPES = frozenset(cls.__struct_config__.tag for cls in FOLDS)


def apply(state: State, event: ev.Event) -> State:
    fold = FOLDS.get(type(event))
    if fold is not None:
        fold(state, event)
    state.seq = max(state.seq, event.seq)
    return state


def apply_all(state: State, events: list[ev.Event]) -> State:
    """apply() over a batch in seq order (the store's commits), without a call per
    event that folds to nothing."""
    get = FOLDS.get
    for event in events:
        fold = get(type(event))
        if fold is not None:
            fold(state, event)
    if events:
        state.seq = max(state.seq, events[-1].seq)
    return state


def replay(events, state: State | None = None) -> State:
    state = state or State()
    for e in events:
        apply(state, e)
    return state
