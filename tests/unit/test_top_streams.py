"""What `cocode top` asks the log collector for (cocode.top.streams, pure), and the
splitter's whole-batch fast path against the line-by-line display it replaces."""

from __future__ import annotations

import random

from cocode.core import wire
from cocode.top import panes
from cocode.top.streams import ASK_AGAIN_S, COUNT_EVERY_S, Ask, Stream


def chunk(offset: int, data: bytes) -> wire.LogChunk:
    return wire.LogChunk(job="j", agent="a", stream="stdout", offset=offset, data=data)


def backlog(start: int, data: bytes) -> wire.Backlog:
    return wire.Backlog(job="j", agent="a", start=start, end=start + len(data), data=data)


def lines(out: list) -> list[str]:
    return [line for c in out if not isinstance(c, Ask) for line in c.lines]


def test_a_gap_asks_only_for_the_bytes_after_what_is_held():
    s = Stream("j", "a", keep=100)
    assert s.begin(0.0) == Ask(100)
    s.backlog(backlog(0, b"one\ntwo\n"), 0.0, 0.0)
    assert lines(s.chunk(chunk(8, b"three\n"), 0.0, 0.0)) == ["three"]
    out = s.chunk(chunk(19, b"five\n"), 0.0, 0.0)  # "four\n" at 14 was lost
    assert out == [Ask(0, 14)]
    assert s.chunk(chunk(24, b"six\n"), 0.0, 0.0) == []  # waits behind the request
    out = s.backlog(backlog(14, b"four\nfive\n"), 0.0, 0.0)
    assert lines(out) == ["four", "five", "six"]  # no gap, "five" not twice
    assert s.expected == 28 and not s.waiting


def test_a_run_ending_or_cocode_returning_asks_from_the_expected_offset():
    s = Stream("j", "a", keep=100)
    s.begin(0.0)
    s.backlog(backlog(0, b"x\n" * 10), 0.0, 0.0)
    s.check_at = 1.0
    assert s.due(0.5) is None
    assert s.due(1.0) == Ask(0, 20)
    assert s.lacks(1.0) is None  # one request at a time
    assert s.due(1.0 + ASK_AGAIN_S + 0.1) == Ask(0, 20)  # unanswered: sent again
    assert s.backlog(backlog(20, b""), 0.0, 4.0) == []
    assert s.backlog(backlog(20, b"late\n"), 0.0, 4.0) == []  # the answer to the resend


def test_a_hidden_stream_asks_for_a_count_and_counts_what_follows():
    s = Stream("j", "a", keep=100, shown=False)
    assert s.begin(0.0) == Ask(100, count=True)
    out = s.backlog(wire.Backlog(job="j", agent="a", start=0, end=5000, data=b"", newlines=70), 0.0, 0.0)
    assert [(c.kind, c.n) for c in out] == [("reset", 0), ("count", 70)]
    (c,) = s.chunk(chunk(5000, b"a\nb\nc"), 0.0, 0.0)
    assert (c.kind, c.n, c.lines) == ("count", 2, [])
    assert s.chunk(chunk(6000, b"x\n"), 0.0, 0.0) == [Ask(0, 5005, count=True)]


def test_a_hidden_stream_polls_the_collector_for_what_came_since_it_counted():
    # The feed does not subscribe to a hidden stream: the timer's check is what counts.
    s = Stream("j", "a", keep=100, shown=False)
    s.backlog(wire.Backlog(job="j", agent="a", start=0, end=500, data=b"", newlines=7, id=s.begin(0.0).id), 0.0, 0.0)
    poll = s.due(0.2)
    assert poll == Ask(0, 500, count=True)
    assert s.due(0.4) is None  # one request at a time
    (c,) = s.backlog(wire.Backlog(job="j", agent="a", start=500, end=900, data=b"", newlines=4, id=poll.id), 0.0, 0.5)
    assert (c.kind, c.n) == ("count", 4) and s.expected == 900
    assert s.due(0.6) is None  # not again before COUNT_EVERY_S
    assert s.due(0.2 + COUNT_EVERY_S) == Ask(0, 900, count=True)
    shown = Stream("j", "a", keep=100)
    shown.begin(0.0)
    shown.backlog(backlog(0, b"x\n"), 0.0, 0.0)
    assert shown.expected == 2
    assert shown.due(5.0) is None  # a shown stream's chunks come from the bus


