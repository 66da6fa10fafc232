"""Every event type cocode records, and the one union that decodes them.

An event says what happened, to which job and run, and when. Each is a tagged
msgspec Struct: encoded, it is a msgpack map whose `type` key names the class, so
the same bytes are the stored payload, the bus envelope and what dashboards read.
`seq` is 0 until the store assigns the event its place in the log.

Compatibility rules (schemas/ is generated from this module): new fields get
defaults; a field's type never changes; a breaking change is a new event type.
"""

from __future__ import annotations

import time
from typing import Union

import msgspec


class Event(msgspec.Struct, tag_field="type", kw_only=True):
    """Fields every event carries. `agent` names the run within its job."""

    seq: int = 0
    ts: float = msgspec.field(default_factory=time.time)
    job: str = ""
    agent: str = ""

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    @property
    def topic(self) -> bytes:
        return TOPICS[type(self)]


# --- services (supervisor and every service) --------------------------------


class ServiceStarted(Event, tag="service_started"):
    service: str
    pid: int
    version: str = ""


class ServiceStopped(Event, tag="service_stopped"):
    service: str
    pid: int
    reason: str = "requested"


class ServiceCrashed(Event, tag="service_crashed"):
    service: str
    pid: int
    exit_code: int | None = None
    restarts: int = 0
    backoff_s: float = 0.0


class ServiceGaveUp(Event, tag="service_gave_up"):
    """The supervisor stopped restarting a service that kept crashing."""

    service: str
    crashes: int
    window_s: float
    reason: str = ""


class BenchTick(Event, tag="bench_tick"):
    """Synthetic load for `cocode bench events`; folds to nothing."""

    n: int = 0
    sent_ns: int = 0


# --- jobs and runs ------------------------------------------------------------


class JobSubmitted(Event, tag="job_submitted"):
    title: str
    body: str
    agents: list[str]
    base_sha: str
    base_ref: str = "HEAD"
    issue_number: int = 0
    issue_url: str = ""
    labels: list[str] = []
    priority: int = 0
    complexity: str = "simple"
    timeout_s: int = 0
    light: bool = False
    sparse: list[str] = []
    worktree_mb: float = 0.0
    max_cost_usd: float = 0.0  # per run; 0: the agent's or config's budget, if any


class RunWaiting(Event, tag="run_waiting"):
    """A queued run cannot start yet; `reason` says why (max_worktrees, memory_pressure)."""

    reason: str


class RunDispatched(Event, tag="run_dispatched"):
    worker: str
    attempt: int = 1
    worker_pid: int = 0  # the worker's process when dispatched (from its beats); 0: unknown


class RunStarted(Event, tag="run_started"):
    worker: str
    pid: int
    pgid: int
    worktree: str
    branch: str
    base_sha: str
    attempt: int = 1
    timeout_s: int = 0
    worktree_ms: float = 0.0
    worker_pid: int = 0  # the worker process running it: the run is lost only once it is gone
    setup_ms: float = 0.0  # config setup: and copy: before the agent started


class RunProgress(Event, tag="run_progress"):
    """The run's branch moved: new commits, and the diff size driving its timeout."""

    head: str
    commits: int
    changed_lines: int = 0
    timeout_s: int = 0
    attempt: int = 0  # of the reporting attempt (0: not fenced); see RunFinished


class RunReady(Event, tag="run_ready"):
    commit: str
    detect_ms: float = 0.0
    attempt: int = 0  # of the reporting attempt (0: not fenced); see RunFinished


class RunFinished(Event, tag="run_finished"):
    """A run's final state: ready, failed or cancelled.

    `attempt` fences a late reporter: a worker paused for long, whose run was
    meanwhile interrupted and requeued, reports for an attempt that is no longer
    the run's, and the fold ignores it (0, in logs older than fencing: accepted)."""

    state: str
    reason: str | None = None
    exit_code: int | None = None
    commits: int = 0
    ready_commit: str | None = None
    head: str | None = None
    detail: str = ""  # for a failure: the agent's last line of output, its own words
    attempt: int = 0


class RunInterrupted(Event, tag="run_interrupted"):
    """The worker running it vanished; the scheduler requeues it once, then fails it."""

    worker: str = ""
    reason: str = "interrupted"
    attempt: int = 0  # of the attempt interrupted (0: not fenced); see RunFinished


class RunRequeued(Event, tag="run_requeued"):
    attempt: int


class AgentSession(Event, tag="agent_session"):
    """The agent CLI's own session (claude's session_id, codex's thread_id): what a
    follow-up resumes. Read from its structured output (logs/formats.py)."""

    session_id: str
    model: str = ""
    attempt: int = 1


