"""How events and state look to a person (and as JSON lines to a program)."""

from __future__ import annotations

import time

import msgspec

from cocode import events as ev

_SKIP = {"seq", "ts", "job", "agent", "type"}


def event_dict(event: ev.Event) -> dict:
    d = msgspec.to_builtins(event)
    return d


def event_json_line(event: ev.Event) -> str:
    return msgspec.json.encode(event).decode()


def _short(v) -> str:
    s = str(v)
    s = s.replace("\n", "\\n")
    return s if len(s) <= 60 else s[:57] + "..."


def event_line(event: ev.Event) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}"
    where = f"{event.job}/{event.agent}" if event.agent else event.job
    fields = " ".join(
        f"{k}={_short(v)}" for k, v in msgspec.structs.asdict(event).items()
        if k not in _SKIP and v not in (None, "", [], {})
    )
    return f"{event.seq:>7} {when} {event.type:<16} {where:<20} {fields}".rstrip()
