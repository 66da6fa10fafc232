"""The shapes of the folded state (State, JobView, RunView, CheckView, ServiceView,
Usage), the questions readers ask of it (the dispatch queue, running checks), and its
snapshot encoding. The fold that fills them in is state.py; nothing here changes a
state.
"""

from __future__ import annotations

from typing import Iterator

import msgspec

from cocode.core import events as ev


class Usage(msgspec.Struct):
    """Tokens, cost and tool calls: one attempt's (RunUsage) or a sum of them."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    tool_calls: int = 0
    turns: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        cost = None if self.cost_usd is None and other.cost_usd is None else \
            (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(self.input_tokens + other.input_tokens,
                     self.cached_input_tokens + other.cached_input_tokens,
                     self.output_tokens + other.output_tokens, cost,
                     self.tool_calls + other.tool_calls, self.turns + other.turns)


class CheckView(msgspec.Struct):
    """The latest execution of one configured check on one run."""

    name: str
    status: str = "running"  # running, passed, failed, timeout, error, cancelled, interrupted
    commit: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    summary: str = ""
    passed: int | None = None
    failed: int | None = None
    reason: str = ""
    pgid: int = 0
    host: str = ""
    started_at: float = 0.0
    started_seq: int = 0  # a request after this seq asks for it again
    execution: int = 0  # starts so far on this run (its log's attempt number)
    interruptions: int = 0  # in a row at this commit: rerun once, then left interrupted


class RunView(msgspec.Struct):
    agent: str
    state: str = "queued"  # queued, running, ready, failed, cancelled
    reason: str | None = None
    exit_code: int | None = None
    ready_commit: str | None = None
    commits: int = 0
    branch: str = ""
    worktree: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int = 1
    live: bool = False  # handed to a worker and not yet finished
    final: bool = False
    worker: str = ""
    pid: int = 0
    pgid: int = 0
    worker_pid: int = 0  # the worker process holding it: the run is lost only when that is gone
    head: str | None = None
    timeout_s: int = 0
    cancel_requested: bool = False
    detail: str = ""
    interrupted: bool = False  # its worker vanished; the scheduler decides what next
    worktree_removed: bool = False  # the directory is gone; branch and commits stay
    setup_ms: float = 0.0  # the latest attempt's setup: and copy:, apart from the agent's time
    session_id: str = ""  # the agent CLI's own session, latest attempt's
    model: str = ""
    usage_by_attempt: dict[int, Usage] = {}
    follow_up: str = ""  # the latest `cocode say` message, for attempt follow_up_attempt
    follow_up_attempt: int = 0
    follow_ups: int = 0  # attempts that were follow-ups (not crash requeues)
    # Why each attempt after the first began ("requeued after worker_lost", "follow-up: ..."):
    # the separators between attempts in `cocode tail` and `cocode logs`.
    attempt_causes: dict[int, str] = {}
    ready_at: float | None = None
    checks: dict[str, CheckView] = {}
    check_requests: dict[str, int] = {}  # check name ("" for all) -> seq of the latest request

    @property
    def usage(self) -> Usage:
        return sum(self.usage_by_attempt.values(), Usage())


class JobView(msgspec.Struct):
    job: str
    seq: int  # of its job_submitted event: the queue's FIFO order and where its body is
    ts: float
    title: str
    agents: list[str]
    base_sha: str
    base_ref: str = "HEAD"
    priority: int = 0
    complexity: str = "simple"
    timeout_s: int = 0
    issue_number: int = 0
    issue_url: str = ""
    light: bool = False
    sparse: list[str] = []
    runs: dict[str, RunView] = {}
    done: bool = False  # every run final: kept by the fold so a long queue scans fast
    picked: str = ""  # the agent whose run the user picked
    picked_mode: str = ""
    pr_url: str = ""

    @property
    def state(self) -> str:
        runs = self.runs.values()
        if self.done:
            return "done"
        if any(r.live or r.final for r in runs):
            return "running"
        return "queued"


class ServiceView(msgspec.Struct):
    name: str
    pid: int = 0
    state: str = "stopped"  # running, stopped, crashed, gave_up
    since: float = 0.0
    restarts: int = 0
    reason: str = ""


class State(msgspec.Struct):
    seq: int = 0
    jobs: dict[str, JobView] = {}
    services: dict[str, ServiceView] = {}
    warnings: list[ev.WarningEvent] = []
    pressure: bool = False


def running_checks(state: State) -> int:
    """Checks running now, on every run: the scheduler counts them against its cap."""
    return sum(c.status == "running" for j in state.jobs.values() for r in j.runs.values()
               for c in r.checks.values())



def _waiting(run: RunView) -> bool:
    return not (run.final or run.live or run.cancel_requested or run.interrupted)


def _queue_key(job: JobView) -> tuple[int, int]:
    return (-job.priority, job.seq)


def iter_queued(state: State) -> Iterator[tuple[JobView, RunView]]:
    """Runs waiting to start, in dispatch order: higher priority first, then FIFO
    (by submission), then the order the agents were named. Lazy: a dispatcher
    that needs three runs does not order the rest of a long queue's runs."""
    jobs = [j for j in state.jobs.values() if not j.done]
    jobs.sort(key=_queue_key)
    for job in jobs:
        for agent in job.agents:
            run = job.runs[agent]
            if _waiting(run):
                yield job, run


def queued_runs(state: State) -> list[tuple[JobView, RunView]]:
    return list(iter_queued(state))


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(State)


def encode_state(state: State) -> bytes:
    return _snapshot_encoder.encode(state)


def decode_state(data: bytes) -> State:
    return _snapshot_decoder.decode(data)
