"""`cocode bench logs`: the log pipeline against bare baselines, in one run, on a
fresh repository with cocode started there.

- Latency: 5 agents each write 1 MB/s of ~1 KB lines, every line stamped with the
  time of its write; the real `cocode tail JOB a1 ... a5 -f` runs as a
  subprocess, and each line it prints is timed when this process reads it
  (agent -> pipe -> worker: redaction, spool -> collector: file, bus -> tail ->
  pipe -> here). Target p99 < 10 ms.
- Throughput: 5 runs' chunks (4 KB, as shippers send them) pushed straight into
  the collector through its socket, from the first send to the last ack (stored
  and fdatasync'ed, lz4 rotations included), against `cat > file` of the same
  bytes through a pipe. Target >= 50 MB/s.
- Memory: the collector's RSS right after that, its 5 runs' ring buffers full.
  The repository caps buffers at 10 MB (log_max_buffer_mb: 10), the case the
  target (<= 80 MiB) names; otherwise these verbose runs would grow theirs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from cocode import supervisor
from cocode.core import wire
from cocode.bench import percentile
from cocode.client import append_one
from cocode.config import load_config
from cocode.gitops.runner import init_repo
from cocode.paths import Paths
from cocode.jobs.submit import Issue, build_job

AGENTS = [f"a{i}" for i in range(1, 6)]
# `rate` MB/s for `seconds`: every 5 ms, lines of 1000 bytes in one write, each
# stamped with the time just before that write.
WRITER = r"""
import os, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
line_len, period = 1000, 0.005
per_tick = max(1, int(rate * 1e6 * period / line_len))
pad = b"x" * line_len
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < seconds:
    stamp = b"T%d " % time.time_ns()
    line = (stamp + pad)[: line_len - 1] + b"\n"
    os.write(1, line * per_tick)
    n += 1
    delay = t0 + n * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""
STAMP = re.compile(rb"T(\d{19}) ")


def make_repo(root: Path) -> Paths:
    root.mkdir(parents=True)
    init_repo(root, "bench", name="bench", email="bench@cocode.invalid")
    paths = Paths(root)
    paths.home.mkdir(mode=0o700)
    return paths


def write_config(paths: Paths, script: Path, rate: float, seconds: float) -> None:
    lines = ["performance:", "  max_concurrent_agents: 5", "  log_max_buffer_mb: 10", "agents:"]
    for name in AGENTS:
        lines += [f"  {name}:", f"    command: ['{sys.executable}', '{script}', '{rate}', '{seconds}']"]
    paths.config.write_text("\n".join(lines) + "\n")


def run(rate: float = 1.0, seconds: float = 10.0, total_mb: int = 200, progress: bool = True) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-logs-"))
    load = os.getloadavg()[0]
    try:
        paths = make_repo(tmp / "repo")
        script = tmp / "writer.py"
        script.write_text(WRITER)
        write_config(paths, script, rate, seconds)
        supervisor.start_detached(paths)
        try:
            say(f"throughput: {total_mb} MB into the collector, 5 runs ...")
            mb_s = collector_throughput(paths, total_mb)
            # Now, with exactly those 5 runs in memory and their buffers full, once
            # the burst has settled (the collector trims freed heap every 2 s).
            time.sleep(3.0)
            rss = psutil.Process(int((paths.run / "logs.pid").read_text())).memory_info().rss / 2**20
            say(f"latency: {len(AGENTS)} agents writing {rate:g} MB/s each for {seconds:g} s, read by `cocode tail -f` ...")
            lat = tail_latency(paths, seconds)
        finally:
            supervisor.stop(paths)
        say("baseline: the same bytes through `cat > file` ...")
        cat_s = cat_throughput(tmp, total_mb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "tail_p50_ms": round(percentile(lat, 50), 2),
        "tail_p99_ms": round(percentile(lat, 99), 2),
        "tail_samples": len(lat),
        "collector_mb_per_s": round(mb_s, 1),
        "cat_mb_per_s": round(cat_s, 1),
        "ratio": round(mb_s / cat_s, 3) if cat_s else None,
        "collector_rss_mib": round(rss, 1),
        "agents": len(AGENTS),
        "agent_mb_per_s": rate,
        # These are shared 2-vCPU machines: other work on them shows in the tail.
        "load_avg_1m": round(load, 2),
    }


