"""`cocode bench events`: the real append path against raw SQLite on the same disk.

Producers (separate processes) append `bench_tick` events to the running
store through the Appender; a subscriber process reads them from the bus.
Phase 1 sends `count` events flat out (throughput, ack latency); phase 2 sends
at `rate` events/s (append->ack and append->subscriber latency). The baseline is
raw `executemany` of rows of the same size into a fresh SQLite file beside the
log, with the same WAL + synchronous=FULL setting, 100 rows per commit. Last it
reads the log back and counts every tick: none lost, none twice, even when the
store was killed mid-run.

With `sweep` (e.g. 1, 2, 4, 8 producers) it also measures throughput against the
number of producers: for each, the raw SQLite baseline again just before, then
`count` events split among the producers, flat out; each point's ratio is to its
own baseline, measured a moment earlier on the same disk.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import time

import zmq

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import wire
from cocode.bench import percentile
from cocode.core.appender import Appender
from cocode.core.loop import drain
from cocode.core.sockets import subscriber
from cocode.errors import CocodeError
from cocode.paths import Paths
from cocode.client import is_running

WINDOW = 50_000  # unacked events a producer keeps in flight


def _remove_db(path) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def raw_sqlite_rows_per_s(directory, rows: int, payload_size: int) -> float:
    path = directory / f"bench-raw-{os.getpid()}.db"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, type TEXT NOT NULL,"
            " job TEXT, run TEXT, payload BLOB NOT NULL)"
        )
        payload = os.urandom(payload_size)
        batch = 100
        t0 = time.perf_counter()
        seq = 0
        for _ in range(rows // batch):
            data = [(seq + i + 1, time.time(), "bench_tick", "job", "p0", payload) for i in range(batch)]
            seq += batch
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", data)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
        return seq / elapsed
    finally:
        _remove_db(path)


def raw_commit_ms(directory, commits: int, payload_size: int) -> list[float]:
    """One row per commit, one after another: what the log's disk alone costs each
    event at a low rate (the floor under append->subscriber latency, since the
    store publishes only after its commit)."""
    path = directory / f"bench-commit-{os.getpid()}.db"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        payload = os.urandom(payload_size)
        times = []
        for seq in range(1, commits + 1):
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO events VALUES (?, ?)", (seq, payload))
            conn.execute("COMMIT")
            times.append((time.perf_counter() - t0) * 1000)
        conn.close()
        return times
    finally:
        _remove_db(path)


def _producer(paths: Paths, tag: str, index: int, count: int, rate: int, out: mp.Queue) -> None:
    ctx = zmq.Context()
    sent: dict[int, float] = {}
    lat: list[float] = []

    def on_ack(msg_id: int, seq: int) -> None:
        t = sent.pop(msg_id, None)
        if t is not None:
            lat.append(time.perf_counter() - t)

    app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id(f"bench{index}"), on_ack=on_ack)
    n = 0
    interval = 1.0 / rate if rate else 0.0
    start = time.perf_counter()
    while n < count or app.pending:
        if rate:
            due = start + n * interval
            if n < count and time.perf_counter() >= due:
                sent[app.append(ev.BenchTick(n=n, sent_ns=time.time_ns(), job=tag, agent=f"p{index}"))] = time.perf_counter()
                n += 1
                app.flush()
            wait = 0 if n < count and time.perf_counter() >= start + n * interval else 1
        else:
            while n < count and app.pending < WINDOW:
                msg_id = app.append(ev.BenchTick(n=n, sent_ns=time.time_ns(), job=tag, agent=f"p{index}"))
                sent[msg_id] = time.perf_counter()
                n += 1
                if n % 512 == 0:
                    app.flush()
            app.flush()
            wait = 5
        if app.sock.poll(wait):
            app.on_readable()
        else:
            app.tick()
    elapsed = time.perf_counter() - start
    app.close()
    ctx.destroy(0)
    out.put({"elapsed": elapsed, "ack": lat})


def _subscriber(paths: Paths, tag: str, ready, out: mp.Queue, expect: int, deadline_s: float) -> None:
    ctx = zmq.Context()
    # A queue deeper than the burst it counts: a drop here would be the bench's, not cocode's.
    sub = subscriber(ctx, paths.endpoint("bus"), [b"evt.bench_tick"], hwm=1_000_000)
    # Wait until our subscription reached the bus: a tick of our own comes back.
    probe_ctx_app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("benchsub"))
    while True:
        probe_ctx_app.append(ev.BenchTick(n=-1, job=tag + "-probe"))
        probe_ctx_app.wait(2.0)
        if sub.poll(200):
            sub.recv_multipart()
            break
    while sub.poll(50):
        sub.recv_multipart()
    ready.set()
    lat: list[float] = []
    got = 0
    end = time.monotonic() + deadline_s
    last = time.monotonic()
    while got < expect and time.monotonic() < end:
        if not sub.poll(500):
            # Flat out, PUB drops what a slow subscriber misses: once the ticks have
            # stopped coming for 3 s, no more are on their way.
            if got and time.monotonic() - last > 3:
                break
            continue
        last = time.monotonic()
        # Everything queued, as a Follower reads (loop.drain): a poll per event cost
        # this process 3.4 us of the 6.7 us it spent per event, on the cores the
        # store and the producers share.
        for frames in drain(sub, multipart=True):  # [topic, envelope(, seal)]
            now = time.time_ns()
            e = ev.decode(frames[1])
            if e.job == tag:
                got += 1
                lat.append((now - e.sent_ns) / 1e6)
    probe_ctx_app.close()
    sub.close(0)
    ctx.destroy(0)
    out.put({"got": got, "sub": lat})


def _phase(paths: Paths, tag: str, producers: int, per_producer: int, rate: int, timeout: float):
    mpctx = mp.get_context("fork")
    out: mp.Queue = mpctx.Queue()
    sub_out: mp.Queue = mpctx.Queue()
    ready = mpctx.Event()
    sub = mpctx.Process(
        target=_subscriber, args=(paths, tag, ready, sub_out, producers * per_producer, timeout)
    )
    sub.start()
    if not ready.wait(30):
        sub.kill()
        raise CocodeError("bench: the subscriber never saw the bus; is cocode healthy? (`cocode ps`)")
    procs = [
        mpctx.Process(target=_producer, args=(paths, tag, i, per_producer, rate, out))
        for i in range(producers)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=timeout) for _ in procs]
    wall = time.perf_counter() - t0
    sub_result = _result_of(sub, sub_out, timeout + 5)
    for p in procs + [sub]:
        p.join(5)
    ack = [x * 1000 for r in results for x in r["ack"]]
    return wall, ack, sub_result


def _result_of(proc, queue, timeout: float) -> dict:
    """What a bench process put on its queue; an error at once if it died without."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return queue.get(timeout=0.5)
        except Exception:  # queue.Empty
            if not proc.is_alive() and queue.empty():
                raise CocodeError(f"bench: the subscriber died (exit {proc.exitcode}) without a result") from None
            if time.monotonic() > deadline:
                raise CocodeError(f"bench: the subscriber gave no result in {timeout:.0f} s") from None


