"""Reading `.cocode/config.yaml` into a Config: the file checked against the schema
(config.py) with every problem worded for the user, then the limits resolved.

Effective limits resolve, later winning: built-in defaults < the active profile
(built-in merged key by key with the file's entry of the same name) < keys under
`performance:` < the values of `--performance-profile`, which also replaces the file's
`profile:` as the active one.
"""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from cocode.config import (
    BUILTIN_PROFILES, COMMAND_HELP, Config, FileSchema, Limits, agent_name_problem, unwrap,
)
from cocode.errors import ConfigError
from cocode.yamlfile import parse_yaml


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
        file = msgspec.convert(_check(raw, mi.type_info(FileSchema), ""), FileSchema)
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
    t, description, nullable = unwrap(t)
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
                fix = unwrap(f.type)[1] or "required"
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



def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())
