"""`cocode bench logs`: the log pipeline against bare baselines, in one run, on a
fresh repository with cocode started there.

- Latency: 5 agents each write 1 MB/s of ~1 KB lines, every line stamped with the
  time of its write; the real `cocode tail JOB a1 ... a5 -f` runs as a
  subprocess, and each line it prints is timed when this process reads it
  (agent -> pipe -> worker: redaction, spool -> collector: file, bus -> tail ->
  pipe -> here), past the warm-up (bench/stamped.py). Target p99 < 10 ms.
- Throughput: 5 runs' chunks (4 KB, as shippers send them) pushed straight into
  the collector through its socket, from the first send to the last ack (stored
  and fdatasync'ed, lz4 rotations included), against `cat > file` of the same
  bytes through a pipe. Target >= 50 MB/s.
- Memory: the collector's RSS right after that, its 5 runs' ring buffers full.
  The repository caps buffers at 10 MB (log_max_buffer_mb: 10), the case the
  target (<= 80 MiB) names; otherwise these verbose runs would grow theirs.
- With --format: the same latency again for 5 agents writing claude `stream-json`
  (format claude-stream-json, made readable in the worker), in the same run as the
  text agents, and its added p99; and the JSON path's throughput: JSON input
  formatted and redacted as a shipper does, then pushed into the collector, in MB/s
  of JSON input, against the same bytes of text through redaction and the collector.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from cocode import updown
from cocode.core import wire
from cocode.core.sockets import ZMQ_DEFAULT_HWM, dealer
from cocode.bench import cdf_points, percentile, stamped
from cocode.client import append_one
from cocode.configload import load_config
from cocode.gitops.runner import init_repo
from cocode.paths import Paths
from cocode.jobs.submit import Issue, build_job

AGENTS = [f"a{i}" for i in range(1, 6)]
JSON_AGENTS = [f"f{i}" for i in range(1, 6)]
# `rate` MB/s for `seconds`: every 5 ms, lines of 1000 bytes in one write, each
# stamped with the time just before that write.
WRITER = r"""
import os, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
as_json = len(sys.argv) > 3 and sys.argv[3] == "json"
line_len, period = 1000, 0.005
per_tick = max(1, int(rate * 1e6 * period / line_len))
pad = b"x" * line_len
head = b'{"type":"assistant","message":{"id":"msg_%d","model":"m","content":[{"type":"text","text":"'
tail = b'"}],"usage":{"input_tokens":10,"output_tokens":0}},"session_id":"s"}\n'
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < seconds:
    stamp = b"T%d " % time.time_ns()
    if as_json:  # claude stream-json assistant lines, ~1000 bytes each
        start = head % n
        line = start + (stamp + pad)[: line_len - len(start) - len(tail)] + tail
    else:
        line = (stamp + pad)[: line_len - 1] + b"\n"
    os.write(1, line * per_tick)
    n += 1
    delay = t0 + n * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


def writer_repo(tmp: Path, rate: float, seconds: float) -> Paths:
    """A fresh repository (tmp/repo) whose agents run WRITER (tmp/writer.py): AGENTS
    writing text, JSON_AGENTS claude stream-json, `rate` MB/s each for `seconds`."""
    root, script = tmp / "repo", tmp / "writer.py"
    root.mkdir(parents=True)
    init_repo(root, "bench", name="bench", email="bench@cocode.invalid")
    paths = Paths(root)
    paths.home.mkdir(mode=0o700)
    script.write_text(WRITER)
    # sandbox off: the agents write to files outside their workspace (hidden by the
    # sandbox) or run from /tmp; `cocode bench sandbox` measures the sandbox itself.
    lines = ["sandbox: off", "performance:", "  max_concurrent_agents: 5", "  log_max_buffer_mb: 10", "agents:"]
    for name in AGENTS:
        lines += [f"  {name}:", f"    command: ['{sys.executable}', '{script}', '{rate}', '{seconds}']"]
    for name in JSON_AGENTS:
        lines += [f"  {name}:", f"    command: ['{sys.executable}', '{script}', '{rate}', '{seconds}', json]",
                  "    format: claude-stream-json"]
    paths.config.write_text("\n".join(lines) + "\n")
    return paths


