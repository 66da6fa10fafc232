"""A run's output across attempts, with no service: what the files give back
(logs/files.py last_lines: the last lines below an offset, attempts apart) and how
logs/show.py's Output sets attempts apart in text and JSON."""

from __future__ import annotations

import json

from cocode.config import Limits
from cocode.logs.files import ATTEMPT_SPAN, RunFiles, attempt_base, attempt_of
from cocode.logs.runlog import RunLog
from cocode.logs.show import Output

SMALL = Limits(log_buffer_size_mb=1, log_max_buffer_mb=1, rotated_logs_keep=5)


def three_attempts(tmp_path, lines_each: int = 3, long_first: int = 0) -> RunFiles:
    run = RunLog(tmp_path, "j", "a", SMALL)
    events: list = []
    for attempt in (1, 2, 3):
        if attempt > 1:
            run.jump(attempt_base(attempt), events)
        body = b"".join(b"x" * 1000 + b"\n" for _ in range(long_first)) if attempt == 1 else b""
        body += b"".join(f"a{attempt} line {i}\n".encode() for i in range(lines_each))
        if attempt == 2:
            body += b"no newline at the end"
        for i in range(0, len(body), 4096):
            run.store(body[i : i + 4096], events)
    run.close()
    return RunFiles(tmp_path, "j", "a")


def test_attempts_are_told_by_offset():
    assert [attempt_of(attempt_base(n)) for n in (1, 2, 3)] == [1, 2, 3]
    assert attempt_of(ATTEMPT_SPAN - 1) == 1 and attempt_of(2 * ATTEMPT_SPAN + 5) == 3


def test_last_lines_cross_attempts_and_stop_below_an_offset(tmp_path):
    files = three_attempts(tmp_path, long_first=3000)  # attempt 1 rotates: several segments
    every = b"".join(d for _, d in files.last_lines(10_000))
    assert every == b"".join(files.iter_all())
    four = files.last_lines(4)
    assert [(attempt_of(o), d) for o, d in four] == [
        (2, b"no newline at the end"), (3, b"a3 line 0\na3 line 1\na3 line 2\n")]
    below = files.last_lines(5, before=attempt_base(3))
    assert [(attempt_of(o), d) for o, d in below] == [
        (1, b"a1 line 2\n"), (2, b"a2 line 0\na2 line 1\na2 line 2\nno newline at the end")]
    assert below[0][0] + len(below[0][1]) == 3000 * 1001 + 30  # exact offsets: attempt 1's end
    assert files.last_lines(0) == [] and RunFiles(tmp_path, "j", "none").last_lines(3) == []


def test_output_sets_attempts_apart_in_text_and_json(tmp_path, capsys):
    files = three_attempts(tmp_path)
    causes = {"a": {2: "requeued after worker_lost", 3: "follow-up: more"}}
    text = Output("j", ["a"], as_json=False, colour=False, causes=causes)
    for offset, data in files.iter_at():
        text.chunk("a", offset, data)
    text.flush_all()
    text.emit()
    assert capsys.readouterr().out.splitlines() == [
        "a1 line 0", "a1 line 1", "a1 line 2",
        "--- attempt 2 (requeued after worker_lost) ---", "a2 line 0", "a2 line 1", "a2 line 2",
        "no newline at the end",  # its attempt's end ends it: never glued to the next line
        "--- attempt 3 (follow-up: more) ---", "a3 line 0", "a3 line 1", "a3 line 2"]

    js = Output("j", ["a"], as_json=True, colour=False, causes={})
    js.begin("a", attempt_base(2) + 5)  # shown from inside attempt 2: no separator for it
    for offset, data in files.last_lines(2):
        js.chunk("a", offset, data)
    js.flush_all()
    js.emit()
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(o.get("event"), o["attempt"], o.get("line")) for o in objs] == [
        ("attempt", 3, None), (None, 3, "a3 line 1"), (None, 3, "a3 line 2")]
    assert objs[0]["cause"] == "" and objs[1]["offset"] == attempt_base(3) + 10
