"""What `cocode top` asks the log collector for, and what it hands the app, per
watched stream: pure offset bookkeeping, no sockets and no clock (the feed thread,
cocode/top/feed.py, passes the time in and sends the requests this returns).

A stream holds its run up to `expected` (the next offset it needs). A chunk there
is emitted; one below it is a resend and dropped; one past it means something was
lost, so it waits while the collector is asked for what lies between (`Ask` with
`after`, never the whole retained buffer). The same narrow ask follows cocode
coming back up and a run ending. A shown stream starts from the last `keep` lines
of backlog; a hidden one (a tab not on screen) asks the collector only how many
lines those hold (`count`: no bytes travel) and then, every COUNT_EVERY_S, how
many came past what it counted: its tab says how many lines are new, its backlog
comes when shown. The feed does not subscribe to a hidden stream's chunks at all:
5 agents streaming 1 MB/s each cost the view's feed thread 10% of a core when it
received all five to show one (measured, `cocode bench top`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from cocode.core import wire
from cocode.logs.files import ATTEMPT_SPAN
from cocode.top.panes import Splitter

ASK_AGAIN_S = 2.0  # an unanswered request is sent again after this long
SETTLE_S = 0.3  # a watched run started or finished: check with the collector that we hold its end
COUNT_EVERY_S = 1.0  # a hidden stream asks how many lines came this often (its tab's label is redrawn each second)
_ids = itertools.count(1)  # request ids, unique in the process: a stream watched again gets new ones


@dataclass
class Chunk:
    job: str
    agent: str
    kind: str  # "reset" (backlog start: drop what the pane holds), "lines", "count", "notice", "data"
    data: bytes = b""  # "data": raw bytes, split by the app (scripted feeds)
    text: str = ""  # "notice": its words; "lines": the unterminated line now
    lines: list = field(default_factory=list)  # "lines": the newest complete lines, made readable
    n: int = 0  # "lines", "count": how many complete lines came (a hidden stream is only counted)
    at: float = 0.0  # wall-clock time the chunk reached this process (the bench's baseline)
    ts: float = 0.0  # when the shipper read it from the agent (wall clock)


@dataclass(frozen=True)
class Ask:
    """A backlog request to send: the last `lines` lines (0: all held), none before
    `after`; `count`: how many newlines they hold, not the bytes. `id`: given when
    it is asked, echoed by the collector (a resend keeps it: either answer will do)."""

    lines: int
    after: int = -1
    count: bool = False
    id: int = field(default=0, compare=False)


@dataclass
class Stream:
    job: str
    agent: str
    keep: int = 2000
    shown: bool = True  # the app shows it: split into lines, else only counted
    expected: int | None = None  # the next offset needed (None: no backlog yet)
    asked: Ask | None = None  # the request in flight
    asked_at: float = 0.0
    waiting: list = field(default_factory=list)  # live chunks held while a request is in flight
    check_at: float = 0.0  # ask for anything past `expected` at this time
    count_at: float = 0.0  # hidden: ask how many lines came past `expected` at this time
    splitter: Splitter = field(init=False)
    topic: bytes = field(init=False)  # its chunks' topic, made once: checked per chunk

    def __post_init__(self) -> None:
        self.splitter = Splitter(self.keep)
        self.topic = wire.log_topic(self.job, self.agent)

    # -- what to ask for -----------------------------------------------------------------------

    def begin(self, now: float) -> Ask:
        """Start over (watched, or shown again): a shown stream's backlog; a hidden
        one's newlines only (a collector from before `count` sends the bytes: counted here)."""
        self.expected, self.waiting = None, []
        self.splitter.reset()
        return self.ask(Ask(self.keep, count=not self.shown), now)

    def hide(self) -> None:
        self.shown = False
        self.splitter.reset()

    def lacks(self, now: float) -> Ask | None:
        """cocode came back, or a run ended: anything written past what we hold?"""
        if self.expected is None or self.asked is not None:
            return None
        return self.ask(Ask(0, self.expected, count=not self.shown), now)

    def due(self, now: float) -> Ask | None:
        """A timer's check: a request unanswered too long goes again; a settled run is checked."""
        if self.asked is not None:
            return self.ask(self.asked, now) if now - self.asked_at > ASK_AGAIN_S else None
        if self.check_at and now >= self.check_at:
            self.check_at = 0.0
            return self.lacks(now)
        if not self.shown and now >= self.count_at:
            self.count_at = now + COUNT_EVERY_S
            return self.lacks(now)
        return None

    def ask(self, ask: Ask, now: float) -> Ask:
        if not ask.id:
            ask = replace(ask, id=next(_ids))
        self.asked, self.asked_at = ask, now
        return ask

    # -- what arrives --------------------------------------------------------------------------

    def chunk(self, c: wire.LogChunk, at: float, now: float) -> list:
        """A live chunk -> Chunks for the app and at most one Ask."""
        if self.expected is None or self.asked is not None:
            self.waiting.append(c)
            return []
        end = c.offset + len(c.data)
        if end <= self.expected:
            return []  # held already (from the backlog, or a resend)
        if c.offset > self.expected:
            self.waiting.append(c)  # something between was lost: ask for just that
            return [self.ask(Ask(0, self.expected, count=not self.shown), now)]
        out = self.emit(c.data[self.expected - c.offset:], at, c.ts)
        self.expected = end
        return out

    def backlog(self, b: wire.Backlog, at: float, now: float) -> list:
        """The collector's answer -> Chunks for the app, then the live chunks that waited."""
        if self.asked is None or (b.id and b.id != self.asked.id) or (b.newlines and not self.asked.count):
            return []  # the answer to a request no longer wanted (replaced, or answered already)
        self.asked = None
        out: list = []
        if self.expected is None:
            self.splitter.reset()
            out.append(Chunk(self.job, self.agent, "reset"))
            out += self.emit(b.data, at)
            if b.newlines:
                out.append(Chunk(self.job, self.agent, "count", n=b.newlines, at=at))
            self.expected = b.end
        elif b.end > self.expected:
            if b.start > self.expected:
                self.splitter.reset()  # the bytes between are gone: a line cut there is not joined
                text = (f"attempt {b.start // ATTEMPT_SPAN + 1}" if b.start % ATTEMPT_SPAN == 0
                        else f"{b.start - self.expected:,} bytes no longer held; skipped")
                out.append(Chunk(self.job, self.agent, "notice", text=text))
            out += self.emit(b.data[max(self.expected, b.start) - b.start:], at)
            if b.newlines:
                out.append(Chunk(self.job, self.agent, "count", n=b.newlines, at=at))
            self.expected = b.end
        queued, self.waiting = self.waiting, []
        for c in sorted(queued, key=lambda c: c.offset):
            out += self.chunk(c, at, now)
        return out

    def emit(self, data: bytes, at: float, ts: float = 0.0) -> list:
        if not data:
            return []
        if not self.shown:
            return [Chunk(self.job, self.agent, "count", n=data.count(b"\n"), at=at, ts=ts)]
        lines, n = self.splitter.split(data)
        return [Chunk(self.job, self.agent, "lines", text=self.splitter.rest(), lines=lines, n=n, at=at, ts=ts)]
