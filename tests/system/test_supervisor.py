"""The supervisor and the CLI around it, driven through the real `cocode` command:
up/ps/down, a second up, restarts after kill -9, the private socket directory, a bad
config, no repository, `events --json`, `replay --verify`, and Ctrl-C in the foreground."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import psutil
import zmq

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.paths import Paths
from cocode.supervisor import SERVICE_NAMES
from support import cocode, cocode_processes, kill_all, wait_until

KEYS = {"name", "pid", "state", "uptime_s", "restarts"}


def ps_rows(repo) -> list[dict]:
    proc = cocode(repo, "ps", "--json", timeout=20)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ps(repo) -> dict[str, dict]:
    return {row["name"]: row for row in ps_rows(repo)}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


def ipc_files(paths: Paths) -> list[str]:
    d = paths.socket_dir
    return sorted(p.name for p in d.glob("*.ipc")) if d.exists() else []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def append(paths: Paths, events: list[ev.Event]) -> None:
    ctx = zmq.Context()
    try:
        app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"))
        for e in events:
            app.append(e)
        assert app.wait(10), f"{app.pending} not acked"
        app.close()
    finally:
        ctx.destroy(linger=0)


def test_up_ps_second_up_and_down(repo):
    paths = Paths(repo)
    try:
        t0 = time.monotonic()
        proc = cocode(repo, "up", "--detach", timeout=40)
        assert proc.returncode == 0, proc.stderr
        assert time.monotonic() - t0 < 15
        assert paths.endpoint("bus") in proc.stdout, "up --detach prints the endpoints"

        rows = ps_rows(repo)
        assert [r["name"] for r in rows] == list(SERVICE_NAMES)
        assert len(rows) == 6
        for r in rows:
            assert set(r) == KEYS, r
            assert r["state"] == "ready", r
            assert isinstance(r["pid"], int) and alive(r["pid"]), r
            assert isinstance(r["uptime_s"], float) and r["uptime_s"] >= 0, r
            assert r["restarts"] == 0
        pids = {r["name"]: r["pid"] for r in rows}
        assert len(set(pids.values())) == 6

        # Sockets live in a directory only the user can open.
        for d in {paths.run, paths.socket_dir}:
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
        assert {"bus.ipc", "bus-in.ipc", "store.ipc", "supervisor.ipc"} <= set(ipc_files(paths))

        for args in (("up", "--detach"), ("up",)):
            again = cocode(repo, *args, timeout=20)
            assert again.returncode != 0
            assert "already running" in one_line(again.stderr)
        assert {r["name"]: r["pid"] for r in ps_rows(repo)} == pids, "a second up disturbs nothing"

        stopped = cocode(repo, "down", timeout=40)
        assert stopped.returncode == 0, stopped.stderr
        assert wait_until(lambda: not cocode_processes(repo), 3), [
            p.info["cmdline"] for p in cocode_processes(repo)]
        assert not any(alive(pid) for pid in pids.values())
        assert ipc_files(paths) == []
        assert ps_rows(repo) == []
        again = cocode(repo, "down", timeout=20)
        assert again.returncode == 0 and "not running" in again.stdout
    finally:
        cocode(repo, "down", timeout=40)
        kill_all(repo)


def test_kill9_of_a_service_restarts_it_and_records_the_crash(running):
    repo = running.root
    before = ps(repo)
    old = before["monitor"]["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted():
        m = ps(repo)["monitor"]
        return m if m["pid"] not in (None, old) and m["state"] == "ready" else None

    m = wait_until(restarted, 10, interval=0.1)
    assert m, ps(repo)["monitor"]
    assert m["restarts"] >= 1
    assert not alive(old)
    after = ps(repo)
    for name in SERVICE_NAMES:
        if name != "monitor":
            assert after[name]["pid"] == before[name]["pid"], f"{name} was disturbed"

    def crashed():
        out = cocode(repo, "events", "--json", "--type", "service_crashed", timeout=20)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    found = wait_until(crashed, 5, interval=0.2)
    assert found, "no service_crashed event"
    assert all(e["type"] == "service_crashed" for e in found)
    (crash,) = [e for e in found if e["service"] == "monitor"]
    assert crash["pid"] == old and crash["exit_code"] == -signal.SIGKILL
    assert crash["restarts"] >= 1


def test_bad_config_exits_2_with_one_line_and_starts_nothing(repo):
    paths = Paths(repo)
    paths.home.mkdir()
    paths.config.write_text("performance:\n  max_concurrent_agents: 50\n")
    try:
        for args in (("up", "--detach"), ("up",)):
            proc = cocode(repo, *args, timeout=20)
            assert proc.returncode == 2, (proc.returncode, proc.stderr)
            line = one_line(proc.stderr)
            assert "performance.max_concurrent_agents = 50 is above the maximum 20" in line
            assert "config.yaml" in line
            assert not cocode_processes(repo)
            assert ipc_files(paths) == []
            assert not paths.db.exists()
    finally:
        kill_all(repo)


def test_outside_a_git_repository_exits_2_with_one_line(tmp_path):
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    probe = subprocess.run(["git", "-C", str(plain), "rev-parse"], capture_output=True)
    assert probe.returncode != 0, "precondition: the temp dir is outside any git repository"
    for args in (("ps",), ("events", "--json"), ("up", "--detach"), ("down",)):
        proc = cocode(plain, *args, timeout=20)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert "git" in one_line(proc.stderr)
    # The same without -C, from inside the directory.
    proc = subprocess.run([sys.executable, "-m", "cocode", "ps"], cwd=plain,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and str(plain) in one_line(proc.stderr)
    assert not (plain / ".cocode").exists()


def test_events_json_and_replay_verify(repo):
    paths = Paths(repo)
    try:
        assert cocode(repo, "up", "--detach", timeout=40).returncode == 0
        # 10,000 events make the store write a snapshot; the warning after it is the tail.
        append(paths, [ev.WarningEvent(code="disk_low", message="first")]
               + [ev.BenchTick(job="t", n=i) for i in range(10_000)])
        append(paths, [ev.WarningEvent(code="disk_low", message="second")])

        out = cocode(repo, "events", "--json", timeout=20)
        assert out.returncode == 0, out.stderr
        objs = [json.loads(line) for line in out.stdout.splitlines()]  # one JSON object a line
        assert all(isinstance(o, dict) for o in objs)
        assert [o["seq"] for o in objs] == list(range(1, len(objs) + 1))
        assert all(isinstance(o["type"], str) and isinstance(o["ts"], float) for o in objs)
        assert [o["n"] for o in objs if o["type"] == "bench_tick"] == list(range(10_000))
        only = cocode(repo, "events", "--json", "--type", "warning", timeout=20)
        assert [json.loads(line)["message"] for line in only.stdout.splitlines()] == ["first", "second"]
        since = cocode(repo, "events", "--json", "--since", "10", "--type", "warning", timeout=20)
        assert [json.loads(line)["message"] for line in since.stdout.splitlines()] == ["second"]

        conn = sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True)
        snap_seq = conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        conn.close()
        assert snap_seq and 10_000 <= snap_seq < objs[-1]["seq"], "verify must cover snapshot + tail"
        verify = cocode(repo, "replay", "--verify", timeout=20)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "identical" in verify.stdout

        assert cocode(repo, "down", timeout=40).returncode == 0
        stopped = cocode(repo, "events", "--json", timeout=20)  # read straight from the file
        assert stopped.returncode == 0, stopped.stderr
        assert [json.loads(line) for line in stopped.stdout.splitlines()][: len(objs)] == objs

        conn = sqlite3.connect(paths.db)
        try:
            seq, blob = conn.execute("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
            verify = cocode(repo, "replay", "--verify", timeout=20)
            assert verify.returncode == 0 and "identical" in verify.stdout, verify.stdout + verify.stderr
            # A snapshot that disagrees with the events must make --verify fail.
            wrong = st.decode_state(blob)
            assert [w.message for w in wrong.warnings] == ["first", "second"]
            wrong.warnings = wrong.warnings[:1]
            conn.execute("UPDATE snapshots SET state = ? WHERE seq = ?", (st.encode_state(wrong), seq))
            conn.commit()
        finally:
            conn.close()
        bad = cocode(repo, "replay", "--verify", timeout=20)
        assert bad.returncode != 0, bad.stdout
        assert "differs" in one_line(bad.stderr)
    finally:
        cocode(repo, "down", timeout=40)
        kill_all(repo)


def test_foreground_up_stops_cleanly_on_sigint(repo):
    paths = Paths(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cocode", "-C", str(repo), "up"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        def all_ready():
            rows = ps_rows(repo)
            return rows if len(rows) == 6 and all(r["state"] == "ready" for r in rows) else None

        rows = wait_until(all_ready, 15, interval=0.1)
        assert rows, f"not all ready: {ps_rows(repo)}"
        pids = [r["pid"] for r in rows]
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the terminal's foreground group
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, (proc.returncode, err)
        assert "Traceback" not in err
        assert not any(alive(pid) for pid in pids)
        assert wait_until(lambda: not cocode_processes(repo), 3)
        assert ipc_files(paths) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        kill_all(repo)
