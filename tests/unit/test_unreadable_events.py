"""An events.db another cocode version wrote (issue 12's audit): rows this version
cannot decode are still skipped, so the rest folds, but no longer silently. The
readers count them (the fold stays pure), `cocode status` / `replay` / `events`
warn once on stderr, and `cocode top`'s header says how many and what to do.

The rows are real events in another version's format, not garbage bytes
(support.older_log: a job_submitted with renamed fields, a type this version does
not have, after the service_started rows of cocode 0.0.9). With cocode running,
tests/system/test_unreadable_live.py.
"""

from __future__ import annotations

import asyncio
import json
import time

from cocode.configload import load_config
from cocode.core import eventlog
from cocode.core.unreadable import Unreadable
from cocode.paths import Paths
from cocode.top import model as vm
from cocode.top.app import TopApp
from support import cocode, make_repo, older_log


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
            while "2 events of the log could not be read" not in str(app.query_one("#warnings").render()):
                assert time.monotonic() < deadline, "the header never showed the warning"
                await pilot.pause(0.05)

    asyncio.run(asyncio.wait_for(scenario(), 60))
