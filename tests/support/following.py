"""Following the log in a test: a Follower on its own Loop that records what it
delivers, acked appends, and the checks that it still follows (each event once, in
order) after whatever was done to the bus."""

from __future__ import annotations

import sqlite3

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.core.follower import Follower
from cocode.core.loop import Loop
from cocode.paths import Paths


def db_head(paths: Paths) -> int:
    conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    finally:
        conn.close()


class Following:
    """A Follower on its own Loop, recording what it delivers."""

    def __init__(self, ctx, paths: Paths, after: int = 0, **kw) -> None:
        self.got: list[ev.Event] = []
        self.loop = Loop()
        self.follower = Follower(
            ctx, paths.endpoint("bus"), paths.endpoint("store"), self.got.append, after=after, **kw
        )

    def start(self, timeout: float = 5.0) -> None:
        self.follower.attach(self.loop)
        assert self.loop.run(until=lambda: self.follower.caught_up, timeout=timeout), "initial sync"

    def run_until_seq(self, seq: int, timeout: float) -> bool:
        return self.loop.run(until=lambda: self.follower.last >= seq, timeout=timeout)

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.got]

    def close(self) -> None:
        self.follower.close()
        self.loop.close()


def append_acked(ctx, paths: Paths, events: list[ev.Event]) -> None:
    app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"))
    for e in events:
        app.append(e)
    assert app.wait(10), f"{app.pending} not acked"
    app.close()


def settle(ctx, paths: Paths, f: Following) -> None:
    """Instead of running the follower a while to see that nothing more (a duplicate,
    a stray) comes: append a marker and run until it is delivered; whatever the
    follower still had coming from before arrives ahead of it."""
    append_acked(ctx, paths, [ev.BenchTick(job="marker", n=0)])
    head = db_head(paths)
    assert f.run_until_seq(head, 10), f"the marker never came: stuck at {f.follower.last} of {head}"


def still_follows(ctx, paths: Paths, f: Following, job: str, n: int) -> None:
    """After whatever came before, n fresh events reach the follower, each once, in
    order, right after what it had."""
    start, n0 = f.follower.last, len(f.got)
    append_acked(ctx, paths, [ev.BenchTick(job=job, n=i) for i in range(n)])
    head = db_head(paths)
    assert f.run_until_seq(head, 5), f"stuck at {f.follower.last} of {head}"
    settle(ctx, paths, f)
    assert f.seqs[n0:] == list(range(start + 1, start + 1 + len(f.seqs[n0:])))
    assert f.seqs[-1] >= head
    assert [e.n for e in f.got if e.job == job] == list(range(n))