def tail_latency(paths: Paths, seconds: float) -> list[float]:
    config = load_config(paths.config)
    event, _ = build_job(paths, config, Issue("bench logs", "bench logs"), AGENTS)
    append_one(paths, event)
    tail = subprocess.Popen(
        [sys.executable, "-m", "cocode", "-C", str(paths.root), "tail", event.job, *AGENTS, "-f", "-n", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    samples: list[float] = []
    # Start-up is not the steady state (the worker prepares 5 worktrees in threads
    # and imports pygit2 meanwhile): measure from 1 s after the last agent began.
    seen: set[bytes] = set()
    warm_until = None
    deadline = time.monotonic() + seconds + 30
    try:
        for line in tail.stdout:
            now = time.time_ns()
            m = STAMP.search(line)
            if not m:
                continue
            if warm_until is None:
                seen.add(line.split(b" ", 1)[0])
                if len(seen) == len(AGENTS):
                    warm_until = now + 1_000_000_000
            elif now > warm_until:
                samples.append((now - int(m.group(1))) / 1e6)
            if time.monotonic() > deadline:
                break
    finally:
        if tail.poll() is None:
            tail.terminate()
        tail.wait(10)
    return samples


def chunk_source(total: int) -> bytes:
    line = b"2025-01-01T00:00:00.000Z INFO worker.py:123 processed item %08d in %3d ms status=ok\n"
    block = b"".join(line % (i, i % 997) for i in range(60_000))
    return (block * (total // len(block) + 1))[:total]


def collector_throughput(paths: Paths, total_mb: int, runs: int = 5, window: int = 4 << 20) -> float:
    """Push chunks for `runs` runs round-robin, each with `window` bytes unacked at
    most (as a shipper does); MB/s from the first send to the last ack."""
    per_run = total_mb * 1_000_000 // runs
    data = chunk_source(per_run)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 4000)
    sock.connect(paths.endpoint("logs"))
    job = "benchtp"
    sent = [0] * runs
    acked = [0] * runs
    names = [f"tp{i}" for i in range(runs)]
    index = {n: i for i, n in enumerate(names)}
    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    progress = time.monotonic()
    try:
        while min(acked) < per_run and time.monotonic() < deadline:
            for i in range(runs):
                while sent[i] < per_run and sent[i] - acked[i] < window:
                    piece = data[sent[i] : sent[i] + 4096]
                    msg = wire.LogChunk(job=job, agent=names[i], stream="stdout", offset=sent[i], data=piece)
                    try:
                        sock.send(wire.encoder.encode(msg), zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    sent[i] += len(piece)
            if sock.poll(50):
                while True:
                    try:
                        reply = wire.logs_decoder.decode(sock.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    if isinstance(reply, wire.LogAck) and reply.agent in index:
                        i = index[reply.agent]
                        if reply.offset > acked[i]:
                            acked[i] = reply.offset
                            progress = time.monotonic()
            if time.monotonic() - progress > 1.0:  # as a shipper: go back after 1 s without acks
                progress = time.monotonic()
                for i in range(runs):
                    sent[i] = acked[i]
        elapsed = time.perf_counter() - t0
    finally:
        sock.close(0)
    if min(acked) < per_run:
        raise RuntimeError(f"the collector acked {sum(acked)} of {per_run * runs} bytes in 120 s")
    return per_run * runs / 1e6 / elapsed


def cat_throughput(tmp: Path, total_mb: int) -> float:
    data = chunk_source(total_mb * 1_000_000)
    out = tmp / "cat.out"
    t0 = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", f"cat > '{out}'"], stdin=subprocess.PIPE)
    view = memoryview(data)
    for i in range(0, len(data), 65536):
        proc.stdin.write(view[i : i + 65536])
    proc.stdin.close()
    proc.wait()
    elapsed = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    return len(data) / 1e6 / elapsed


def report(r: dict) -> str:
    return "\n".join([
        f"agent write -> cocode tail   p50 {r['tail_p50_ms']:.2f} ms  p99 {r['tail_p99_ms']:.2f} ms"
        f"   ({r['agents']} agents x {r['agent_mb_per_s']:g} MB/s, {r['tail_samples']} lines; target p99 < 10 ms)",
        f"collector throughput         {r['collector_mb_per_s']:.1f} MB/s   (target >= 50 MB/s)",
        f"cat > file, same bytes       {r['cat_mb_per_s']:.1f} MB/s",
        f"ratio                        {r['ratio']:.3f}",
        f"collector RSS, 5 full 10 MB buffers  {r['collector_rss_mib']:.1f} MiB   (target <= 80 MiB)",
        f"host load average at the start  {r['load_avg_1m']:.2f}",
    ])
