"""Following the log over the real bus: what a plain SUB socket sees, the Follower's
exactly-once delivery from a checkpoint, gap resync, a killed bus, and a one-shot
`cocode events` while producers append (bad frames: test_follow_bad_frames.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from support import Following, append_acked, cocode, db_head, down, ps, settle, up, wait_until


def test_plain_pyzmq_sub_socket_sees_msgpack_envelopes(shared, ctx):
    out = cocode(shared.root, "endpoints", "--json")
    assert out.returncode == 0, out.stderr
    endpoints = json.loads(out.stdout)
    assert endpoints["subscribe"].startswith("ipc://")

    # Nothing from cocode on this side: a bare SUB socket and a generic msgpack decoder.
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoints["subscribe"])
    sub.setsockopt(zmq.SUBSCRIBE, b"evt.")

    app = Appender(ctx, shared.endpoint("store"), wire.new_producer_id("t"))
    tag = f"sub-{uuid.uuid4().hex[:8]}"
    received: list[list[bytes]] = []
    deadline = time.monotonic() + 10
    while len(received) < 50 and time.monotonic() < deadline:
        for i in range(10):
            app.append(ev.BenchTick(job=tag, n=i))
        assert app.wait(5)
        while sub.poll(50):
            received.append(sub.recv_multipart())
    app.close()
    assert len(received) >= 50, f"only {len(received)} messages on the bus"

    seqs = []
    for frames in received:
        # [topic, envelope], and the store's seal third while runs may go unsandboxed.
        assert len(frames) == 2 or (len(frames) == 3 and len(frames[2]) == 16), frames
        topic, payload = frames[:2]
        envelope = msgspec.msgpack.decode(payload)
        assert isinstance(envelope, dict)
        assert isinstance(envelope["seq"], int) and not isinstance(envelope["seq"], bool)
        assert isinstance(envelope["type"], str)
        assert isinstance(envelope["ts"], float)
        assert topic == b"evt." + envelope["type"].encode()
        seqs.append(envelope["seq"])
    assert all(b > a for a, b in zip(seqs, seqs[1:])), "seq increases"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "nothing lost at this load"
    assert seqs[-1] <= db_head(shared), "only committed events are published"


def test_follower_delivers_each_event_once_in_order_from_a_checkpoint(shared, ctx):
    append_acked(ctx, shared, [ev.BenchTick(job="before", n=i) for i in range(100)])
    checkpoint = db_head(shared) - 40  # inside what is already stored

    tag = f"conc-{uuid.uuid4().hex[:8]}"
    produced = {"n": 0}
    errors: list[str] = []

    def produce() -> None:
        pctx = zmq.Context()
        app = Appender(pctx, shared.endpoint("store"), wire.new_producer_id("conc"))
        try:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                for _ in range(100):
                    produced["n"] += 1
                    app.append(ev.BenchTick(job=tag, n=produced["n"]))
                app.flush()
                if app.sock.poll(2):
                    app.on_readable()
                app.tick()
            if not app.wait(10):
                errors.append(f"{app.pending} unacked")
        finally:
            app.close()
            pctx.destroy(linger=0)

    producer = threading.Thread(target=produce)
    f = Following(ctx, shared, after=checkpoint)
    try:
        producer.start()
        # The producer is already appending when the follower syncs.
        wait_until(lambda: produced["n"] > 0, 5, what="the producer to start", interval=0.01)
        f.start()
        producer.join(20)
        assert not producer.is_alive() and not errors, errors
        head = db_head(shared)
        assert f.run_until_seq(head, 10), f"follower stuck at {f.follower.last} of {head}"
        settle(ctx, shared, f)  # anything extra would show up as a duplicate
    finally:
        f.close()
    assert f.seqs == list(range(checkpoint + 1, checkpoint + 1 + len(f.seqs))), "every seq once, in order"
    assert f.seqs[-1] >= head
    assert [e.n for e in f.got if e.job == tag] == list(range(1, produced["n"] + 1))
    assert produced["n"] >= 500


def test_a_typed_follower_gets_each_of_its_events_once_whoever_answers_its_syncs(shared, ctx):
    """The store answers a typed sync from the log, or from memory when no event of
    those types came since (followers sync on every heartbeat): each warning once, in
    order, and a sync with none of its types still moves the follower to the head."""
    tag = f"typed-{uuid.uuid4().hex[:8]}"
    ticks = lambda: [ev.BenchTick(job=tag, n=i) for i in range(50)]  # noqa: E731
    append_acked(ctx, shared, [ev.WarningEvent(job=tag, code="w", message="0"), *ticks()])
    f = Following(ctx, shared, after=0, types={"warning"})
    try:
        f.start()
        for k in range(1, 4):
            append_acked(ctx, shared, [*ticks(), ev.WarningEvent(job=tag, code="w", message=str(k))])
            head = db_head(shared)
            assert f.run_until_seq(head, 10), f"warning {k}: stuck at {f.follower.last} of {head}"
        append_acked(ctx, shared, ticks())  # none of its type: only the heartbeat tells it
        head = db_head(shared)
        assert f.run_until_seq(head, 10), f"stuck at {f.follower.last} of {head}"
    finally:
        f.close()
    assert [e.message for e in f.got if e.job == tag] == ["0", "1", "2", "3"]
    assert {e.type for e in f.got} == {"warning"}
    assert f.seqs == sorted(set(f.seqs)), "each once, in order"


def test_a_seq_gap_makes_the_follower_fetch_the_missing_range(shared, ctx):
    f = Following(ctx, shared, after=db_head(shared), liveness=60.0)
    # Only gap detection may save it: no store heartbeats, no liveness timeout in time.
    f.follower.sub.setsockopt(zmq.UNSUBSCRIBE, b"hb.store")
    bus = shared.endpoint("bus")
    # A witness that stays on the bus: once it has the last of the 200, a follower
    # still connected would have had them too.
    witness = ctx.socket(zmq.SUB)
    witness.setsockopt(zmq.LINGER, 0)
    witness.connect(bus)
    witness.setsockopt(zmq.SUBSCRIBE, b"evt.")
    witness.setsockopt(zmq.SUBSCRIBE, b"hb.")
    try:
        f.start()
        assert witness.poll(5000), "the witness heard nothing on the bus"  # subscribed
        start, n0 = f.follower.last, len(f.got)
        # Cut this subscriber off the bus while 200 events are committed and published.
        f.follower.sub.disconnect(bus)
        append_acked(ctx, shared, [ev.BenchTick(job="missed", n=i) for i in range(200)])
        last_missed = db_head(shared)

        def witnessed() -> bool:
            while witness.poll(50):
                topic, payload = witness.recv_multipart()[:2]
                if topic.startswith(b"evt.") and msgspec.msgpack.decode(payload)["seq"] >= last_missed:
                    return True
            return False

        wait_until(witnessed, 10, what="the witness to see the 200 published", interval=0)
        f.loop.run_once(0)  # handle whatever reached the follower's socket
        assert f.follower.last == start, "it could not have seen them"
        f.follower.sub.connect(bus)
        # Live events resume; the first one it sees is past a gap of >= 200.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and f.follower.last < db_head(shared):
            append_acked(ctx, shared, [ev.BenchTick(job="after", n=1)])
            f.loop.run(timeout=0.1)
        head = db_head(shared)
        assert f.run_until_seq(head, 3), f"stuck at {f.follower.last} of {head}"
    finally:
        witness.close(0)
        f.close()
    assert f.seqs[n0:] == list(range(start + 1, start + 1 + len(f.seqs[n0:])))
    assert f.seqs[-1] >= head
    assert sum(1 for e in f.got if e.job == "missed") == 200


def test_kill9_of_the_bus_loses_nothing_durable(repo, ctx):
    paths = up(repo)
    f = Following(ctx, paths, after=0)
    app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"))
    try:
        f.start()
        old_pid = ps(repo)["bus"]["pid"]
        counter = {"n": 0, "on": True}

        def produce() -> None:
            for _ in range(10 if counter["on"] else 0):
                counter["n"] += 1
                app.append(ev.BenchTick(job="bus", n=counter["n"]))

        app.attach(f.loop, tick=0.05)
        f.loop.every(0.02, produce)
        f.loop.run(timeout=0.5)
        os.kill(old_pid, signal.SIGKILL)
        n_at_kill = counter["n"]
        # Append only while the bus is down (it comes back after a 0.25 s backoff and a
        # start-up), then stop: no later live event reveals the gap, so only the store's
        # heartbeat (or the follower's liveness check) can tell the follower it missed some.
        f.loop.run(timeout=0.2)
        counter["on"] = False
        assert counter["n"] > n_at_kill, "events were appended while the bus was down"
        f.loop.remove(app.sock)
        assert app.wait(10), f"{app.pending} not acked"
        head = db_head(paths)
        assert f.run_until_seq(head, 10), f"follower stuck at {f.follower.last} of {head}"
        settle(ctx, paths, f)
        bus = ps(repo)["bus"]
        assert bus["pid"] != old_pid and bus["restarts"] >= 1 and bus["state"] == "ready"
    finally:
        app.close()
        f.close()
        down(repo)
    assert f.seqs == list(range(1, len(f.seqs) + 1)), "every durable event, once, in order"
    assert f.seqs[-1] >= head
    assert [e.n for e in f.got if e.job == "bus"] == list(range(1, counter["n"] + 1))


def test_events_without_follow_ends_while_producers_keep_appending(shared, ctx, tmp_path):
    """A one-shot `cocode events` prints the log as it stood and exits 0, even while
    appends go on at full speed (it must neither chase the head nor time out)."""
    append_acked(ctx, shared, [ev.WarningEvent(code="load", message="marker")])
    stop = threading.Event()
    produced = {"n": 0}

    def produce() -> None:
        pctx = zmq.Context()
        app = Appender(pctx, shared.endpoint("store"), wire.new_producer_id("load"))
        try:
            while not stop.is_set():  # ~10,000 events/s, steadily
                for _ in range(100):
                    produced["n"] += 1
                    app.append(ev.BenchTick(job="load", n=produced["n"]))
                app.flush()
                while app.pending > 2000 and not stop.is_set():
                    if app.sock.poll(10):
                        app.on_readable()
                    app.tick()
                if app.sock.poll(10):
                    app.on_readable()
            app.wait(5)
        finally:
            app.close()
            pctx.destroy(linger=0)

    head0 = db_head(shared)
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: db_head(shared) > head0, 10, what="the producer's appends to be committed")
        head_before = db_head(shared)
        t0 = time.monotonic()
        proc = cocode(shared.root, "events", "--json", "--type", "warning", timeout=30)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert elapsed < 10, f"took {elapsed:.1f}s"
        got = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [e["message"] for e in got if e["code"] == "load"] == ["marker"]
        assert db_head(shared) > head_before, "appends were going on meanwhile"
    finally:
        stop.set()
        producer.join(15)
    assert produced["n"] > 1000
