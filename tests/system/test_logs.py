"""The log pipeline (issue 4) from outside: real agents, the real worker, collector,
bus and CLI, real files; nothing mocked.

Agents are tests/agents/logs_agent.py in its modes; `expected()` there gives the
exact bytes each mode writes, to compare what was stored against.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lz4.frame
import psutil
import pytest
import zmq

from cocode import client
from cocode.configload import load_config
from cocode.core import wire
from cocode.logs.files import RunFiles
from cocode.logs.shipper import Shipper
from cocode.paths import Paths
from support import agent_module, cocode, down, heavy, make_repo, up, wait_until, write_config

logs_agent = agent_module("logs_agent")
AGENT = Path(logs_agent.__file__)

TOKEN = logs_agent.TOKEN
AGENTS = {
    "bulk30": ["bulk", "30"],
    "bulk5": ["bulk", "5"],
    "bulk8": ["bulk", "8"],
    "stream": ["stream", "12", "4"],
    "lines_a": ["lines", "2000", "2.5"],
    "lines_b": ["lines", "2000", "2.5"],
    "secret": ["secret"],
    "weird": ["weird"],
}


@pytest.fixture
def repo(tmp_path: Path, limits: dict):
    """A repository whose config names the log agents, written before `running` starts."""
    path = make_repo(tmp_path / "repo")
    config = {"agents": {name: {"command": ["{python}", str(AGENT), *args]} for name, args in AGENTS.items()}}
    if limits:
        config["performance"] = limits
    write_config(path, config)
    return path


# ------------------------------------------------------------------------------------ helpers


def submit(repo: Path, *agents: str) -> str:
    args = [a for name in agents for a in ("--agent", name)]
    proc = cocode(repo, "submit", "--text", "log test", *args, "--json", check=True)
    return json.loads(proc.stdout)["job"]


def wait_final(paths: Paths, job: str, timeout: float = 40.0) -> None:
    def done():
        view = client.current_state(paths).jobs.get(job)
        return view is not None and view.done

    wait_until(done, timeout, what=f"job {job} to finish", interval=0.2)


def wait_spool_empty(paths: Paths, timeout: float = 20.0) -> None:
    """Every byte acked by the collector: the worker deleted its spool files."""
    spool = paths.home / "spool"
    try:
        wait_until(lambda: not list(spool.glob("*.spool")), timeout, what="the spool to drain")
    except AssertionError as err:
        raise AssertionError(f"{err}: {sorted(p.name for p in spool.glob('*'))}") from None


def retained(paths: Paths, job: str, agent: str) -> tuple[bytes, list[Path], bytes]:
    """(what `lz4 -d` makes of the rotated files, concatenated in order; those files;
    the live file)."""
    files = RunFiles(paths.logs, job, agent)
    manifest = files.read_manifest()
    rotated = [paths.logs / r.file for r in manifest.rotated]
    parts = []
    for f in rotated:
        out = subprocess.run(["lz4", "-d", "-c", str(f)], capture_output=True, timeout=30, check=True)
        parts.append(out.stdout)
    return b"".join(parts), rotated, files.live.read_bytes()


def logs_of(repo: Path, job: str, agent: str) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "cocode", "-C", str(repo), "logs", job, agent],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pidfile_pid(paths: Paths, name: str) -> int:
    return int((paths.run / f"{name}.pid").read_text())


needs_lz4 = pytest.mark.skipif(shutil.which("lz4") is None, reason="the lz4 command-line tool is not installed")


# ---------------------------------------------------------------------------------- acceptance


@heavy
@needs_lz4
def test_30_mb_rotates_to_lz4_files_that_hold_the_output_exactly(running, repo):
    job = submit(repo, "bulk30")
    wait_final(running, job)
    wait_spool_empty(running)
    expected = logs_agent.expected("bulk", "30")
    rotated_bytes, rotated, live = retained(running, job, "bulk30")
    assert 1 <= len(rotated) <= 3, rotated
    assert sorted(p.name for p in running.logs.glob("agent_*.lz4")) == sorted(p.name for p in rotated)
    for f in rotated:
        assert f.name.startswith(f"agent_{job}-bulk30_") and f.name.endswith(".log.lz4")
        assert f.stat().st_size < 10 * 2**20 / 2  # compressed, not copied
    # Nothing dropped at 30 MB with 3 kept: rotated + live is the output, exactly.
    assert rotated_bytes + live == expected
    assert logs_of(repo, job, "bulk30") == expected
    kinds = cocode(repo, "events", "--type", "log_rotated", "--json", check=True).stdout.splitlines()
    assert len(kinds) == len(rotated)


@needs_lz4
@pytest.mark.parametrize("limits", [{"log_buffer_size_mb": 1, "rotated_logs_keep": 2}])
def test_rotation_keeps_the_newest_files_and_a_verbose_agent_gets_a_bigger_buffer(running, repo):
    job = submit(repo, "bulk5")
    wait_final(running, job)
    wait_spool_empty(running)
    expected = logs_agent.expected("bulk", "5")
    manifest = RunFiles(running.logs, job, "bulk5").read_manifest()
    rotated_bytes, rotated, live = retained(running, job, "bulk5")
    assert len(rotated) == 2 and len(list(running.logs.glob("agent_*.lz4"))) == 2
    first_kept = manifest.rotated[0].start
    assert first_kept > 0
    assert rotated_bytes + live == expected[first_kept:]  # exactly the newest part
    assert logs_of(repo, job, "bulk5") == expected[first_kept:]
    # 5 MB in about a second is far over 1 MB/min: the 1 MB buffer grew.
    grown = [json.loads(line) for line in
             cocode(repo, "events", "--type", "buffer_expanded", "--json", check=True).stdout.splitlines()]
    assert grown and grown[0]["agent"] == "bulk5" and grown[0]["size_mb"] == 2.0
    # A late reader still gets a deep backlog from memory: more than one segment's worth.
    tail = cocode(repo, "tail", job, "-n", "100000", check=True)
    assert len(tail.stdout.encode()) > 2 * 2**20


def test_a_token_never_reaches_a_file_the_bus_or_tail(running, repo):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(running.endpoint("bus"))
    sub.setsockopt(zmq.SUBSCRIBE, b"")  # everything: logs, events, metrics
    seen: list[bytes] = []
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            if sub.poll(50):
                seen.extend(sub.recv_multipart())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        # Subscribed once anything arrives (heartbeats come every second).
        wait_until(lambda: seen, 10, what="the first message on the bus")
        job = submit(repo, "secret")
        wait_final(running, job)
        wait_spool_empty(running)
        tail = cocode(repo, "tail", job, check=True)
        tail_json = cocode(repo, "tail", job, "--json", check=True)
        # Whatever the collector and the store published before now is on its way: their
        # next heartbeats (each on the same socket, behind it) prove it has all arrived.
        mark = len(seen)
        wait_until(lambda: {b"hb.logs", b"hb.store"} <= set(seen[mark:]), 10,
                   what="the next heartbeats of the collector and the store")
    finally:
        stop.set()
        listener.join(5)
        sub.close(0)
    token = TOKEN.encode()
    assert "[REDACTED:github-token]" in tail.stdout and TOKEN not in tail.stdout
    assert TOKEN not in tail_json.stdout
    assert any(b"[REDACTED:github-token]" in frame for frame in seen), "no log chunk seen on the bus"
    assert b"metric.logs" in seen, "the collector published no metrics"
    assert not [f for f in seen if token in f]
    leaks = []
    for path in running.home.rglob("*"):
        if path.is_file() and not path.is_socket():
            data = path.read_bytes()
            if path.suffix == ".lz4":
                data = lz4.frame.decompress(data)
            if token in data or TOKEN[4:20].encode() in data:
                leaks.append(path)
    assert not leaks, leaks
    # Split across writes (with a pause) and on stderr after `Bearer `: caught too.
    stored = logs_of(repo, job, "secret")
    assert stored.count(b"[REDACTED:github-token]") == 3 and b"Bearer [REDACTED:bearer]" in stored


def test_tail_follow_started_half_way_shows_every_line_once(running, repo):
    job = submit(repo, "lines_a", "lines_b")
    files = RunFiles(running.logs, job, "lines_a")
    wait_until(lambda: files.live.exists() and files.live.read_bytes().count(b"\n") >= 1000, 20,
               what="half of lines_a's 2000 lines", interval=0.02)
    proc = cocode(repo, "tail", job, "-f", timeout=40)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    want = logs_agent.expected("lines", "2000").decode().splitlines()
    for agent in ("lines_a", "lines_b"):
        prefix = f"{agent} | "
        got = [line[len(prefix):] for line in out if line.startswith(prefix)]
        body = [line for line in got if not line.startswith("-- ")]
        assert body == want, f"{agent}: {len(body)} lines, first difference at " \
            f"{next((i for i, (a, b) in enumerate(zip(body, want)) if a != b), min(len(body), len(want)))}"
        assert got[-1].startswith("-- failed") or got[-1].startswith("-- ready"), got[-1]


@heavy
@needs_lz4
def test_kill_9_of_the_collector_mid_stream_loses_nothing(running, repo):
    job = submit(repo, "stream")
    # A reader following throughout: it must see every line once across both restarts.
    # -n larger than the output: the agent may be writing before this reader starts,
    # and a tail shows only the last N lines of what came before it.
    follower = subprocess.Popen([sys.executable, "-m", "cocode", "-C", str(repo), "tail", job, "-f",
                                 "-n", "10000000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        files = RunFiles(running.logs, job, "stream")
        wait_until(lambda: files.live.exists() and files.live.stat().st_size > 2 * 2**20, 20,
                   what="2 MiB of the stream stored", interval=0.02)
        first = pidfile_pid(running, "logs")
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:  # by the supervisor
            try:
                second = pidfile_pid(running, "logs")
            except (OSError, ValueError):
                return False
            return second != first and psutil.pid_exists(second)

        wait_until(restarted, 10, what="the collector to be restarted", interval=0.05)
        time.sleep(1.0)  # pacing: the second kill lands later in the stream
        os.kill(pidfile_pid(running, "logs"), signal.SIGKILL)  # and once more, later in the stream
        wait_final(running, job)
        wait_spool_empty(running, timeout=30)
        expected = logs_agent.expected("stream", "12", "4")
        rotated_bytes, rotated, live = retained(running, job, "stream")
        assert rotated_bytes + live == expected
        assert logs_of(repo, job, "stream") == expected
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate(timeout=5)
    assert follower.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith(b"-- failed"), lines[-1]
    assert lines[:-1] == expected.splitlines()


def test_bad_bytes_are_stored_faithfully_and_shown_safely(running, repo):
    job = submit(repo, "weird")
    wait_final(running, job)
    wait_spool_empty(running)
    expected = logs_agent.expected("weird")
    assert logs_of(repo, job, "weird") == expected
    proc = cocode(repo, "tail", job, "-n", "100", check=True)
    shown = proc.stdout
    assert all(c >= " " or c in "\n\t" for c in shown), "a control character reached the terminal"
    assert "progress: 100%" in shown and "progress: 10%" not in shown  # a \r bar shows its last state
    assert "a\\x00b\\x00c" in shown and "\\x1b[31mred" in shown
    assert "invalid utf-8: \ufffd" in shown
    assert "after the long line" in shown
    jl = [json.loads(line) for line in cocode(repo, "tail", job, "--json", check=True).stdout.splitlines()]
    assert jl[0] == {"job": job, "agent": "weird", "offset": 0, "attempt": 1, "line": "valid line"}
    assert psutil.pid_exists(pidfile_pid(running, "logs"))


def test_a_stopped_collector_never_blocks_the_worker(running, repo):
    collector = psutil.Process(pidfile_pid(running, "logs"))
    collector.suspend()  # SIGSTOP: alive, but reading nothing
    try:
        t0 = time.monotonic()
        job = submit(repo, "bulk8")
        wait_final(running, job, timeout=30)
        took = time.monotonic() - t0
        spooled = list((running.home / "spool").glob("*.spool"))
        assert spooled, "the run's output should wait in the spool"
    finally:
        collector.resume()
    assert took < 20
    wait_spool_empty(running, timeout=30)
    assert logs_of(repo, job, "bulk8") == logs_agent.expected("bulk", "8")


# ------------------------------------------------------------- a spool a dead worker left behind
# (the run log's storage without services: tests/unit/test_runlog.py)


def test_the_collector_echoes_each_backlog_requests_id(running, repo):
    """`cocode top` tells which request a reply answers by its id (an older reply
    must not be taken for a newer request's)."""
    job = submit(repo, "weird")
    wait_final(running, job)
    wait_spool_empty(running)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(running.endpoint("logs"))
    try:
        asks = [wire.BacklogRequest(job=job, agent="weird", lines=100, id=11),
                wire.BacklogRequest(job=job, agent="weird", lines=100, count=True, id=12),
                wire.BacklogRequest(job=job, agent="nobody", id=13),
                wire.BacklogRequest(job=job, agent="weird", lines=100)]  # a reader from before ids
        for req in asks:
            sock.send(wire.encoder.encode(req))
        replies = {}
        for _ in asks:
            b = wire.logs_decoder.decode(sock.recv())
            replies[b.id] = b
    finally:
        sock.close(0)
    assert sorted(replies) == [0, 11, 12, 13]
    assert replies[11].data and not replies[11].newlines and replies[11].data == replies[0].data
    assert replies[12].newlines and not replies[12].data
    assert replies[13].end == 0


def test_a_spool_left_behind_is_resent_by_the_next_worker(repo):
    """Output spooled while no collector ran (its worker died before an ack) is
    stored once cocode runs again: the new worker resends spools it finds."""
    paths = Paths(repo)
    paths.ensure_private_dirs()
    ctx = zmq.Context.instance()
    shipper = Shipper(ctx, paths, load_config(paths.config))
    run = shipper.open("0ld0ne", "gone", 1)
    data = logs_agent.expected("lines", "3000")
    for i in range(0, len(data), 1000):
        run.output("stdout", i, data[i : i + 1000])
    shipper.close(timeout=0.2)  # nobody acked: the spool stays
    assert len(list((paths.home / "spool").glob("*.spool"))) == 1
    up(repo)
    try:
        wait_spool_empty(paths)
        assert logs_of(repo, "0ld0ne", "gone") == data
    finally:
        down(repo)
