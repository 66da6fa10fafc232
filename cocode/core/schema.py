"""schemas/: the JSON Schema of every event and wire message, generated from the types.

Dashboards in any language read these; `cocode schema --check` (run by a test)
fails when the files no longer match the code.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import msgspec

from cocode.core import events as ev
from cocode.core import wire


def default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "schemas"


def normalised(node):
    """Descriptions come from docstrings, and msgspec releases differ in how they strip
    their indentation; cleandoc every one so the files depend on the code alone."""
    if isinstance(node, dict):
        return {k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else normalised(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [normalised(v) for v in node]
    return node


def documents() -> dict[str, str]:
    def dump(obj) -> str:
        return json.dumps(normalised(obj), indent=2, sort_keys=True) + "\n"

    events_schema = msgspec.json.schema(ev.EventUnion)
    events_schema["title"] = "cocode event envelope (topic evt.<type>)"
    wire_schema = msgspec.json.schema(
        wire.StoreRequest | wire.StoreReply | wire.Heartbeat | wire.LogsMessage  # type: ignore[operator]
    )
    wire_schema["title"] = "cocode store and logs protocols, and heartbeats"
    return {"events.schema.json": dump(events_schema), "wire.schema.json": dump(wire_schema)}


def write(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in documents().items():
        path = target / name
        path.write_text(text)
        written.append(path)
    return written


def stale_files(target: Path) -> list[str]:
    stale = []
    for name, text in documents().items():
        path = target / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
    return stale
