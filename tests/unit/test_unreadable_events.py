"""An events.db another cocode version wrote (issue 12's audit): rows this version
cannot decode are still skipped, so the rest folds, but no longer silently. The
readers count them (the fold stays pure), `cocode status` / `replay` / `events`
warn once on stderr, and `cocode top`'s header says how many and what to do.

The rows are real events in another version's format, not garbage bytes: a
job_submitted as a cocode that called `base_sha` `base` and `agents` `agent_names`
would write it, and a `job_paused` event this version has no type for, stored with
their own type columns after the service_started rows of cocode 0.0.9.
"""

from __future__ import annotations

import asyncio
import json
import time

import msgspec

from cocode.configload import load_config
from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core.unreadable import Unreadable
from cocode.paths import Paths
from cocode.top import model as vm
from cocode.top.app import TopApp
from support import cocode, make_repo


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


def test_the_readers_count_what_they_skip(tmp_path):
    paths = Paths(make_repo(tmp_path / "repo"))
    older_log(paths)
    unreadable = Unreadable()
    state = eventlog.load_state(eventlog.open_for_reading(paths.db), unreadable=unreadable)
    assert list(state.jobs) == ["j1"] and state.seq == 6  # the rest folds
    assert (unreadable.count, unreadable.first_seq, unreadable.written_by) == (2, 3, "0.0.9")
    assert unreadable.types == {"job_submitted": 1, "job_paused": 1}
    text = unreadable.message()
    assert text.startswith("2 events of the log could not be read (job_paused, job_submitted; first at seq 3): "
                           "written by cocode 0.0.9, this is cocode ")
    assert "missing or incomplete" in text and "`cocode doctor` lists them" in text and "\n" not in text
    after = Unreadable()  # from a later seq only the rows after it count
    list(eventlog.iter_events(eventlog.open_for_reading(paths.db), after=4, unreadable=after))
    assert (after.count, after.first_seq) == (1, 5)
    for batch in (1, 2, 3):  # a batch that is all or ends with bad rows is read past, once
        small = Unreadable()
        seqs = [e.seq for e in eventlog.iter_events(eventlog.open_for_reading(paths.db), batch=batch,
                                                     unreadable=small)]
        assert seqs == [1, 2, 4, 6] and small.count == 2, batch
    assert not Unreadable() and Unreadable().message() == ""


def test_status_replay_and_events_warn_once(tmp_path):
    paths = Paths(make_repo(tmp_path / "repo"))
    older_log(paths)
    status = cocode(paths.root, "status", "--json", timeout=30)
    assert status.returncode == 0, status.stderr
    assert [j["job"] for j in json.loads(status.stdout)] == ["j1"]  # stdout stays JSON
    assert len(status.stderr.splitlines()) == 1, status.stderr  # once, and one line
    line = status.stderr.strip()
    assert line.startswith("cocode: warning: 2 events of the log could not be read") and "cocode doctor" in line
    for args in (("status",), ("status", "j1"), ("replay", "--verify"), ("events",)):
        proc = cocode(paths.root, *args, timeout=30)
        assert proc.returncode == 0 and proc.stderr.count("could not be read") == 1, (args, proc.stderr)
    plain = make_repo(tmp_path / "plain")  # a log this version wrote all of: no warning
    assert cocode(plain, "status", timeout=30).stderr == ""


def test_top_header_says_how_many_and_what_to_do(tmp_path):
    """The real app and its real feed, cocode not running: the view starts from the
    file and its header's warnings carry the count and the fix."""
    paths = Paths(make_repo(tmp_path / "repo"))
    older_log(paths)
    config = load_config(paths.config)
    app = TopApp(paths, config, config.limits.tui_log_lines)

    async def scenario():
        async with app.run_test(size=(140, 40)) as pilot:
            deadline = time.monotonic() + 30
            while "j1" not in app.model.state.jobs:
                assert time.monotonic() < deadline, "the view never read the log"
                await pilot.pause(0.05)
            header = vm.header(app.model, time.monotonic(), str(paths.root))
            shown = [w for w in header.warnings if "could not be read" in w]
            assert len(shown) == 1 and shown[0].startswith("2 events of the log could not be read"), header
            assert "cocode 0.0.9" in shown[0] and "`cocode doctor`" in shown[0]
            await pilot.pause(0.3)
            assert "2 events of the log could not be read" in str(app.query_one("#warnings").render())

    asyncio.run(asyncio.wait_for(scenario(), 60))