class RunUsage(Event, tag="run_usage"):
    """A run attempt's totals so far, as its agent reported them; each replaces the
    last for the same attempt. cost_usd is None when neither the agent nor config
    prices give one."""

    attempt: int = 1
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    tool_calls: int = 0
    turns: int = 0


class FollowUpRequested(Event, tag="follow_up_requested"):
    """`cocode say`: one more turn for a finished run, as its next attempt, in its
    worktree and branch, resuming the agent's session when it can (jobs/followup.py)."""

    message: str
    attempt: int


class CancelRequested(Event, tag="cancel_requested"):
    """`agent` empty means every run of the job."""


class MemoryPressure(Event, tag="memory_pressure"):
    """System memory crossed the threshold (on) or fell back below it (off)."""

    on: bool
    percent: float = 0.0
    threshold: float = 0.0


class LimitHit(Event, tag="limit_hit"):
    """A run crossed a resource limit; recorded before anything is killed."""

    kind: str  # memory
    value: float
    limit: float
    action: str = "terminate"
    check: str = ""  # a check's process group, not the agent's, crossed it


class LogRotated(Event, tag="log_rotated"):
    """A run's full in-memory buffer went to disk as an lz4 file."""

    file: str
    bytes: int
    kept: int = 0  # rotated files now kept for this agent


class BufferExpanded(Event, tag="buffer_expanded"):
    """A verbose agent (> 1 MB/min) got a bigger in-memory buffer."""

    size_mb: float
    rate_mb_per_min: float = 0.0


class WorktreeRemoved(Event, tag="worktree_removed"):
    """A run's worktree directory was deleted; its branch and commits stay."""

    path: str
    reason: str


class Compacted(Event, tag="compacted"):
    """Events of finished jobs moved to an archive segment; a snapshot covers them."""

    archive: str
    first_seq: int
    last_seq: int
    events: int
    jobs: list[str] = []


class WarningEvent(Event, tag="warning"):
    """Something a person should see (disk low, repository large)."""

    code: str
    message: str


# --- review: checks, the pick ----------------------------------------------------------


class CheckRequested(Event, tag="check_requested"):
    """`cocode check`: run the named checks (all configured when empty) again."""

    names: list[str] = []


class CheckStarted(Event, tag="check_started"):
    """A configured check began in the run's worktree at `commit`, in its own group."""

    name: str
    commit: str
    pid: int = 0
    pgid: int = 0
    host: str = ""
    execution: int = 1  # this check's nth start on this run: its log's attempt


class CheckFinished(Event, tag="check_finished"):
    """status: passed, failed, timeout, error, cancelled or interrupted (reruns)."""

    name: str
    commit: str
    status: str
    exit_code: int | None = None
    duration_s: float = 0.0
    summary: str = ""  # the tool's own summary line (JUnit totals or its last line)
    passed: int | None = None
    failed: int | None = None
    reason: str = ""


class Picked(Event, tag="picked"):
    """The user chose this run: how it landed (merge, squash, rebase, pr) and where."""

    mode: str
    commit: str
    base_ref: str = ""
    landed_sha: str = ""
    pr_url: str = ""


class NotifyFailed(Event, tag="notify_failed"):
    """A notification command or webhook failed after its retries; nothing waited on it."""

    target: str
    trigger: str
    error: str
    attempts: int = 1


EventUnion = Union[
    ServiceStarted,
    ServiceStopped,
    ServiceCrashed,
    ServiceGaveUp,
    BenchTick,
    JobSubmitted,
    RunWaiting,
    RunDispatched,
    RunStarted,
    RunProgress,
    RunReady,
    RunFinished,
    RunInterrupted,
    RunRequeued,
    AgentSession,
    RunUsage,
    FollowUpRequested,
    CancelRequested,
    MemoryPressure,
    LimitHit,
    LogRotated,
    BufferExpanded,
    WorktreeRemoved,
    Compacted,
    WarningEvent,
    CheckRequested,
    CheckStarted,
    CheckFinished,
    Picked,
    NotifyFailed,
]

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls for cls in EventUnion.__args__  # type: ignore[attr-defined]
}

TAGS: dict[type[Event], str] = {cls: tag for tag, cls in EVENT_TYPES.items()}  # event.type, without the property's cost
TOPICS: dict[type[Event], bytes] = {cls: b"evt." + tag.encode() for tag, cls in EVENT_TYPES.items()}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(EventUnion)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """Decode one envelope; raises msgspec.DecodeError/ValidationError on bad bytes."""
    return _decoder.decode(data)
