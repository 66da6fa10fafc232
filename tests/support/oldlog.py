"""A real events.db as another cocode version left it: events in a format this
version cannot decode (not garbage bytes), between events it reads."""

from __future__ import annotations

import msgspec

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.paths import Paths


class OldEvent(msgspec.Struct, tag_field="type", kw_only=True):
    """ev.Event's envelope, as the older cocode had it."""

    seq: int = 0
    ts: float = 0.0
    job: str = ""
    agent: str = ""


class OldJobSubmitted(OldEvent, tag="job_submitted"):
    title: str
    body: str
    agent_names: list[str]  # since renamed `agents`
    base: str  # since renamed `base_sha`


class JobPaused(OldEvent, tag="job_paused"):  # a type this version does not have
    reason: str = ""


def older_log(paths: Paths) -> None:
    """seq 1-2 services of cocode 0.0.9, 3 an old-format job, 4 a job this version
    reads, 5 an event type it does not know, 6 a run of the readable job."""
    rows = [
        ev.ServiceStarted(service="store", pid=10, version="0.0.9"),
        ev.ServiceStarted(service="scheduler", pid=11, version="0.0.9"),
        OldJobSubmitted(job="j0", title="old job", body="b", agent_names=["a"], base="0" * 40),
        ev.JobSubmitted(job="j1", title="new job", body="b", agents=["a"], base_sha="1" * 40),
        JobPaused(job="j1", reason="by hand"),
        ev.RunWaiting(job="j1", agent="a", reason="max_worktrees"),
    ]
    values = []
    for seq, e in enumerate(rows, 1):
        e.seq, e.ts = seq, 1000.0 + seq
        kind = e.__struct_config__.tag
        values += [seq, e.ts, kind, e.job, e.agent, msgspec.msgpack.encode(e)]
    paths.db.parent.mkdir(mode=0o700, exist_ok=True)
    conn = eventlog.open_for_writing(paths.db)
    conn.execute("BEGIN")
    eventlog.insert_events(conn, values)
    conn.execute("COMMIT")
    conn.close()
