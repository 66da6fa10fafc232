"""Bad frames on the bus: garbage, and a well-formed event with an impossible seq
published straight onto bus-in. Followers drop them, count them, and keep following
every real event once, in order; a one-shot `cocode events` is not wedged either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import msgspec
import zmq

from cocode.core import events as ev
from support import Following, cocode, db_head, ps, still_follows


def test_garbage_on_the_bus_is_dropped_counted_and_ignored(shared, ctx):
    f = Following(ctx, shared, after=db_head(shared))
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(json.loads(cocode(shared.root, "endpoints", "--json").stdout)["publish"])
    junk = [
        [b"evt.bench_tick", os.urandom(40)],  # undecodable envelope
        [b"evt.one_frame"],  # one frame
        [b"evt.three", b"frames", b"here"],
        [b"evt.bench_tick", msgspec.msgpack.encode({"type": "no_such_event", "seq": 1})],
        [b"hb.store", b"not a heartbeat"],
    ]
    try:
        f.start()
        # Send until the bus has this publisher's upstream subscriptions, then count one round.
        deadline = time.monotonic() + 5
        while f.follower.dropped == 0 and time.monotonic() < deadline:
            pub.send_multipart(junk[0])
            f.loop.run(timeout=0.05)
        assert f.follower.dropped > 0, "garbage never reached the follower"
        before = f.follower.dropped
        for frames in junk:
            pub.send_multipart(frames)
        assert f.loop.run(until=lambda: f.follower.dropped >= before + len(junk), timeout=3), (
            f"dropped {f.follower.dropped - before} of {len(junk)}")
        assert f.seqs == list(range(f.follower.last - len(f.got) + 1, f.follower.last + 1))
        assert not [e for e in f.got if e.type != "service_started"], "garbage delivered as an event"

        still_follows(ctx, shared, f, "after-garbage", 20)
    finally:
        pub.close(0)
        f.close()
    services = ps(shared.root)
    assert all(s["state"] == "ready" and s["restarts"] == 0 for s in services.values()), services


def test_an_event_with_an_impossible_seq_on_the_bus_does_not_wedge_followers(shared, ctx, tmp_path):
    """A decodable envelope far past the store's head (a buggy publisher) is dropped
    and counted; followers still catch up and `cocode events` still finishes."""
    f = Following(ctx, shared, after=db_head(shared))
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(shared.endpoint("bus-in"))
    forged = [b"evt.warning", ev.encode(ev.WarningEvent(code="x", message="forged", seq=10**9))]
    reader = None
    try:
        f.start()
        deadline = time.monotonic() + 5
        while f.follower.dropped == 0 and time.monotonic() < deadline:
            pub.send_multipart(forged)
            f.loop.run(timeout=0.05)
        assert f.follower.dropped > 0, "the forged event was not dropped"
        assert f.loop.run(until=lambda: f.follower.caught_up, timeout=2), "still syncing"

        # A reader started during a flood of such events still ends, with the whole log.
        head_before = db_head(shared)
        out_path = tmp_path / "events.jsonl"
        with open(out_path, "w") as out_file:  # a file, not a pipe: the log is large
            reader = subprocess.Popen(
                [sys.executable, "-m", "cocode", "-C", str(shared.root), "events", "--json"],
                stdout=out_file, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 10
        while reader.poll() is None and time.monotonic() < end:
            for _ in range(20):
                pub.send_multipart(forged)
            f.loop.run(timeout=0.005)
        assert reader.poll() is not None, "`cocode events` did not finish during the flood"
        _, err = reader.communicate(timeout=5)
        assert reader.returncode == 0, err
        seqs = [json.loads(line)["seq"] for line in out_path.read_text().splitlines()]
        assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] >= head_before

        still_follows(ctx, shared, f, "after-forged", 10)
        assert not [e for e in f.got if e.seq >= 10**9]
    finally:
        if reader is not None and reader.poll() is None:
            reader.kill()
            reader.wait(5)
        pub.close(0)
        f.close()
