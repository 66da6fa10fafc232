"""The `.cocode/config.yaml` schema: its keys, defaults and ranges, the Config the rest
of cocode reads, and the questions asked of the schema itself (a key's bounds, its
description). Reading a file into a Config is configload.py; the commented default
file `cocode init` writes is configfile.py.

The YAML is decoded into msgspec Structs. Each limit's range is written once, as
msgspec.Meta on its field; error messages (configload.py), limit_bounds() and the
default file all read it back with msgspec.inspect, so they cannot disagree with
the decoder.
"""

import re
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
import msgspec.inspect as mi

Meta = msgspec.Meta


class _Adr005Limits(msgspec.Struct, frozen=True, kw_only=True):
    # Kept apart from the additions below so the default file can say which keys
    # come from ADR-005 and which are cocode's own.
    max_concurrent_agents: Annotated[
        int, Meta(ge=1, le=20, description="agents running at once")
    ] = 5
    agent_timeout: Annotated[
        int, Meta(ge=60, le=3600, description="seconds before an agent is stopped")
    ] = 900
    max_repo_size_mb: Annotated[
        int, Meta(ge=100, le=50000, description="larger repositories ask before cloning")
    ] = 5000
    log_buffer_size_mb: Annotated[
        int, Meta(ge=1, le=100, description="an agent's in-memory log before rotating to disk")
    ] = 10
    log_rotation_size_mb: Annotated[
        int, Meta(ge=10, le=500, description="a log file rotates at this size")
    ] = 50
    max_worktrees: Annotated[
        int, Meta(ge=1, le=50, description="worktrees that may exist at once")
    ] = 10
    tui_log_lines: Annotated[
        int, Meta(ge=100, le=10000, description="log lines the TUI keeps per agent")
    ] = 2000


_MemoryMb = Annotated[
    int, Meta(ge=64, le=65536, description="an agent using more memory is stopped")
]


class Limits(_Adr005Limits, frozen=True, kw_only=True):
    """Every limit, fully resolved. Fields after ADR-005's are cocode additions."""

    memory_limit_mb: _MemoryMb = 2048
    memory_pressure_percent: Annotated[
        int, Meta(ge=1, le=99, description="system memory use counted as pressure")
    ] = 80
    worktree_idle_days: Annotated[
        int, Meta(ge=1, le=365, description="idle worktrees older than this are removed")
    ] = 7
    rotated_logs_keep: Annotated[
        int, Meta(ge=1, le=100, description="rotated log files kept per agent")
    ] = 3
    log_max_buffer_mb: Annotated[
        int, Meta(ge=1, le=500, description="growth cap for a verbose agent's buffer")
    ] = 50
    monitor_interval_ms: Annotated[
        int, Meta(ge=100, le=60000, description="how often the monitor samples agents and the host")
    ] = 1000
    worktree_pool: Annotated[
        int, Meta(ge=0, le=20, description="ready worktrees kept for fast agent starts (count toward max_worktrees)")
    ] = 2
    max_issue_kb: Annotated[
        int, Meta(ge=1, le=16384, description="a longer issue text is refused at submit")
    ] = 1024
    check_timeout: Annotated[
        int, Meta(ge=10, le=3600, description="seconds before a check is stopped")
    ] = 600
    github_timeout: Annotated[
        int, Meta(ge=5, le=300, description="seconds for a GitHub API call (ADR-005: 30)")
    ] = 30
    git_timeout: Annotated[
        int, Meta(ge=10, le=3600, description="seconds for a git network operation (ADR-005: 300)")
    ] = 300


# `performance:` and each profile give any subset of the limits. A key left out is
# UNSET rather than its default, so merging the layers only overrides what one names.
_PartialLimits = msgspec.defstruct(
    "PartialLimits",
    [
        (name, hint | msgspec.UnsetType, msgspec.UNSET)
        for name, hint in get_type_hints(Limits, include_extras=True).items()
    ],
    frozen=True,
    forbid_unknown_fields=True,
)

BUILTIN_PROFILES: dict[str, dict[str, int]] = {
    "low": {"max_concurrent_agents": 2, "log_buffer_size_mb": 5, "agent_timeout": 600, "worktree_pool": 1},
    "medium": {"max_concurrent_agents": 5, "log_buffer_size_mb": 10, "agent_timeout": 900, "worktree_pool": 2},
    "high": {"max_concurrent_agents": 10, "log_buffer_size_mb": 20, "agent_timeout": 1800, "worktree_pool": 4},
}


FORMATS = ("text", "claude-stream-json", "codex-json")
AgentFormat = Literal["text", "claude-stream-json", "codex-json"]
COMMAND_HELP = "the agent's command line as a list, e.g. [claude, -p, \"{prompt}\"]"


class AgentSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry under `agents:`; timeout and memory_limit_mb override the limits for it.

    `command` is required, except for an entry named like a built-in preset: that
    entry changes only the keys it gives (jobs.agents.merge_agents)."""

    command: Annotated[
        list[Annotated[str, Meta(min_length=1)]],
        Meta(description=COMMAND_HELP),
    ] = []
    env: dict[str, str] = {}
    timeout: Annotated[int, Meta(ge=1, le=3600)] | None = None
    memory_limit_mb: _MemoryMb | None = None
    # Names (or patterns such as AWS_*) of the user's variables this agent may read.
    passthrough: list[str] = []
    description: str = ""
    # How its stdout is read: text as is, or a CLI's JSON lines made readable (logs/formats.py).
    format: AgentFormat = "text"
    # Filled into `{allowed_tools}` (comma-separated): the Claude preset's pre-approved tools.
    allowed_tools: list[str] = []
    max_cost_usd: Annotated[float, Meta(ge=0)] | None = None
    # How to continue the agent's own session (`cocode say`, a requeued run): a command
    # line with {session_id} and {prompt}. Empty: a follow-up gets a new full prompt.
    resume: list[str] = []


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """US dollars per million tokens, for agents that report tokens but not cost."""

    input: Annotated[float, Meta(ge=0)] = 0.0
    cached_input: Annotated[float, Meta(ge=0)] = 0.0
    output: Annotated[float, Meta(ge=0)] = 0.0


class CheckSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry under `checks:` (a bare string is its command)."""

    command: Annotated[str, Meta(min_length=1, description="a shell command, e.g. pytest -q")]
    timeout: Annotated[int, Meta(ge=1, le=3600)] | None = None


RANK_KEYS = ("checks", "failures", "diff", "ready")
NOTIFY_ON = ("run_ready", "run_failed", "job_done", "checks_done")


class NotifySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`notify:`: a command and/or a webhook, on the `events` named (NOTIFY_ON); never waited for.
    (Not `on:`: YAML reads that key as the boolean true.)"""

    command: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)] | None = None
    webhook: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    events: list[Annotated[str, Meta(pattern="^(" + "|".join(NOTIFY_ON) + ")$")]] = (
        msgspec.field(default_factory=lambda: list(NOTIFY_ON)))
    timeout: Annotated[int, Meta(ge=1, le=60)] = 10
    retries: Annotated[int, Meta(ge=0, le=10)] = 3


class FileSchema(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The file as written: limits only partly given, profiles not yet resolved."""

    profile: str = "medium"
    performance: _PartialLimits = msgspec.field(default_factory=_PartialLimits)
    profiles: dict[str, _PartialLimits] = {}
    agents: dict[str, AgentSpec] = {}
    default_agents: list[str] = []
    env_passthrough: list[Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = []
    redact_patterns: list[str] = []
    prices: dict[str, Price] = {}
    setup: list[Annotated[str, Meta(min_length=1)]] = []
    copy: list[Annotated[str, Meta(min_length=1)]] = []
    max_cost_usd: Annotated[float, Meta(ge=0)] | None = None
    sandbox: Annotated[str, Meta(pattern=r"^(auto|bwrap|off)$",
                                 description="auto, bwrap or off: how agent runs are confined")] = "auto"
    checks: dict[str, CheckSpec] = {}
    rank_by: list[Annotated[str, Meta(pattern="^(" + "|".join(RANK_KEYS) + ")$")]] = (
        msgspec.field(default_factory=lambda: list(RANK_KEYS)))
    notify: NotifySpec | None = None


class Config(msgspec.Struct, frozen=True):
    """The checked file with its limits resolved: what the rest of cocode reads."""

    profile: str
    limits: Limits
    agents: dict[str, AgentSpec]
    default_agents: list[str]
    env_passthrough: list[str]
    redact_patterns: list[str]
    path: str | None  # the file as the caller named it; None when none was read
    prices: dict[str, Price] = {}
    setup: list[str] = []  # shell commands run in each new workspace before its agent
    copy: list[str] = []  # files copied from the main checkout into each new workspace
    max_cost_usd: float | None = None  # a run whose model cost passes this is stopped
    sandbox: str = "auto"  # auto, bwrap, off: see cocode/jobs/sandbox.py
    checks: dict[str, CheckSpec] = {}  # run in every ready run's worktree (services/checks.py)
    rank_by: list[str] = msgspec.field(default_factory=lambda: list(RANK_KEYS))
    notify: NotifySpec | None = None


def limit_bounds(key: str) -> tuple[int, int]:
    """The (min, max) allowed for a performance key; KeyError for an unknown key."""
    return bounds(Limits, key)


AGENT_NAME_MAX = 64
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def agent_name_problem(name: str) -> str | None:
    """Why `name` cannot name an agent, or None. An agent's name becomes one
    component of its branch (cocode/JOB/NAME) and of its worktree's directory
    name, so it must be a safe ref component and file name: no `/`, no `..`."""
    rule = f"use letters, digits, '.', '_' and '-', at most {AGENT_NAME_MAX} characters"
    if not _AGENT_NAME.fullmatch(name) or len(name) > AGENT_NAME_MAX:
        return rule
    if ".." in name or name.endswith((".", ".lock")):
        return f"no '..', and no '.' or '.lock' at the end: {rule}"
    return None


def unwrap(t: mi.Type) -> tuple[Any, str, bool]:
    """The type under Annotated and `X | None`, its description, and whether null is ok."""
    description, nullable = "", False
    while isinstance(t, (mi.Metadata, mi.UnionType)):
        if isinstance(t, mi.Metadata):
            description = description or (t.extra_json_schema or {}).get("description", "")
            t = t.type
        else:  # the schema's only unions are `X | None`
            nullable = True
            t = next(m for m in t.types if not isinstance(m, mi.NoneType))
    return t, description, nullable


def _field(struct: type, key: str) -> tuple[Any, str]:
    for f in mi.type_info(struct).fields:
        if f.name == key:
            return unwrap(f.type)[:2]
    raise KeyError(key)


def field_description(struct: type, key: str) -> str:
    return _field(struct, key)[1]


def bounds(struct: type, key: str) -> tuple[int, int]:
    t, _ = _field(struct, key)
    return t.ge, t.le

