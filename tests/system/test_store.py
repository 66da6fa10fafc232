"""The store, through real sockets and a real SQLite file: acknowledged appends,
harmless resends, Nacks, append-only triggers, garbage, a full disk, kill -9, and a
corrupt database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid

import msgspec
import pytest
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.paths import Paths
from support import cocode, cocode_processes, down, heavy, kill_all, ps, up, wait_none, wait_until


# -- helpers ---------------------------------------------------------------------------


def rows(paths: Paths) -> list[tuple[int, str, str, dict]]:
    """(seq, type, job, decoded payload) of every stored event, read with plain sqlite3."""
    conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
    try:
        return [
            (seq, typ, job, msgspec.msgpack.decode(payload))
            for seq, typ, job, payload in conn.execute(
                "SELECT seq, type, job, payload FROM events ORDER BY seq"
            )
        ]
    finally:
        conn.close()


def assert_contiguous(all_rows) -> None:
    seqs = [r[0] for r in all_rows]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not contiguous: {seqs[:5]}...{seqs[-5:]}"
    for seq, _typ, _job, payload in all_rows:
        assert payload["seq"] == seq, "stored envelope carries its own seq"


def tagged(paths: Paths, tag: str):
    return [r for r in rows(paths) if r[2] == tag]


def dealer(ctx: zmq.Context, paths: Paths) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(paths.endpoint("store"))
    return sock


def request(sock: zmq.Socket, msg, timeout: float = 5.0):
    sock.send(wire.encoder.encode(msg))
    assert sock.poll(int(timeout * 1000)), "the store did not answer"
    return wire.reply_decoder.decode(sock.recv())


# -- appends -----------------------------------------------------------------------------


def test_append_is_acked_and_reads_back(shared, ctx):
    tag = f"append-{uuid.uuid4().hex[:8]}"
    acked: dict[int, int] = {}
    app = Appender(ctx, shared.endpoint("store"), wire.new_producer_id("t"),
                   on_ack=lambda m, s: acked.__setitem__(m, s))
    ids = [app.append(ev.BenchTick(job=tag, n=i)) for i in range(1, 51)]
    assert app.wait(10), f"not acked: {app.pending} pending ({app.refused})"
    assert app.pending == 0
    assert sorted(acked) == ids == list(range(1, 51))
    seqs = [acked[i] for i in ids]
    assert seqs == list(range(seqs[0], seqs[0] + 50)), "one producer's batch gets consecutive seqs"

    mine = tagged(shared, tag)
    assert [r[0] for r in mine] == seqs
    assert [r[3]["n"] for r in mine] == list(range(1, 51))
    assert all(r[1] == "bench_tick" and r[3]["type"] == "bench_tick" for r in mine)
    assert_contiguous(rows(shared))

    # The CLI reads the same events back (through the running store).
    out = cocode(shared.root, "events", "--json", "--since", str(seqs[0] - 1), "--type", "bench_tick")
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(e["seq"], e["n"]) for e in got if e["job"] == tag] == list(zip(seqs, range(1, 51)))
    app.close()


def test_resends_are_harmless(shared, ctx):
    tag = f"resend-{uuid.uuid4().hex[:8]}"
    producer = wire.new_producer_id("t")
    app = Appender(ctx, shared.endpoint("store"), producer)
    for i in range(1, 21):
        app.append(ev.BenchTick(job=tag, n=i))
    app.flush()
    app.resend()  # the same Append again, before any Ack was read
    app.resend()
    assert app.wait(10)
    mine = tagged(shared, tag)
    assert [r[3]["n"] for r in mine] == list(range(1, 21)), "no duplicates, no holes"
    seqs = [r[0] for r in mine]
    assert seqs == list(range(seqs[0], seqs[0] + 20))

    # Long after the Ack, a raw resend of the same msg_ids is acked again and stores nothing.
    sock = dealer(ctx, shared)
    old = wire.Append(producer, 1, [ev.BenchTick(job=tag, n=i) for i in range(1, 21)])
    reply = request(sock, old)
    assert reply == wire.Ack(through=20, first_seq=reply.first_seq, count=0)
    # An overlapping resend stores only the new tail.
    overlap = wire.Append(producer, 19, [ev.BenchTick(job=tag, n=i) for i in (19, 20, 21)])
    reply = request(sock, overlap)
    assert isinstance(reply, wire.Ack) and reply.through == 21 and reply.count == 1
    mine = tagged(shared, tag)
    assert [r[3]["n"] for r in mine] == list(range(1, 22))
    assert mine[-1][0] == reply.first_seq
    assert_contiguous(rows(shared))
    sock.close(0)
    app.close()


def test_append_ahead_of_expected_is_nacked_and_stores_nothing(shared, ctx):
    tag = f"nack-{uuid.uuid4().hex[:8]}"
    producer = wire.new_producer_id("raw")
    sock = dealer(ctx, shared)
    before = rows(shared)

    reply = request(sock, wire.Append(producer, 3, [ev.BenchTick(job=tag, n=3)]))
    assert reply == wire.Nack(expected=1)
    assert tagged(shared, tag) == []

    reply = request(sock, wire.Append(producer, 1, [ev.BenchTick(job=tag, n=i) for i in (1, 2, 3)]))
    assert isinstance(reply, wire.Ack), reply
    assert (reply.through, reply.count) == (3, 3)
    assert reply.first_seq == before[-1][0] + 1 if before else 1

    reply = request(sock, wire.Append(producer, 5, [ev.BenchTick(job=tag, n=5)]))
    assert reply == wire.Nack(expected=4)
    assert [r[3]["n"] for r in tagged(shared, tag)] == [1, 2, 3]
    assert_contiguous(rows(shared))
    sock.close(0)


def test_update_and_delete_on_events_fail(shared):
    before = rows(shared)
    assert before, "the services' start-up events are there"
    conn = sqlite3.connect(shared.db, timeout=5)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET type = 'x' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM events")
        conn.rollback()
    finally:
        conn.close()
    for sql in ("update events set type='x'", "delete from events"):
        # A busy timeout, as the connection above has: without one the CLI fails at once
        # with "database is locked" when it meets the running store's commit (seen in CI).
        proc = subprocess.run(["sqlite3", "-cmd", ".timeout 5000", str(shared.db), sql],
                              capture_output=True, text=True, timeout=10)
        assert proc.returncode != 0, f"{sql!r} succeeded"
        assert "append-only" in proc.stderr
    after = rows(shared)
    assert after[: len(before)] == before, "nothing changed"


def test_garbage_frames_are_dropped_and_the_store_keeps_serving(shared, ctx):
    pid = ps(shared.root)["store"]["pid"]
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(shared.endpoint("bus"))
    sub.setsockopt(zmq.SUBSCRIBE, b"hb.store")

    def store_dropped() -> int:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if sub.poll(500):
                _topic, payload = sub.recv_multipart()
                return wire.heartbeat_decoder.decode(payload).info["dropped"]
        raise AssertionError("no store heartbeat")

    base = store_dropped()
    sock = dealer(ctx, shared)
    junk = [
        [os.urandom(64)],
        [b""],
        [os.urandom(7), os.urandom(9)],  # two frames where one is expected
        [b"a", b"b", b"c", b"d"],
        [msgspec.msgpack.encode({"type": "append", "producer": 1})],  # wrong field types
        [msgspec.msgpack.encode({"type": "no_such_request"})],
        [msgspec.msgpack.encode(
            {"type": "append", "producer": "x", "first_id": 1, "events": [{"type": "no_such_event"}]})],
        [msgspec.msgpack.encode([1, 2, 3])],
    ]
    for frames in junk:
        sock.send_multipart(frames)
    for _ in range(200):
        sock.send(os.urandom(32))

    tag = f"garbage-{uuid.uuid4().hex[:8]}"
    reply = request(sock, wire.Append(wire.new_producer_id("raw"), 1, [ev.BenchTick(job=tag, n=1)]))
    assert isinstance(reply, wire.Ack) and reply.count == 1, reply
    assert len(tagged(shared, tag)) == 1
    # Counted: the store's heartbeat reports every dropped request.
    wait_until(lambda: store_dropped() >= base + len(junk) + 200, 5, what="the store's heartbeat to count them")
    assert ps(shared.root)["store"]["pid"] == pid, "the store did not restart"
    log = (shared.home / "logs" / "services" / "store.log").read_text()
    assert log.count("dropped an undecodable request") < 10, "logged once per kind, not per message"
    sock.close(0)
    sub.close(0)


# -- faults ----------------------------------------------------------------------------------


def test_disk_full_refuses_and_keeps_events_unacked(repo, ctx):
    env = dict(os.environ, COCODE_STORE_MAX_PAGES="40")
    paths = up(repo, env=env)
    try:
        store_pid = ps(repo)["store"]["pid"]
        acked: dict[int, int] = {}
        app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"),
                       on_ack=lambda m, s: acked.__setitem__(m, s), resend_after=0.2)
        sent = 0
        for _ in range(300):  # 40 pages of 4 KiB hold far fewer than 300 such events
            app.append(ev.WarningEvent(job="fill", code="fill", message="x" * 2000))
            sent += 1
            app.flush()
            deadline = time.monotonic() + 3
            while app.pending and not app.refused and time.monotonic() < deadline:
                if app.sock.poll(50):
                    app.on_readable()
            if app.pending:
                break
        assert app.refused, "the store never refused"
        assert "database or disk is full" in app.refused and str(paths.db) in app.refused
        assert app.pending == 1 and len(acked) == sent - 1 > 0

        # A whole batch arriving now is refused as a whole, and kept by the producer.
        # Not "unacked after a pause": wait for the store's answer to this batch. The
        # appender forgets the last refusal, sends, and drives its socket (a Nack makes
        # it resend everything pending) until the store refuses again or acks.
        for i in range(5):
            app.append(ev.BenchTick(job="after-full", n=i))
        app.refused = None
        app.flush()

        def answered() -> bool:
            if app.sock.poll(50):
                app.on_readable()
            app.tick()
            return bool(app.refused) or app.pending < 6

        wait_until(answered, 10, what="the store's answer to the batch", interval=0)
        assert app.pending == 6 and app.refused, "appends were acked on a full disk"
        # Alive is not healthy: ps says the store refuses appends.
        wait_until(lambda: ps(repo)["store"]["state"] == "unhealthy", 10, what="ps to show the store unhealthy")

        all_rows = rows(paths)
        assert_contiguous(all_rows)
        assert [r[0] for r in all_rows if r[2] == "fill"] == [acked[m] for m in sorted(acked)]
        assert not [r for r in all_rows if r[2] == "after-full"], "nothing half-written"
        conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()

        # The log stays readable through the running store, and the store did not crash.
        out = cocode(repo, "events", "--json", timeout=20)
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["seq"] for line in out.stdout.splitlines()] == [r[0] for r in all_rows]
        assert ps(repo)["store"]["pid"] == store_pid
        log = (paths.home / "logs" / "services" / "store.log").read_text()
        assert log.count("refusing appends") == 1, "the refusal is logged once, not per retry"
        app.close()
    finally:
        down(repo)


@heavy
def test_kill9_store_while_appending_loses_and_duplicates_nothing(repo, ctx):
    paths = up(repo)
    try:
        old_pid = ps(repo)["store"]["pid"]
        tag = f"kill-{uuid.uuid4().hex[:8]}"
        acked: dict[int, int] = {}
        app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"),
                       on_ack=lambda m, s: acked.__setitem__(m, s), resend_after=0.3)
        killed_at = None
        unacked_while_down = 0
        appended_after_kill = 0
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            if app.pending < 2000:  # bounded load, also while the store is down
                for _ in range(20):
                    app.append(ev.BenchTick(job=tag, n=app.next_id))  # n = its msg_id
                if killed_at is not None:
                    appended_after_kill += 20
            app.flush()
            if app.sock.poll(5):
                app.on_readable()
            app.tick()
            if killed_at is None and len(acked) >= 300:
                os.kill(old_pid, signal.SIGKILL)
                killed_at = time.monotonic()
            elif killed_at is not None:
                unacked_while_down = max(unacked_while_down, app.pending)
                if time.monotonic() - killed_at > 1.5:
                    break
        assert killed_at is not None, "never reached 300 acked events"
        assert appended_after_kill > 0 and unacked_while_down > 0
        assert app.wait(10), f"{app.pending} events never acked after the restart"
        total = app.next_id - 1

        new = ps(repo)["store"]
        assert new["pid"] != old_pid and new["restarts"] >= 1 and new["state"] == "ready"

        all_rows = rows(paths)
        assert_contiguous(all_rows)
        mine = [r for r in all_rows if r[2] == tag]
        ns = [r[3]["n"] for r in mine]
        assert sorted(ns) == list(range(1, total + 1)), "every event exactly once"
        by_n = {r[3]["n"]: r[0] for r in mine}
        assert all(by_n[m] == s for m, s in acked.items()), "each ack named the seq that was stored"
        app.close()
    finally:
        down(repo)


def test_corrupt_database_fails_fast_with_one_line(repo):
    paths = Paths(repo)
    paths.home.mkdir()
    paths.db.write_bytes(b"this is not a database" + os.urandom(8192))
    try:
        t0 = time.monotonic()
        proc = cocode(repo, "up", "--detach", timeout=40)
        elapsed = time.monotonic() - t0
        assert proc.returncode != 0
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1, proc.stderr
        assert str(paths.db) in err[0] or ".cocode/events.db" in err[0]
        assert err[0].count("cocode:") == 1 and err[0].count("start-up failed") == 1, err[0]
        assert "Traceback" not in proc.stderr + proc.stdout
        assert elapsed < 10, f"took {elapsed:.1f}s to give up on a corrupt database"
        wait_none(lambda: cocode_processes(repo), 5, what="nothing left running")
        assert not paths.socket_files()
    finally:
        kill_all(repo)
