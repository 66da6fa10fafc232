"""A structured agent stdout on the worker (format other than text): the readable
lines (logs/formats.py), the facts as events, and the original bytes, redacted
like everything else, kept beside the collector's files as
`.cocode/logs/raw/<job>-<agent>.a<attempt>.raw` for `cocode logs --raw`.

Written by the worker's shipper on this host; capped in size (the readable log is
what is rotated and retained; this is for looking closer).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cocode.logs import formats, redact
from cocode.runkey import RunKey

USAGE_EVERY_S = 1.0  # a run's usage events at most this often (and once at its end)


def raw_path(raw_dir: Path, job: str, agent: str, attempt: int) -> Path:
    return RunKey(job, agent).raw_log(raw_dir.parent, attempt)


def raw_files(raw_dir: Path, job: str, agent: str) -> list[Path]:
    """A run's raw files, oldest attempt first."""
    stem = RunKey(job, agent).file_stem
    found = [p for p in raw_dir.glob("*.raw") if p.name.rsplit(".", 2)[0] == stem]
    return sorted(found, key=lambda p: int(p.name.rsplit(".", 2)[1][1:]))


class RawFile:
    """An agent's original stdout (given redacted), for `cocode logs --raw`; capped in size."""

    def __init__(self, path: Path, limit: int) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.limit = limit

    def write(self, data: bytes) -> None:
        if self.fd < 0 or not data:
            return
        if self.size + len(data) > self.limit:
            data = data[: max(0, self.limit - self.size)] + b"\n[cocode: raw output cut at its size limit]\n"
            os.write(self.fd, data)
            self.close()
            return
        os.write(self.fd, data)
        self.size += len(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Structured:
    """One run's structured stdout, already redacted: feed() -> readable bytes (and the
    raw file); facts -> on_events."""

    def __init__(self, fmt: str, raw: RawFile, job: str, agent: str, attempt: int, prices, patterns=None) -> None:
        self.formatter = formats.Formatter(fmt)
        self.raw = raw
        self.job, self.agent, self.attempt, self.prices = job, agent, attempt, prices
        self.on_events = None  # the worker's: callable(list of events)
        self.reported_at = 0.0
        self.session_sent = ""
        self.patterns = patterns
        self.finished = False
        self.budget = 0.0  # dollars; 0: none
        self.on_budget = None  # called once when the cost passes the budget

    def feed(self, data: bytes) -> bytes:
        self.raw.write(data)
        out = self.formatter.feed(data)
        if out and b"\\u" in data:
            # A \uXXXX escape decodes to characters the redaction of the JSON could not
            # see as such: the readable lines get a look of their own.
            out = redact.scrub(out.decode("utf-8", errors="replace"), self.patterns).encode()
        if self.formatter.changed:
            over = self.budget and self.on_budget is not None and (self.cost() or 0.0) >= self.budget
            self.report(final=bool(over))  # the crossing is recorded before the stop
            if over:
                self.on_budget()
                self.on_budget = None
        return out

    def cost(self) -> float | None:
        f = self.formatter.facts
        return formats.cost_of(f, formats.price_for(self.prices, f.model, self.agent))

    def finish(self) -> bytes:
        """End of output: the held partial line, and the last facts reported."""
        self.finished = True
        out = self.formatter.close()
        self.report(final=True)
        return out

    def close(self) -> None:
        self.raw.close()

    def summary(self) -> str:
        f = self.formatter.facts
        return (f.error or (f.final_text.strip().splitlines() or [""])[-1])[:500]

    def report(self, final: bool) -> None:
        """The facts as events: a new session at once, usage at most every USAGE_EVERY_S."""
        f = self.formatter.facts
        now = time.monotonic()
        new_session = f.session_id != self.session_sent
        if self.on_events is None or not (final or new_session or now - self.reported_at >= USAGE_EVERY_S):
            return
        self.formatter.changed = False
        self.reported_at = now
        events = formats.to_events(self.job, self.agent, self.attempt, f, self.prices,
                                   with_session=new_session)
        self.session_sent = f.session_id
        if events:
            self.on_events(events)