def verify(paths: Paths, tag: str, producers: int, per_producer: int) -> tuple[int, int]:
    """(lost, duplicated) bench ticks of this run, read back from the log."""
    conn = eventlog.open_for_reading(paths.db)
    seen: dict[str, list[int]] = {}
    for (payload,) in conn.execute("SELECT payload FROM events WHERE job = ?", (tag,)):
        e = ev.decode(payload)
        seen.setdefault(e.agent, []).append(e.n)
    conn.close()
    lost = dup = 0
    for i in range(producers):
        ns = seen.get(f"p{i}", [])
        dup += len(ns) - len(set(ns))
        lost += per_producer - len(set(ns))
    return lost, dup


def sweep(paths: Paths, tag: str, count: int, producers: list[int], payload_size: int, say) -> list[dict]:
    """Acked events/s for each number of producers, each against raw SQLite just before."""
    points = []
    for n in producers:
        raw = raw_sqlite_rows_per_s(paths.home, min(count, 200_000), payload_size)
        per = count // n
        say(f"throughput vs producers: {per * n} events from {n} producer(s) ...")
        wall, _, _ = _phase(paths, f"{tag}-x{n}", n, per, 0, timeout=600)
        lost, dup = verify(paths, f"{tag}-x{n}", n, per)
        points.append({"producers": n, "events_per_s": round(per * n / wall), "raw_rows_per_s": round(raw),
                       "ratio": round(per * n / wall / raw, 3), "count": per * n, "lost": lost, "duplicated": dup})
    return points


