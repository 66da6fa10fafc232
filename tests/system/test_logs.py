"""The log pipeline (issue 4) from outside: real agents, the real worker, collector,
bus and CLI, real files; nothing mocked.

Agents are tests/agents/logs_agent.py in its modes; `expected()` there gives the
exact bytes each mode writes, to compare what was stored against.
"""

from __future__ import annotations

import importlib.util
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
from cocode.config import Limits, load_config
from cocode.logs.files import ATTEMPT_SPAN, RunFiles
from cocode.logs.runlog import RunLog
from cocode.paths import Paths
from support import AGENTS_DIR, cocode, cocode_processes, kill_all, make_repo

AGENT = AGENTS_DIR / "logs_agent.py"
_spec = importlib.util.spec_from_file_location("logs_agent", AGENT)
logs_agent = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(logs_agent)

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
def limits() -> dict:
    """`performance:` for the test's config; override with parametrize."""
    return {}


@pytest.fixture
def repo(tmp_path: Path, limits: dict):
    """A repository whose config names the log agents, written before `running` starts."""
    path = make_repo(tmp_path / "repo")
    config = {"agents": {name: {"command": ["{python}", str(AGENT), *args]} for name, args in AGENTS.items()}}
    if limits:
        config["performance"] = limits
    (path / ".cocode").mkdir(mode=0o700)
    (path / ".cocode" / "config.yaml").write_text(json.dumps(config, indent=1))
    return path


# ------------------------------------------------------------------------------------ helpers


def submit(repo: Path, *agents: str) -> str:
    args = [a for name in agents for a in ("--agent", name)]
    proc = cocode(repo, "submit", "--text", "log test", *args, "--json", check=True)
    return json.loads(proc.stdout)["job"]


