"""The `.cocode/config.yaml` schema: its keys, defaults, ranges, error messages and
the commented default file `cocode init` writes. Nothing else reads that file.

The YAML is decoded into msgspec Structs. Each limit's range is written once, as
msgspec.Meta on its field; error messages, limit_bounds() and the default file
(configfile.py) all read it back with msgspec.inspect, so they cannot disagree with
the decoder.

Effective limits resolve, later winning: built-in defaults < the active profile
(built-in merged key by key with the file's entry of the same name) < keys under
`performance:` < the values of `--performance-profile`, which also replaces the file's
`profile:` as the active one.
"""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import msgspec
import msgspec.inspect as mi

from cocode.errors import ConfigError
from cocode.yamlfile import parse_yaml

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


class _File(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
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
    path: str | None
    prices: dict[str, Price] = {}
    setup: list[str] = []  # shell commands run in each new workspace before its agent
    copy: list[str] = []  # files copied from the main checkout into each new workspace
    max_cost_usd: float | None = None  # a run whose model cost passes this is stopped  # the file as the caller named it; None when none was read
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


def load_config(
    path: Path | None,
    profile_override: str | None = None,
    builtin_agents: Iterable[str] = (),
) -> Config:
    """Read and check the config file (None or a missing file means defaults)."""
    label = str(path)
    raw = None
    if path is not None:
        try:
            raw = parse_yaml(path.read_text(encoding="utf-8"), label)
        except FileNotFoundError:
            path = None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{label}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:
            raise ConfigError(f"{label}: cannot read ({e.strerror})") from None
    if isinstance(raw, dict) and isinstance(raw.get("checks"), dict):  # `tests: pytest -q`
        raw["checks"] = {k: {"command": v} if isinstance(v, str) else v for k, v in raw["checks"].items()}
    if isinstance(raw, dict) and isinstance(raw.get("notify"), dict) and True in raw["notify"]:
        raise ConfigError(f"{label}: notify.on: YAML reads `on` as true; name the moments under `events:`")
    try:
        if isinstance(raw, dict) and isinstance(raw.get("sandbox"), bool):
            # YAML 1.1 reads a bare `off`/`on` as a boolean.
            raw = {**raw, "sandbox": "auto" if raw["sandbox"] else "off"}
        file = msgspec.convert(_check(raw, mi.type_info(_File), ""), _File)
    except _Invalid as e:
        raise ConfigError(f"{label}: {e}") from None
    except msgspec.ValidationError as e:  # _check should have caught it first
        raise ConfigError(f"{label}: {_one_line(str(e))}") from None

    profiles = {name: dict(values) for name, values in BUILTIN_PROFILES.items()}
    for name, partial in file.profiles.items():
        profiles.setdefault(name, {}).update(msgspec.to_builtins(partial))
    choices = ", ".join(profiles)
    if file.profile not in profiles:
        raise ConfigError(
            f"{label}: profile = {file.profile!r} is not a profile (choose {choices})"
        )
    if profile_override is not None and profile_override not in profiles:
        raise ConfigError(
            f"--performance-profile = {profile_override!r} is not a profile (choose {choices})"
        )
    # The command-line profile replaces the file's, and its keys also beat `performance:`.
    active = profile_override or file.profile
    limits = {
        **profiles[active],
        **msgspec.to_builtins(file.performance),
        **(profiles[profile_override] if profile_override else {}),
    }

    builtin_agents = list(builtin_agents)
    for name, spec in file.agents.items():
        if not spec.command and name not in builtin_agents:
            raise ConfigError(f"{label}: agents.{name}.command is missing ({COMMAND_HELP})")
    agents = list(file.agents) + [a for a in builtin_agents if a not in file.agents]
    for i, name in enumerate(file.default_agents):
        if name not in agents:
            known = f"choose {', '.join(agents)}, or " if agents else ""
            raise ConfigError(
                f"{label}: default_agents[{i}] = {name!r} is not an agent "
                f"({known}define it under agents:)"
            )
    for name in file.agents:
        problem = agent_name_problem(name)
        if problem:
            raise ConfigError(f"{label}: agents.{name!r} is not a usable agent name ({problem})")
    for i, pattern in enumerate(file.redact_patterns):
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(
                f"{label}: redact_patterns[{i}] = {pattern!r} is not a valid regex "
                f"({_one_line(str(e))})"
            ) from None

    return Config(
        profile=active,
        limits=Limits(**limits),
        agents=file.agents,
        default_agents=file.default_agents,
        env_passthrough=file.env_passthrough,
        redact_patterns=file.redact_patterns,
        path=None if path is None else label,
        prices=file.prices,
        setup=file.setup,
        copy=file.copy,
        max_cost_usd=file.max_cost_usd,
        sandbox=file.sandbox,
        checks=file.checks,
        rank_by=file.rank_by,
        notify=file.notify,
    )


class _Invalid(Exception):
    """One problem in the file, worded for the user; load_config adds the file name."""


def _check(value: Any, t: mi.Type, path: str) -> Any:
    """Raise _Invalid for the first value `t` rejects, worded with its key path.

    msgspec's own errors cannot name a map's key (agents.NAME) and do not say what
    is allowed, so the file is walked here first; msgspec then decodes it.
    Returns the value with empty sections (null in YAML) as empty collections.
    """
    t, description, nullable = _unwrap(t)
    if value is None and nullable:
        return None
    shown = _show(value)
    if isinstance(t, (mi.StructType, mi.DictType)):
        if value is None:  # a section whose lines are all commented out
            value = {}
        if not isinstance(value, dict):
            raise _Invalid(f"{path or 'top level'} = {shown} is not a mapping")
    if isinstance(t, mi.StructType):
        fields = {f.encode_name: f for f in t.fields}
        for key in value:
            if key not in fields:
                known = ", ".join(fields)
                raise _Invalid(f"unknown key {_join(path, key)} (known: {known})")
        for f in t.fields:
            if f.required and f.encode_name not in value:
                fix = _unwrap(f.type)[1] or "required"
                raise _Invalid(f"{_join(path, f.encode_name)} is missing ({fix})")
        return {k: _check(item, fields[k].type, _join(path, k)) for k, item in value.items()}
    if isinstance(t, mi.DictType):
        for key in value:
            if not isinstance(key, str):
                raise _Invalid(f"{path}: key {key!r} is not a string (quote it)")
        return {key: _check(item, t.value_type, _join(path, key)) for key, item in value.items()}
    if isinstance(t, mi.ListType):
        if value is None:
            value = []
        if not isinstance(value, list):
            raise _Invalid(f"{path} = {shown} is not a list")
        if t.min_length and len(value) < t.min_length:
            raise _Invalid(f"{path} = {shown} is empty ({description or 'give at least one item'})")
        return [_check(item, t.item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(t, mi.IntType):
        # bool is an int subclass, but `true` where a number belongs is a mistake.
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"{path} = {shown} is not an integer (allowed {t.ge}..{t.le})")
        if value < t.ge:
            raise _Invalid(f"{path} = {shown} is below the minimum {t.ge}")
        if value > t.le:
            raise _Invalid(f"{path} = {shown} is above the maximum {t.le}")
    if isinstance(t, mi.LiteralType):
        if value not in t.values:
            raise _Invalid(f"{path} = {shown} is not one of {', '.join(sorted(map(str, t.values)))}")
        return value
    if isinstance(t, mi.FloatType):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < (t.ge or 0):
            raise _Invalid(f"{path} = {shown} is not a number >= {t.ge or 0}")
        return value
    if isinstance(t, mi.StrType):
        if not isinstance(value, str):
            quote = " (quote it)" if isinstance(value, (int, float)) else ""
            raise _Invalid(f"{path} = {shown} is not a string{quote}")
        if t.min_length and len(value) < t.min_length:
            raise _Invalid(f"{path} = {shown} is empty")
        if t.pattern and not re.search(t.pattern, value):
            raise _Invalid(f"{path} = {shown} does not match {t.pattern}")
    return value


def _unwrap(t: mi.Type) -> tuple[Any, str, bool]:
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
            return _unwrap(f.type)[:2]
    raise KeyError(key)


def field_description(struct: type, key: str) -> str:
    return _field(struct, key)[1]


def bounds(struct: type, key: str) -> tuple[int, int]:
    t, _ = _field(struct, key)
    return t.ge, t.le


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())
