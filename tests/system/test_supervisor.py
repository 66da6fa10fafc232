"""The supervisor and the CLI around it, driven through the real `cocode` command:
up/ps/down, a second up, restarts after kill -9, the private socket directory,
`events --json`, `replay --verify`, and Ctrl-C in the foreground. A bad config and no
repository (nothing starts): tests/unit/test_cli_errors.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import zmq

from cocode.core import events as ev
from cocode.core.views import decode_state, encode_state
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.paths import Paths
from cocode.supervisor import SERVICE_NAMES
from support import (
    alive, cocode, cocode_processes, ipc_files, kill_all, one_line_error, ps, wait_none, wait_until,
)

KEYS = {"name", "pid", "state", "uptime_s", "restarts"}


def ps_rows(repo) -> list[dict]:
    proc = cocode(repo, "ps", "--json", timeout=20)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
        assert len(rows) == len(SERVICE_NAMES)
        for r in rows:
            assert set(r) == KEYS, r
            assert r["state"] == "ready", r
            assert isinstance(r["pid"], int) and alive(r["pid"]), r
            assert isinstance(r["uptime_s"], float) and r["uptime_s"] >= 0, r
            assert r["restarts"] == 0
        pids = {r["name"]: r["pid"] for r in rows}
        assert len(set(pids.values())) == len(SERVICE_NAMES)

        # Sockets live in a directory only the user can open.
        for d in {paths.run, paths.socket_dir}:
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
        assert {"bus.ipc", "bus-in.ipc", "store.ipc", "supervisor.ipc"} <= set(ipc_files(paths))

        for args in (("up", "--detach"), ("up",)):
            again = cocode(repo, *args, timeout=20)
            assert again.returncode != 0
            assert "already running" in one_line_error(again)
        assert {r["name"]: r["pid"] for r in ps_rows(repo)} == pids, "a second up disturbs nothing"

        stopped = cocode(repo, "down", timeout=40)
        assert stopped.returncode == 0, stopped.stderr
        wait_none(lambda: cocode_processes(repo), 3, what="every process of cocode to end")
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

    m = wait_until(restarted, 10, what="the monitor to be restarted and ready")
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

    found = wait_until(crashed, 5, what="a service_crashed event", interval=0.2)
    assert all(e["type"] == "service_crashed" for e in found)
    (crash,) = [e for e in found if e["service"] == "monitor"]
    assert crash["pid"] == old and crash["exit_code"] == -signal.SIGKILL
    assert crash["restarts"] >= 1


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
            wrong = decode_state(blob)
            assert [w.message for w in wrong.warnings] == ["first", "second"]
            wrong.warnings = wrong.warnings[:1]
            conn.execute("UPDATE snapshots SET state = ? WHERE seq = ?", (encode_state(wrong), seq))
            conn.commit()
        finally:
            conn.close()
        bad = cocode(repo, "replay", "--verify", timeout=20)
        assert bad.returncode != 0, bad.stdout
        assert "differs" in one_line_error(bad)
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
            return rows if len(rows) == len(SERVICE_NAMES) and all(r["state"] == "ready" for r in rows) else None

        rows = wait_until(all_ready, 15, what="all six services ready")
        pids = [r["pid"] for r in rows]
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the terminal's foreground group
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, (proc.returncode, err)
        assert "Traceback" not in err
        assert not any(alive(pid) for pid in pids)
        wait_none(lambda: cocode_processes(repo), 3, what="every process of cocode to end")
        assert ipc_files(paths) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        kill_all(repo)