def test_a_count_answering_an_earlier_request_is_not_taken_for_a_shown_tabs_backlog():
    s = Stream("j", "a", keep=100, shown=False)
    s.begin(0.0)
    s.shown = True
    assert s.begin(0.1) == Ask(100)
    assert s.backlog(wire.Backlog(job="j", agent="a", start=0, end=9, data=b"", newlines=3), 0.0, 0.2) == []
    assert lines(s.backlog(backlog(0, b"a\nb\nc\n"), 0.0, 0.3)) == ["a", "b", "c"]


def reply(ask: Ask, start: int, data: bytes) -> wire.Backlog:
    return wire.Backlog(job="j", agent="a", start=start, end=start + len(data), data=data, id=ask.id)


def test_a_byte_reply_to_a_request_replaced_since_is_dropped():
    s = Stream("j", "a", keep=100)
    first = s.begin(0.0)
    s.hide()
    s.shown = True
    second = s.begin(0.1)  # shown again while the first backlog is in flight
    assert first.id and second.id != first.id
    assert s.backlog(reply(first, 0, b"old\n"), 0.0, 0.2) == []
    assert s.expected is None and s.asked is second  # still waiting for its own answer
    assert lines(s.backlog(reply(second, 0, b"old\nnew\n"), 0.0, 0.3)) == ["old", "new"]


def test_a_resend_keeps_its_id_and_a_late_answer_to_it_is_dropped():
    s = Stream("j", "a", keep=100)
    s.backlog(reply(s.begin(0.0), 0, b"x\n"), 0.0, 0.0)
    gap = s.lacks(1.0)
    again = s.due(1.0 + ASK_AGAIN_S + 0.1)
    assert again.id == gap.id
    s.backlog(reply(gap, 2, b""), 0.0, 4.0)
    newer = s.lacks(5.0)
    assert s.backlog(reply(again, 2, b"y\n"), 0.0, 5.1) == []  # answers the resend, not `newer`
    assert lines(s.backlog(reply(newer, 2, b"y\nz\n"), 0.0, 5.2)) == ["y", "z"]


def test_a_collector_from_before_ids_is_still_heard():
    s = Stream("j", "a", keep=100)
    s.begin(0.0)
    assert lines(s.backlog(backlog(0, b"a\n"), 0.0, 0.0)) == ["a"]  # id 0: no id to check


def test_bytes_no_longer_held_are_said_and_skipped():
    s = Stream("j", "a", keep=100)
    s.begin(0.0)
    s.backlog(backlog(0, b"a\n"), 0.0, 0.0)
    s.lacks(0.0)
    out = s.backlog(backlog(50, b"z\n"), 0.0, 0.0)
    assert out[0].kind == "notice" and "48 bytes no longer held" in out[0].text
    assert lines(out) == ["z"]


def old_split(keep: int, partial: bytes, data: bytes):
    done = (partial + data).split(b"\n")
    rest = done.pop()
    if len(rest) > panes.HOLD_PARTIAL:
        done.append(rest)
        rest = b""
    return [panes.display(line) for line in done[-keep:]], len(done), rest


def test_the_splitter_shows_what_line_by_line_display_shows(monkeypatch):
    monkeypatch.setattr(panes, "HOLD_PARTIAL", 50)
    pieces = [b"a", b"\n", b"\t", b"\r", b"\x1b", b"\xc3\xa9", b"\xff", b"\xe2\x80\x8b", b"x" * 3000,
              b"y" * 20, b"\n\n", "日".encode()]
    rnd = random.Random(7)
    for _ in range(5000):
        keep = rnd.choice([1, 2, 3, 2000])
        partial = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 4)))
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30)))
        s = panes.Splitter(keep)
        s.partial = partial
        got = s.split(data)
        want = old_split(keep, partial, data)
        assert (got, s.partial) == (want[:2], want[2]), (keep, partial, data)
