"""Checking a decoded YAML document against a msgspec schema, in words a person
can act on: the key path (`agents.claude.timeout`), the value, and what is
allowed (`is below the minimum 1`, `known: ...`). msgspec's own errors cannot
name a map's key and do not say what is allowed, so the document is walked here
first; cocode.config owns the schema and decodes what passes.
"""

import re
from typing import Any

import msgspec.inspect as mi
import yaml

from cocode.errors import ConfigError


class Invalid(Exception):
    """One problem in the file, worded for the user; load_config adds the file name."""


def parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "not valid YAML"
        raise ConfigError(f"{label}: YAML syntax error{at}: {one_line(problem)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: YAML syntax error: {one_line(str(e))}") from None


def check(value: Any, t: mi.Type, path: str) -> Any:
    """Raise Invalid for the first value `t` rejects, worded with its key path.

    msgspec's own errors cannot name a map's key (agents.NAME) and do not say what
    is allowed, so the file is walked here first; msgspec then decodes it.
    Returns the value with empty sections (null in YAML) as empty collections.
    """
    t, description, nullable = unwrap(t)
    if value is None and nullable:
        return None
    shown = show(value)
    if isinstance(t, (mi.StructType, mi.DictType)):
        if value is None:  # a section whose lines are all commented out
            value = {}
        if not isinstance(value, dict):
            raise Invalid(f"{path or 'top level'} = {shown} is not a mapping")
    if isinstance(t, mi.StructType):
        fields = {f.encode_name: f for f in t.fields}
        for key in value:
            if key not in fields:
                known = ", ".join(fields)
                raise Invalid(f"unknown key {join(path, key)} (known: {known})")
        for f in t.fields:
            if f.required and f.encode_name not in value:
                fix = unwrap(f.type)[1] or "required"
                raise Invalid(f"{join(path, f.encode_name)} is missing ({fix})")
        return {k: check(item, fields[k].type, join(path, k)) for k, item in value.items()}
    if isinstance(t, mi.DictType):
        for key in value:
            if not isinstance(key, str):
                raise Invalid(f"{path}: key {key!r} is not a string (quote it)")
        return {key: check(item, t.value_type, join(path, key)) for key, item in value.items()}
    if isinstance(t, mi.ListType):
        if value is None:
            value = []
        if not isinstance(value, list):
            raise Invalid(f"{path} = {shown} is not a list")
        if t.min_length and len(value) < t.min_length:
            raise Invalid(f"{path} = {shown} is empty ({description or 'give at least one item'})")
        return [check(item, t.item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(t, mi.IntType):
        # bool is an int subclass, but `true` where a number belongs is a mistake.
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"{path} = {shown} is not an integer (allowed {t.ge}..{t.le})")
        if value < t.ge:
            raise Invalid(f"{path} = {shown} is below the minimum {t.ge}")
        if value > t.le:
            raise Invalid(f"{path} = {shown} is above the maximum {t.le}")
    if isinstance(t, mi.StrType):
        if not isinstance(value, str):
            quote = " (quote it)" if isinstance(value, (int, float)) else ""
            raise Invalid(f"{path} = {shown} is not a string{quote}")
        if t.min_length and len(value) < t.min_length:
            raise Invalid(f"{path} = {shown} is empty")
        if t.pattern and not re.search(t.pattern, value):
            raise Invalid(f"{path} = {shown} does not match {t.pattern}")
    return value


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


def field_info(struct: type, key: str) -> tuple[Any, str]:
    for f in mi.type_info(struct).fields:
        if f.name == key:
            return unwrap(f.type)[:2]
    raise KeyError(key)


def bounds(struct: type, key: str) -> tuple[int, int]:
    t, _ = field_info(struct, key)
    return t.ge, t.le


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(text: str) -> str:
    return " ".join(text.split())