def wait_final(paths: Paths, job: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.current_state(paths).jobs.get(job)
        if view is not None and view.done:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish in {timeout:.0f} s")


def wait_spool_empty(paths: Paths, timeout: float = 20.0) -> None:
    """Every byte acked by the collector: the worker deleted its spool files."""
    spool = paths.home / "spool"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not list(spool.glob("*.spool")):
            return
        time.sleep(0.1)
    raise AssertionError(f"spool not drained: {sorted(p.name for p in spool.glob('*'))}")


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


def service_pid(paths: Paths, name: str) -> int:
    return int((paths.run / f"{name}.pid").read_text())


needs_lz4 = pytest.mark.skipif(shutil.which("lz4") is None, reason="the lz4 command-line tool is not installed")


# ---------------------------------------------------------------------------------- acceptance


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
    time.sleep(0.3)
    try:
        job = submit(repo, "secret")
        wait_final(running, job)
        wait_spool_empty(running)
        tail = cocode(repo, "tail", job, check=True)
        tail_json = cocode(repo, "tail", job, "--json", check=True)
        time.sleep(0.3)
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
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # half of lines_a's 2000 lines are out
        if files.live.exists() and files.live.read_bytes().count(b"\n") >= 1000:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("lines_a never got half way")
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


@needs_lz4
def test_kill_9_of_the_collector_mid_stream_loses_nothing(running, repo):
    job = submit(repo, "stream")
    # A reader following throughout: it must see every line once across both restarts.
    # -n larger than the output: the agent may be writing before this reader starts,
    # and a tail shows only the last N lines of what came before it.
    follower = subprocess.Popen([sys.executable, "-m", "cocode", "-C", str(repo), "tail", job, "-f",
                                 "-n", "10000000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    files = RunFiles(running.logs, job, "stream")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (files.live.exists() and files.live.stat().st_size > 2 * 2**20):
        time.sleep(0.02)
    first = service_pid(running, "logs")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10  # the supervisor restarts it
    while time.monotonic() < deadline:
        try:
            second = service_pid(running, "logs")
            if second != first and psutil.pid_exists(second):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(service_pid(running, "logs"), signal.SIGKILL)  # and once more, later in the stream
    wait_final(running, job)
    wait_spool_empty(running, timeout=30)
    expected = logs_agent.expected("stream", "12", "4")
    rotated_bytes, rotated, live = retained(running, job, "stream")
    assert rotated_bytes + live == expected
    assert logs_of(repo, job, "stream") == expected
    out, err = follower.communicate(timeout=30)
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
    assert jl[0] == {"job": job, "agent": "weird", "offset": 0, "line": "valid line"}
    assert psutil.pid_exists(service_pid(running, "logs"))


def test_a_stopped_collector_never_blocks_the_worker(running, repo):
    collector = psutil.Process(service_pid(running, "logs"))
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


# ------------------------------ storage (no services), and a spool a dead worker left behind

SMALL = Limits(log_buffer_size_mb=1, log_max_buffer_mb=1, rotated_logs_keep=3)


def store_all(run: RunLog, data: bytes, step: int = 4096) -> list:
    events: list = []
    for i in range(0, len(data), step):
        run.store(data[i : i + step], events)
    return events


def test_a_restarted_collector_finds_each_run_where_it_was(tmp_path):
    data = logs_agent.bulk_bytes(2.5)
    first = RunLog(tmp_path, "j1", "a", SMALL)
    store_all(first, data[: 1_500_000])
    first.flush()  # what the OS has; a kill -9 keeps it (no close, no sync)
    second = RunLog(tmp_path, "j1", "a", SMALL)
    assert second.end == 1_500_000
    start, backlog = second.backlog(0)  # refilled from the files, across the rotation
    assert backlog == data[start:1_500_000] and len(backlog) > 600_000
    events = store_all(second, data[1_500_000:])  # its next rotation compresses from the file
    second.close()
    assert [type(e).__name__ for e in events].count("LogRotated") == 1
    assert b"".join(RunFiles(tmp_path, "j1", "a").iter_all()) == data


def test_an_interrupted_rotation_is_finished_or_undone_on_load(tmp_path):
    data = logs_agent.bulk_bytes(1.5)
    run = RunLog(tmp_path, "j2", "a", SMALL)
    store_all(run, data)
    run.close()
    files = RunFiles(tmp_path, "j2", "a")
    m = files.read_manifest()
    # Killed after the lz4 file got its name but before the manifest said so: dropped.
    orphan = tmp_path / "agent_j2-a_20250101T000000.000000.log.lz4"
    orphan.write_bytes(b"not listed")
    # Killed after the commit but before the live file was emptied: emptied on load.
    live = files.live.read_bytes()
    m.rotated.append(type(m.rotated[0])(file=files.new_rotated_path().name, start=m.start, end=m.start + len(live)))
    files.write_lz4([live], tmp_path / m.rotated[-1].file)
    m.start += len(live)
    m.truncate_live = True
    files.write_manifest(m)
    again = RunLog(tmp_path, "j2", "a", SMALL)
    assert not orphan.exists() and again.end == len(data) and files.live.stat().st_size == 0
    assert not files.read_manifest().truncate_live
    again.close()
    assert b"".join(files.iter_all()) == data


def test_a_new_attempt_continues_the_log_at_its_own_offsets(tmp_path):
    run = RunLog(tmp_path, "j3", "a", SMALL)
    store_all(run, b"attempt one\n")
    events: list = []
    run.jump(ATTEMPT_SPAN, events)
    store_all(run, b"attempt two\n")
    assert run.end == ATTEMPT_SPAN + len(b"attempt two\n")
    assert run.backlog(10) == (ATTEMPT_SPAN, b"attempt two\n")
    run.close()
    assert b"".join(RunFiles(tmp_path, "j3", "a").iter_all()) == b"attempt one\nattempt two\n"


def test_a_spool_left_behind_is_resent_by_the_next_worker(repo):
    """Output spooled while no collector ran (its worker died before an ack) is
    stored once cocode runs again: the new worker resends spools it finds."""
    from cocode.logs.shipper import Shipper

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
    up = cocode(repo, "up", "--detach", timeout=60)
    assert up.returncode == 0, up.stderr
    try:
        wait_spool_empty(paths)
        assert logs_of(repo, "0ld0ne", "gone") == data
    finally:
        cocode(repo, "down", timeout=60)
        left = cocode_processes(repo)
        kill_all(repo)
        assert not left
