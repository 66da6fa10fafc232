"""Resource governance (issue 5) from outside: the monitor, memory limits, memory
pressure, CPU shares and metrics, with real agents, real processes and the real CLI.

The decisions themselves (cocode.resources.policy, cocode.resources.metrics) are pure and tested
first, without any service. The agents are tests/agents/hog.py (grows its memory)
and tests/agents/forky.sh (spreads over its group, other sessions and orphans).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cocode.resources import cpushare
from cocode.resources import policy as governance
from cocode.resources import exposition, metrics
from cocode.core import events as ev
from cocode.config import load_config
from cocode.jobs.timeouts import MEMORY_GRACE_S
from cocode.resources.proctree import Sampler
from support import AGENTS_DIR, cocode, cocode_processes, down, git, make_repo, up, reap

AGENTS = AGENTS_DIR
INTERVAL_MS = 500
GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
MIB = 1024 * 1024


# ----------------------------------------------------------------------------- pure decisions


def test_pressure_hysteresis():
    seq = [50, 79.9, 80.5, 90, 76, 75.1, 74.9, 79, 80, 80.1]
    on, out = False, []
    for pct in seq:
        on = governance.pressure_next(on, pct, 80)
        out.append(on)
    # on only above 80; off only below 75 (80 - 5); in between it keeps its state.
    assert out == [False, False, True, True, True, True, False, False, False, True]


def test_disk_warning_once_per_crossing():
    line = governance.DISK_LOW_BYTES
    low, warnings = False, 0
    for free in [10 * line, line - 1, line - 5 * MIB, line + MIB, line - 1, line + 20 * MIB, line - 1]:
        after = governance.disk_low_next(low, free)
        warnings += after and not low
        low = after
    assert warnings == 2  # back above by only 1 MB is no new crossing; +20 MB is


def test_enforcement_steps_and_limits():
    lim = 100 * MIB
    assert governance.enforcement(99 * MIB, lim, None, False, 0.0) is None
    assert governance.enforcement(101 * MIB, lim, None, False, 0.0) == "terminate"
    assert governance.enforcement(500 * MIB, lim, 5.0, False, 14.9) is None
    assert governance.enforcement(0, lim, 5.0, False, 15.0) == "kill"
    assert governance.enforcement(500 * MIB, lim, 5.0, True, 99.0) is None
    config = load_config(None)
    specs = {"big": type("S", (), {"memory_limit_mb": 4096})(), "plain": type("S", (), {"memory_limit_mb": None})()}
    assert governance.memory_limit_mb("big", specs, config.limits.memory_limit_mb) == 4096
    assert governance.memory_limit_mb("plain", specs, 2048) == 2048
    assert governance.memory_limit_mb("unknown", specs, 2048) == 2048
    assert governance.cpu_percent({1: 1.0, 2: 5.0}, {1: 1.5, 3: 0.25, 4: 9.0}, {3}, 1.0) == 75.0


def test_metrics_fold_and_prometheus_offline():
    t0 = 1000.0
    evts = [
        ev.RunStarted(seq=1, ts=t0, job="j1", agent="a", worker="w", pid=1, pgid=1, worktree="/w",
                      branch="b", base_sha="s", worktree_ms=120.0),
        ev.RunProgress(seq=2, ts=t0 + 1, job="j1", agent="a", head="h1", commits=1),
        ev.RunProgress(seq=3, ts=t0 + 2, job="j1", agent="a", head="h2", commits=2),
        ev.RunReady(seq=4, ts=t0 + 2, job="j1", agent="a", commit="h2", detect_ms=3.0),
        ev.RunFinished(seq=5, ts=t0 + 60, job="j1", agent="a", state="ready"),
        ev.RunStarted(seq=6, ts=t0, job="j2", agent="a", worker="w", pid=2, pgid=2, worktree="/w2",
                      branch="b2", base_sha="s", worktree_ms=80.0),
        ev.LimitHit(seq=7, ts=t0 + 5, job="j2", agent="a", kind="memory", value=150, limit=100),
        ev.RunFinished(seq=8, ts=t0 + 6, job="j2", agent="a", state="failed", reason="memory_limit_exceeded"),
        ev.RunStarted(seq=9, ts=t0, job="j3", agent='we"ird\\', worker="w", pid=3, pgid=3, worktree="/w3",
                      branch="b3", base_sha="s"),
        ev.RunFinished(seq=10, ts=t0 + 900, job="j3", agent='we"ird\\', state="failed", reason="timeout_exceeded"),
        ev.LogRotated(seq=11, job="j3", agent="x", file="f", bytes=10),
        ev.RunStarted(seq=12, ts=t0 + 100, job="j4", agent="a", worker="w", pid=4, pgid=4, worktree="/w4",
                      branch="b4", base_sha="s", worktree_ms=100.0),
    ]
    t = metrics.fold(evts)
    sample = {"rss": 50 * MIB, "peak_rss": 60 * MIB, "cpu": 12.5, "procs": 3, "escaped": 1, "limit": 100 * MIB}
    host = {"mem_percent": 40.0, "cpu_percent": 10.0, "disk_free": 5 * 2**30, "pressure_threshold": 80.0}
    s = metrics.summary(t, {"j4/a": sample}, host, {"j1/a": 6 * MIB}, now=t0 + 160)
    a = s["agents"]["a"]
    assert (a["runs"], a["finished"], a["ready_checks"], a["limit_hits"]) == (3, 2, 2, 1)
    assert a["execution_s_avg"] == 33.0 and a["worktree_ms_avg"] == 100.0
    assert a["rss"] == 50 * MIB
    j1 = next(r for r in s["runs"] if r["job"] == "j1")
    assert j1["log_mb_per_min"] == 6.0 and j1["ready_detect_ms"] == 3.0
    assert s["totals"]["timeouts"] == 1 and s["totals"]["limit_hits"] == {"memory": 1}
    assert s["totals"]["buffer_overflows"] == 1
    text = exposition.prometheus(s)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["cocode_resource_limit_hits"].samples[0].value == 1
    ex = {(x.name, x.labels["agent"]): x.value for x in fams["cocode_run_execution_seconds"].samples}
    assert ex[("cocode_run_execution_seconds_sum", "a")] == 66.0
    assert ex[("cocode_run_execution_seconds_count", "a")] == 2
    assert ex[("cocode_run_execution_seconds_count", 'we"ird\\')] == 1  # labels escaped
    mem = fams["cocode_run_memory_bytes"].samples
    assert [(x.labels, x.value) for x in mem] == [({"job": "j4", "agent": "a"}, 50 * MIB)]
    assert "no run has started" not in exposition.table(s)


# ----------------------------------------------------------------------- sampling real processes


def test_sampler_counts_session_children_and_escaped(tmp_path):
    """A real session: the leader, a child in its group, a child that setsid'd, and an
    orphan that left both but works in the worktree with the run's COCODE_JOB_ID."""
    worktree = tmp_path / "wt"
    worktree.mkdir()
    script = (
        "sleep 300 & setsid sleep 301 & "
        "setsid sh -c 'sleep 302 &' ; "
        "exec sleep 303"
    )
    env = {**os.environ, "COCODE_JOB_ID": "abc123", "COCODE_AGENT_NAME": "x"}
    leader = subprocess.Popen(["bash", "-c", script], cwd=worktree, env=env, start_new_session=True)
    sampler = Sampler(scan_every=1)
    try:
        tree = sampler.track("abc123", "x", leader.pid, str(worktree))
        want = {("sleep", "300"), ("sleep", "301"), ("sleep", "302"), ("sleep", "303")}
        deadline = time.monotonic() + 10
        while True:
            s = sampler.sample(time.monotonic())["abc123/x"]
            argv = set()
            for pid in s.pids:
                try:
                    argv.add(tuple(psutil.Process(pid).cmdline()))
                except psutil.Error:
                    pass
            if want <= argv or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert want <= argv, argv
        assert s.escaped >= 2 and s.rss > 0  # 301 and 302 are out of the group
        sampler.signal(tree, signal.SIGKILL)
        gone = [p for p in map(psutil.Process, s.pids) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        deadline = time.monotonic() + 5
        while gone and time.monotonic() < deadline:
            time.sleep(0.05)
            gone = [p for p in gone if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not gone, f"survived the run's SIGKILL: {[p.cmdline() for p in gone]}"
    finally:
        for p in psutil.process_iter(["cmdline"]):
            if (p.info["cmdline"] or [])[:1] == ["sleep"] and (p.info["cmdline"] or [""])[-1] in ("300", "301", "302", "303"):
                p.kill()
        leader.wait(5)


# --------------------------------------------------------------------------------- end to end


def agent_config(tmp: Path) -> dict:
    hog = {"command": ["{python}", str(AGENTS / "hog.py")], "memory_limit_mb": 100}
    base = {**GIT_ENV, "HOG_STAMPS": str(tmp / "stamps"), "HOG_LIMIT_MB": "100"}
    return {
        "hog": {**hog, "env": {**base, "HOG_STEP_S": "0.05"}},
        "hog_stubborn": {**hog, "env": {**base, "HOG_IGNORE_TERM": "1", "HOG_MB": "200"}},
        "hog_escaped": {**hog, "env": {**base, "HOG_WHERE": "escaped", "HOG_MB": "200"}},
        "hog_gated": {**hog, "env": {**base, "HOG_GATE": str(tmp / "gate"), "HOG_MB": "200"}},
        "forky": {"command": ["bash", str(AGENTS / "forky.sh")], "env": GIT_ENV},
        "adr003": {"command": ["bash", str(AGENTS / "adr003_example.sh")], "env": GIT_ENV},
    }


def write_config(repo: Path, tmp: Path, **performance) -> None:
    cfg = {"performance": {"monitor_interval_ms": INTERVAL_MS, **performance}, "agents": agent_config(tmp)}
    (repo / ".cocode").mkdir(mode=0o700, exist_ok=True)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(cfg, indent=1))


@pytest.fixture
def repo(tmp_path: Path):
    path = make_repo(tmp_path / "repo")
    (tmp_path / "stamps").mkdir()
    write_config(path, tmp_path)
    yield path
    reap(agent_procs(tmp_path), "agent processes outlived the test")


def agent_procs(tmp_path: Path) -> list[psutil.Process]:
    """Live agent processes of this test (by worktree, argv or environment)."""
    where, found = str(tmp_path), []
    for p in psutil.process_iter(["cmdline", "status", "cwd"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            cmd = p.info["cmdline"] or []
            if "cocode" in cmd:
                continue  # services: the fixtures handle those
            # An escaped hog may run anywhere, but its environment names this test's
            # worktree: never another checkout's hog, whose test is still running.
            if (p.info["cwd"] or "").startswith(where) or (
                    "--allocate" in cmd and p.environ().get("COCODE_REPO_PATH", "").startswith(where)):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def submit(repo: Path, agent: str) -> str:
    proc = cocode(repo, "submit", "--json", "--text", "Use memory", "--agent", agent, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["job"]


def run_of(repo: Path, job: str) -> dict:
    proc = cocode(repo, "status", job, "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["runs"][0]


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_final(repo: Path, job: str, timeout: float = 25) -> dict:
    return wait_for(lambda: (r := run_of(repo, job))["ended_at"] and r, timeout, f"job {job} to end")


def events(repo: Path, *types: str) -> list[dict]:
    args = [a for t in types for a in ("--type", t)]
    proc = cocode(repo, "events", "--json", *args, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def stamps(tmp: Path, name: str) -> list[float]:
    return sorted(float(p.read_text()) for p in (tmp / "stamps").glob(f"{name}-*"))


def assert_work_kept(repo: Path, job: str, agent: str) -> None:
    branch = f"cocode/{job}/{agent}"
    assert git(repo, "log", "--format=%s", f"main..{branch}").splitlines() == ["wip: before allocating"]
    worktree = repo / ".cocode" / "worktrees" / f"{job}-{agent}"
    assert (worktree / "partial.txt").exists(), "the worktree is kept for debugging"


def test_memory_limit_kills_soon_after_crossing_and_keeps_commits(repo, running, tmp_path):
    job = submit(repo, "hog")
    run = wait_final(repo, job)
    assert (run["state"], run["reason"]) == ("failed", "memory_limit_exceeded"), run
    assert run["commits"] == 1
    assert_work_kept(repo, job, "hog")
    hit, = events(repo, "limit_hit")
    fin, = events(repo, "run_finished")
    assert hit["seq"] < fin["seq"], "limit_hit is recorded before the run ends"
    assert (hit["kind"], hit["limit"], hit["job"]) == ("memory", 100.0, job) and hit["value"] > 100
    crossed, = stamps(tmp_path, "crossed")
    term, = stamps(tmp_path, "term")
    # Killed soon after crossing: within one sampling interval plus the ack (and noise).
    assert 0 <= term - crossed <= 1.5 * INTERVAL_MS / 1000 + 0.5, term - crossed
    assert not stamps(tmp_path, "allocated"), "it never got to hold all 300 MB"
    # The temporary issue file went with the run.
    assert not list((repo / ".cocode" / "tmp").glob(f"{job}-*"))


def test_process_ignoring_sigterm_gets_sigkill_on_time(repo, running, tmp_path):
    job = submit(repo, "hog_stubborn")
    run = wait_final(repo, job, timeout=30)
    assert (run["state"], run["reason"], run["exit_code"]) == ("failed", "memory_limit_exceeded", 137), run
    hit, = events(repo, "limit_hit")
    fin, = events(repo, "run_finished")
    assert stamps(tmp_path, "term"), "it was sent SIGTERM first"
    took = fin["ts"] - hit["ts"]
    assert MEMORY_GRACE_S - 0.5 <= took <= MEMORY_GRACE_S + 2.5, took
    assert_work_kept(repo, job, "hog_stubborn")


def test_escaped_processes_count_and_die_with_the_run(repo, running, tmp_path):
    """A fork bomb of sorts and processes that left the session and were orphaned:
    counted in the run (metrics), all killed with it, every agent at the same nice."""
    job = submit(repo, "forky")
    n = int(job, 16)

    def sample():
        out = json.loads(cocode(repo, "metrics", "--json", timeout=30).stdout)
        live = [r for r in out["runs"] if r["job"] == job and r["processes"] is not None]
        return live and live[0]["processes"] >= 29 and live[0]
    live = wait_for(sample, 15, "all 29 processes counted", interval=0.3)
    assert live["escaped"] >= 7 and live["rss"] > 0 and live["memory_limit"] == 2048 * MIB
    mine = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or ["", ""])[-1].endswith(f".{n}")]
    if cpushare.mode()[0] == "nice":
        nices = {p.nice() for p in mine if p.info["cmdline"][-1] in (f"600.{n}", f"603.{n}")}
        assert nices == {cpushare.AGENT_NICE}, nices
    assert cocode(repo, "cancel", job, timeout=30).returncode == 0
    assert run_of(repo, job)["state"] == "cancelled"

    def survivors():
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if (p.info["cmdline"] or [""])[-1] in (f"600.{n}", f"601.{n}", f"602.{n}", f"603.{n}")
                and p.info["status"] != psutil.STATUS_ZOMBIE]
    wait_for(lambda: not survivors(), 10, "every process of the run to be gone")


def test_escaped_memory_hog_is_counted_and_killed(repo, running, tmp_path):
    job = submit(repo, "hog_escaped")
    run = wait_final(repo, job, timeout=30)
    assert (run["state"], run["reason"]) == ("failed", "memory_limit_exceeded"), run
    assert len(stamps(tmp_path, "term")) == 2, "both the agent and its escaped child got SIGTERM"

    def hogs():
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if "--allocate" in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]
    wait_for(lambda: not hogs(), 5, "the escaped hog to be gone")


def test_monitor_kill9_runs_go_on_and_limits_are_enforced_after_restart(repo, running, tmp_path):
    job = submit(repo, "hog_gated")
    wait_for(lambda: run_of(repo, job)["commits"] == 1, 15, "the agent's partial commit")
    pidfile = repo / ".cocode" / "run" / "monitor.pid"
    old = int(pidfile.read_text())
    os.kill(old, signal.SIGKILL)

    def restarted():
        ps = json.loads(cocode(repo, "ps", "--json", timeout=30).stdout)
        mon = next(s for s in ps if s["name"] == "monitor")
        return mon["pid"] not in (None, old) and mon["state"] == "ready" and mon
    wait_for(restarted, 15, "the supervisor to restart the monitor", interval=0.2)
    assert run_of(repo, job)["state"] == "running", "the run went on without its monitor"
    (tmp_path / "gate").touch()
    run = wait_final(repo, job, timeout=20)
    assert (run["state"], run["reason"]) == ("failed", "memory_limit_exceeded"), run
    assert len(events(repo, "limit_hit")) == 1
    assert_work_kept(repo, job, "hog_gated")


def test_memory_pressure_holds_new_runs_until_it_clears(repo, tmp_path):
    write_config(repo, tmp_path, memory_pressure_percent=1)  # every machine is over 1%
    up(repo)
    try:
        on = wait_for(lambda: events(repo, "memory_pressure"), 10, "memory_pressure on")
        assert on[-1]["on"] is True and on[-1]["threshold"] == 1
        job = submit(repo, "adr003")
        wait_for(lambda: run_of(repo, job)["reason"] == "memory_pressure", 10, "the run to wait")
        time.sleep(1.0)
        run = run_of(repo, job)
        assert (run["state"], run["reason"]) == ("queued", "memory_pressure"), run
        assert events(repo, "run_started") == []
        status = cocode(repo, "status", timeout=30).stdout
        assert "memory_pressure" in status
    finally:
        down(repo)
    write_config(repo, tmp_path, memory_pressure_percent=99)  # it clears
    up(repo)
    try:
        run = wait_final(repo, job)
        assert run["state"] == "ready", run
        seqs = {e["type"] + str(e.get("on", "")): e["seq"] for e in events(repo, "memory_pressure", "run_started")}
        assert seqs["memory_pressureFalse"] < seqs["run_started"]
    finally:
        down(repo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_prometheus_parses_and_is_served_over_http(repo, tmp_path):
    port = free_port()
    up(repo, "--metrics-port", str(port))
    try:
        job = submit(repo, "adr003")
        assert wait_final(repo, job)["state"] == "ready"
        out = cocode(repo, "metrics", "--prometheus", timeout=30)
        assert out.returncode == 0, out.stderr
        fams = {f.name: f for f in text_string_to_metric_families(out.stdout)}
        for name in ("cocode_run_execution_seconds", "cocode_worktree_setup_seconds", "cocode_log_bytes",
                     "cocode_ready_detection_attempts", "cocode_buffer_overflow_events",
                     "cocode_timeout_violations", "cocode_resource_limit_hits", "cocode_run_memory_bytes",
                     "cocode_log_throughput_mb_per_minute", "cocode_host_memory_percent"):
            assert name in fams, f"{name} missing from:\n{out.stdout}"
        count = {s.name: s.value for s in fams["cocode_run_execution_seconds"].samples if s.labels["agent"] == "adr003"}
        assert count["cocode_run_execution_seconds_count"] == 1
        assert fams["cocode_host_memory_percent"].samples[0].value > 0
        logged = {s.labels["agent"]: s.value for s in fams["cocode_log_bytes"].samples}
        assert logged["adr003"] > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            served = {f.name for f in text_string_to_metric_families(resp.read().decode())}
        assert "cocode_run_execution_seconds" in served and "cocode_run_memory_bytes" in served
        table = cocode(repo, "metrics", timeout=30).stdout
        assert "adr003" in table and "host: memory" in table
    finally:
        down(repo)


@pytest.mark.parametrize("text, key", [
    ("performance:\n  memory_limit_mb: 10\n", "performance.memory_limit_mb = 10 is below the minimum 64"),
    ("performance:\n  memory_limit_mb: 70000\n", "performance.memory_limit_mb = 70000 is above the maximum 65536"),
    ("agents:\n  x: {command: [a], memory_limit_mb: 32}\n", "agents.x.memory_limit_mb = 32 is below the minimum 64"),
    ("performance:\n  monitor_interval_ms: 5\n", "performance.monitor_interval_ms = 5 is below the minimum 100"),
])
def test_memory_limit_out_of_range_exits_2_with_one_line(tmp_path, text, key):
    repo = make_repo(tmp_path / "repo")
    (repo / ".cocode").mkdir()
    (repo / ".cocode" / "config.yaml").write_text(text)
    proc = cocode(repo, "up", "--detach", timeout=30)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and key in lines[0], proc.stderr
    assert not cocode_processes(repo)


def test_doctor_says_which_cpu_share_is_in_force(repo):
    out = cocode(repo, "doctor", "--json", timeout=60)
    check = next(c for c in json.loads(out.stdout) if c["check"] == "cpu shares")
    assert check["detail"] == cpushare.describe()
    kind = cpushare.mode()[0]
    assert check["detail"].startswith("cgroup v2" if kind == "cgroup" else f"nice {cpushare.AGENT_NICE}")
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert kind == "nice"  # this machine: cgroup v1, so the nice fallback is in force
    assert sys.platform.startswith("linux")
