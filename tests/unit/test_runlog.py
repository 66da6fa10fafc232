"""The collector's run log on disk (cocode.logs.runlog, cocode.logs.files), no service:
a restart finds each run where it was, an interrupted rotation is finished or undone,
and a new attempt continues at its own offsets."""

from __future__ import annotations

from cocode.config import Limits
from cocode.logs.files import ATTEMPT_SPAN, RunFiles
from cocode.logs.runlog import RunLog
from support import agent_module

logs_agent = agent_module("logs_agent")

SMALL = Limits(log_buffer_size_mb=1, log_max_buffer_mb=1, rotated_logs_keep=3)


def store_all(run: RunLog, data: bytes, step: int = 4096) -> list:
    events: list = []
    for i in range(0, len(data), step):
        run.store(data[i : i + step], events)
    return events


def test_a_restarted_collector_finds_each_run_where_it_was(tmp_path):
    data = logs_agent.bulk_bytes(2.5)
    first = RunLog(tmp_path, "j1", "a", SMALL)
    store_all(first, data[: 1_500_000])
    first.flush()  # what the OS has; a kill -9 keeps it (no close, no sync)
    second = RunLog(tmp_path, "j1", "a", SMALL)
    assert second.end == 1_500_000
    start, backlog = second.backlog(0)  # refilled from the files, across the rotation
    assert backlog == data[start:1_500_000] and len(backlog) > 600_000
    events = store_all(second, data[1_500_000:])  # its next rotation compresses from the file
    second.close()
    assert [type(e).__name__ for e in events].count("LogRotated") == 1
    assert b"".join(RunFiles(tmp_path, "j1", "a").iter_all()) == data


def test_an_interrupted_rotation_is_finished_or_undone_on_load(tmp_path):
    data = logs_agent.bulk_bytes(1.5)
    run = RunLog(tmp_path, "j2", "a", SMALL)
    store_all(run, data)
    run.close()
    files = RunFiles(tmp_path, "j2", "a")
    m = files.read_manifest()
    # Killed after the lz4 file got its name but before the manifest said so: dropped.
    orphan = tmp_path / "agent_j2-a_20250101T000000.000000.log.lz4"
    orphan.write_bytes(b"not listed")
    # Killed after the commit but before the live file was emptied: emptied on load.
    live = files.live.read_bytes()
    m.rotated.append(type(m.rotated[0])(file=files.new_rotated_path().name, start=m.start, end=m.start + len(live)))
    files.write_lz4([live], tmp_path / m.rotated[-1].file)
    m.start += len(live)
    m.truncate_live = True
    files.write_manifest(m)
    again = RunLog(tmp_path, "j2", "a", SMALL)
    assert not orphan.exists() and again.end == len(data) and files.live.stat().st_size == 0
    assert not files.read_manifest().truncate_live
    again.close()
    assert b"".join(files.iter_all()) == data


def test_a_new_attempt_continues_the_log_at_its_own_offsets(tmp_path):
    run = RunLog(tmp_path, "j3", "a", SMALL)
    store_all(run, b"attempt one\n")
    events: list = []
    run.jump(ATTEMPT_SPAN, events)
    store_all(run, b"attempt two\n")
    assert run.end == ATTEMPT_SPAN + len(b"attempt two\n")
    assert run.backlog(10) == (ATTEMPT_SPAN, b"attempt two\n")
    run.close()
    assert b"".join(RunFiles(tmp_path, "j3", "a").iter_all()) == b"attempt one\nattempt two\n"




def test_a_backlog_from_an_offset_holds_only_what_the_reader_lacks(tmp_path):
    run = RunLog(tmp_path, "j1", "a", SMALL)
    data = b"".join(b"line %d\n" % i for i in range(1000))
    store_all(run, data)
    assert run.backlog(0, 5000) == (5000, data[5000:])  # lines 0: no line bound
    assert run.backlog(2, 10) == (len(data) - len(b"line 998\nline 999\n"), b"line 998\nline 999\n")
    assert run.backlog(1, 1 << 62) == (len(data), b"")  # past the end: the end alone
    assert run.backlog_newlines(300, 5000) == (run.backlog_start(300), 300)
    assert run.backlog_newlines(0, 5000) == (5000, data[5000:].count(b"\n"))
    assert run.backlog(0) == (0, data)  # no `after`: as before it existed