def run(rate: float = 1.0, seconds: float = 10.0, total_mb: int = 200, progress: bool = True,
        fmt: bool = False) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-logs-"))
    load = os.getloadavg()[0]
    try:
        paths = writer_repo(tmp, rate, seconds)
        updown.start_detached(paths)
        try:
            say(f"throughput: {total_mb} MB into the collector, 5 runs ...")
            mb_s = collector_throughput(paths, total_mb)
            # Now, with exactly those 5 runs in memory and their buffers full, once
            # the burst has settled (the collector trims freed heap every 2 s).
            time.sleep(3.0)
            rss = psutil.Process(int((paths.run / "logs.pid").read_text())).memory_info().rss / 2**20
            say(f"latency: {len(AGENTS)} agents writing {rate:g} MB/s each for {seconds:g} s, read by `cocode tail -f` ...")
            lat = tail_latency(paths, seconds)
            if fmt:
                say(f"latency: {len(JSON_AGENTS)} agents writing {rate:g} MB/s of stream-json each, formatted ...")
                fmt_lat = tail_latency(paths, seconds, JSON_AGENTS)
                say(f"throughput: {total_mb} MB of stream-json formatted, redacted, into the collector ...")
                json_tp = json_throughput(paths, total_mb)
        finally:
            updown.stop(paths)
        say("baseline: the same bytes through `cat > file` ...")
        cat_s = cat_throughput(tmp, total_mb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    extra = {}
    if fmt:
        extra = {
            "format_tail_p50_ms": round(percentile(fmt_lat, 50), 2),
            "format_tail_p99_ms": round(percentile(fmt_lat, 99), 2),
            "format_tail_samples": len(fmt_lat),
            "format_added_p99_ms": round(percentile(fmt_lat, 99) - percentile(lat, 99), 2),
            **json_tp,
        }
    return {
        **extra,
        "tail_p50_ms": round(percentile(lat, 50), 2),
        "tail_p99_ms": round(percentile(lat, 99), 2),
        "tail_samples": len(lat),
        "samples": {"tail_ms": cdf_points(lat)},  # for `bench plot`'s CDF
        "collector_mb_per_s": round(mb_s, 1),
        "cat_mb_per_s": round(cat_s, 1),
        "ratio": round(mb_s / cat_s, 3) if cat_s else None,
        "collector_rss_mib": round(rss, 1),
        "agents": len(AGENTS),
        "agent_mb_per_s": rate,
        # These are shared 2-vCPU machines: other work on them shows in the tail.
        "load_avg_1m": round(load, 2),
    }


def tail_latency(paths: Paths, seconds: float, agents: list[str] = AGENTS) -> list[float]:
    config = load_config(paths.config)
    event, _ = build_job(paths, config, Issue("bench logs", "bench logs"), agents)
    append_one(paths, event)
    return stamped.tail_latency(paths, event.job, agents, seconds)


def chunk_source(total: int) -> bytes:
    line = b"2025-01-01T00:00:00.000Z INFO worker.py:123 processed item %08d in %3d ms status=ok\n"
    block = b"".join(line % (i, i % 997) for i in range(60_000))
    return (block * (total // len(block) + 1))[:total]


def json_source(total: int) -> bytes:
    """claude stream-json as a busy session writes it: text, tool calls, tool results."""
    import json

    block = []
    for i in range(2000):
        block.append({"type": "assistant", "message": {"id": f"msg_{i}", "content": [
            {"type": "text", "text": f"Step {i}: looking at the failing test " + "and its fixture " * 20}],
            "usage": {"input_tokens": 1000 + i, "output_tokens": 50}}, "session_id": "s"})
        block.append({"type": "assistant", "message": {"id": f"msg_{i}", "content": [
            {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": f"pytest -q tests/test_{i}.py"}}],
            "usage": {"input_tokens": 1000 + i, "output_tokens": 50}}, "session_id": "s"})
        block.append({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{i}", "content": "....F.\n" * 40, "is_error": False}]},
            "session_id": "s"})
    data = "".join(json.dumps(o) + "\n" for o in block).encode()
    return (data * (total // len(data) + 1))[:total]


def shipper_pass(data: bytes, fmt: str) -> tuple[bytes, float]:
    """What a shipper does to a run's stdout before spooling: format (unless text),
    then redact, in 4 KB reads. Returns the output and the seconds it took."""
    from cocode.logs import formats, redact

    formatter = formats.Formatter(fmt) if fmt != "text" else None
    redactor = redact.Redactor()
    out = bytearray()
    t0 = time.perf_counter()
    view = memoryview(data)
    for i in range(0, len(data), 4096):
        piece = bytes(view[i : i + 4096])
        if formatter is not None:
            piece = formatter.feed(piece)
        out += redactor.feed(piece)
    out += redactor.close()
    return bytes(out), time.perf_counter() - t0


def json_throughput(paths: Paths, total_mb: int) -> dict:
    """MB/s of input from an agent's stdout to stored in the collector: stream-json
    (formatted) against text (the same size), one after the other in this run."""
    total = total_mb * 1_000_000
    result = {}
    for name, data, fmt in (("text", chunk_source(total), "text"),
                            ("json", json_source(total), "claude-stream-json")):
        shipped, pass_s = shipper_pass(data, fmt)
        collect_s = (len(shipped) / 1e6) / collector_throughput(paths, len(shipped) / 1e6, job=f"bench{name}",
                                                                data=shipped)
        result[f"{name}_shipper_mb_per_s"] = round(len(data) / 1e6 / pass_s, 1)
        result[f"{name}_input_mb_per_s"] = round(len(data) / 1e6 / (pass_s + collect_s), 1)
        result[f"{name}_shipped_ratio"] = round(len(shipped) / len(data), 3)
    return result


def collector_throughput(paths: Paths, total_mb: float, runs: int = 5, window: int = 4 << 20,
                         job: str = "benchtp", data: bytes | None = None) -> float:
    """Push chunks for `runs` runs round-robin, each with `window` bytes unacked at
    most (as a shipper does); MB/s from the first send to the last ack."""
    per_run = int(total_mb * 1_000_000) // runs
    data = chunk_source(per_run) if data is None else data[:per_run]
    ctx = zmq.Context.instance()
    sock = dealer(ctx, paths.endpoint("logs"), sndhwm=4000, rcvhwm=ZMQ_DEFAULT_HWM)
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
    lines = []
    if "format_tail_p99_ms" in r:
        lines = [
            f"stream-json -> cocode tail   p50 {r['format_tail_p50_ms']:.2f} ms  p99 {r['format_tail_p99_ms']:.2f} ms"
            f"   ({r['format_tail_samples']} lines; formatting adds {r['format_added_p99_ms']:+.2f} ms p99"
            " against the text agents below; target < 1 ms)",
            f"JSON input -> collector      {r['json_input_mb_per_s']:.1f} MB/s of JSON   (format+redact "
            f"{r['json_shipper_mb_per_s']:.1f} MB/s, shipped {r['json_shipped_ratio']:.2f} of its size; target >= 50)",
            f"text input -> collector      {r['text_input_mb_per_s']:.1f} MB/s of text   (redact "
            f"{r['text_shipper_mb_per_s']:.1f} MB/s; the baseline)",
        ]
    return "\n".join(lines + [
        f"agent write -> cocode tail   p50 {r['tail_p50_ms']:.2f} ms  p99 {r['tail_p99_ms']:.2f} ms"
        f"   ({r['agents']} agents x {r['agent_mb_per_s']:g} MB/s, {r['tail_samples']} lines; target p99 < 10 ms)",
        f"collector throughput         {r['collector_mb_per_s']:.1f} MB/s   (target >= 50 MB/s)",
        f"cat > file, same bytes       {r['cat_mb_per_s']:.1f} MB/s",
        f"ratio                        {r['ratio']:.3f}",
        f"collector RSS, 5 full 10 MB buffers  {r['collector_rss_mib']:.1f} MiB   (target <= 80 MiB)",
        f"host load average at the start  {r['load_avg_1m']:.2f}",
    ])