def run(paths: Paths, count: int = 200_000, producers: int = 2, rate: int = 1000,
        progress: bool = True, sweep_producers: list[int] | None = None) -> dict:
    if not is_running(paths):
        raise CocodeError(f"cocode is not running in {paths.root}; start it with `cocode up --detach`")
    if count < max([producers, *(sweep_producers or [])]) or min([producers, *(sweep_producers or [])]) < 1:
        raise CocodeError("bench events: --count must be at least --producers (and --sweep's largest),"
                          " and each at least 1", 2)
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    per = count // producers
    payload_size = len(ev.encode(ev.BenchTick(n=per, sent_ns=time.time_ns(), job="x" * 16, agent="p0", seq=per)))
    say(f"raw SQLite executemany baseline ({min(count, 200_000)} rows, {payload_size} B) ...")
    raw = raw_sqlite_rows_per_s(paths.home, min(count, 200_000), payload_size)
    tag = f"bench-{os.getpid()}-{int(time.time())}"
    say(f"throughput: {per * producers} events from {producers} producers ...")
    wall, ack, sub = _phase(paths, tag, producers, per, 0, timeout=600)
    lat_tag = tag + "-lat"
    lat_count = max(1, min(rate * 3, 5000))
    say(f"latency: {lat_count} events at {rate}/s ...")
    _, lat_ack, lat_sub = _phase(paths, lat_tag, 1, lat_count, rate, timeout=120)
    say("raw SQLite: 1,000 one-row commits (the disk's share of latency) ...")
    commit_ms = raw_commit_ms(paths.home, 1000, payload_size)
    lost, dup = verify(paths, tag, producers, per)
    lost2, dup2 = verify(paths, lat_tag, 1, lat_count)
    points = sweep(paths, tag, count, sweep_producers, payload_size, say) if sweep_producers else []
    events_per_s = per * producers / wall
    return {
        "throughput": points,
        "events_per_s": round(events_per_s),
        "raw_rows_per_s": round(raw),
        "ratio": round(events_per_s / raw, 3),
        "ack_p50_ms": round(percentile(lat_ack, 50), 3),
        "ack_p99_ms": round(percentile(lat_ack, 99), 3),
        "sub_p50_ms": round(percentile(lat_sub["sub"], 50), 3),
        "sub_p99_ms": round(percentile(lat_sub["sub"], 99), 3),
        "raw_commit_p50_ms": round(percentile(commit_ms, 50), 3),
        "raw_commit_p99_ms": round(percentile(commit_ms, 99), 3),
        "flat_out_ack_p50_ms": round(percentile(ack, 50), 3),
        "flat_out_ack_p99_ms": round(percentile(ack, 99), 3),
        "flat_out_sub_received": sub["got"],
        "count": per * producers,
        "producers": producers,
        "rate": rate,
        "lost": lost + lost2 + sum(p["lost"] for p in points),
        "duplicated": dup + dup2 + sum(p["duplicated"] for p in points),
    }


def report(r: dict) -> str:
    return "\n".join([
        f"acked durable events/s  {r['events_per_s']:>10,}   ({r['count']:,} events, {r['producers']} producers)",
        f"raw SQLite rows/s       {r['raw_rows_per_s']:>10,}   (executemany, 100/commit, WAL, synchronous=FULL)",
        f"ratio                   {r['ratio']:>10.2f}",
        f"at {r['rate']}/s: append->ack      p50 {r['ack_p50_ms']:.3f} ms  p99 {r['ack_p99_ms']:.3f} ms",
        f"at {r['rate']}/s: append->sub      p50 {r['sub_p50_ms']:.3f} ms  p99 {r['sub_p99_ms']:.3f} ms",
        f"raw one-row commit      p50 {r['raw_commit_p50_ms']:.3f} ms  p99 {r['raw_commit_p99_ms']:.3f} ms"
        " (same disk: the floor under append->sub)",
        f"flat out: append->ack   p50 {r['flat_out_ack_p50_ms']:.1f} ms  p99 {r['flat_out_ack_p99_ms']:.1f} ms;"
        f" subscriber saw {r['flat_out_sub_received']:,} live (the rest is in the log: PUB drops under load)",
        *[f"{p['producers']:>2} producer(s): {p['events_per_s']:>10,} events/s  raw SQLite {p['raw_rows_per_s']:>10,}"
          f" rows/s  ratio {p['ratio']:.2f}" for p in r.get("throughput", [])],
        f"verify: lost {r['lost']}, duplicated {r['duplicated']}",
    ])
