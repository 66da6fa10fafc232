"""Resource governance (issue 5) from outside: the monitor, memory limits, memory
pressure, CPU shares and metrics, with real agents, real processes and the real CLI.

The decisions themselves (cocode.resources.policy, cocode.resources.metrics) and the
process-tree sampler are tested without any service in tests/unit/ (test_policy,
test_metrics, test_proctree). The agents are tests/agents/hog.py (grows its memory)
and tests/agents/forky.sh (spreads over its group, other sessions and orphans).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cocode.resources import cpushare
from cocode.jobs.timeouts import MEMORY_GRACE_S
from support import (
    AGENTS_DIR, AGENT_GIT_ENV, cocode, down, events, git, heavy, make_repo, procs_matching, reap,
    submit as submit_args, two_scheduler_decisions, up, wait_none, wait_until,
    write_config as write_config_json,
)

AGENTS = AGENTS_DIR
INTERVAL_MS = 500
MIB = 1024 * 1024


def agent_config(tmp: Path) -> dict:
    hog = {"command": ["{python}", str(AGENTS / "hog.py")], "memory_limit_mb": 100}
    base = {**AGENT_GIT_ENV, "HOG_STAMPS": str(tmp / "stamps"), "HOG_LIMIT_MB": "100"}
    return {
        "hog": {**hog, "env": {**base, "HOG_STEP_S": "0.05"}},
        "hog_stubborn": {**hog, "env": {**base, "HOG_IGNORE_TERM": "1", "HOG_MB": "200"}},
        "hog_escaped": {**hog, "env": {**base, "HOG_WHERE": "escaped", "HOG_MB": "200"}},
        "hog_gated": {**hog, "env": {**base, "HOG_GATE": str(tmp / "gate"), "HOG_MB": "200"}},
        "forky": {"command": ["bash", str(AGENTS / "forky.sh")], "env": AGENT_GIT_ENV},
        "adr003": {"command": ["bash", str(AGENTS / "adr003_example.sh")], "env": AGENT_GIT_ENV},
    }


def write_config(repo: Path, tmp: Path, **performance) -> None:
    # The monitor is tested on the bare process layout, and gates live outside the
    # worktree (which the sandbox hides): sandbox off here; test_hardening tests the sandbox.
    write_config_json(repo, {"performance": {"monitor_interval_ms": INTERVAL_MS, **performance},
                             "agents": agent_config(tmp), "sandbox": "off"})


def hogs(tmp: Path) -> list[psutil.Process]:
    """This test's hogs' allocating children. An escaped one may run anywhere, but its
    environment names this test's worktree: never another checkout's hog, whose test
    is still running."""
    def mine(p: psutil.Process) -> bool:
        try:
            return p.environ().get("COCODE_REPO_PATH", "").startswith(str(tmp))
        except psutil.Error:
            return False

    return [p for p in procs_matching(lambda argv: "--allocate" in argv) if mine(p)]


@pytest.fixture
def repo(tmp_path: Path):
    path = make_repo(tmp_path / "repo")
    (tmp_path / "stamps").mkdir()
    write_config(path, tmp_path)
    yield path
    reap(hogs(tmp_path), "an allocating hog outlived the test")  # the rest: conftest's leaves_no_process


def submit(repo: Path, agent: str) -> str:
    return submit_args(repo, "--agent", agent, text="Use memory")


def run_of(repo: Path, job: str) -> dict:
    proc = cocode(repo, "status", job, "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["runs"][0]


def wait_final(repo: Path, job: str, timeout: float = 25) -> dict:
    return wait_until(lambda: (r := run_of(repo, job))["ended_at"] and r, timeout, what=f"job {job} to end")


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


@heavy
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
    live = wait_until(sample, 15, what="all 29 processes counted", interval=0.3)
    assert live["escaped"] >= 7 and live["rss"] > 0 and live["memory_limit"] == 2048 * MIB
    mine = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or ["", ""])[-1].endswith(f".{n}")]
    if cpushare.mode()[0] == "nice":
        nices = {p.nice() for p in mine if p.info["cmdline"][-1] in (f"600.{n}", f"603.{n}")}
        assert nices == {cpushare.AGENT_NICE}, nices
    assert cocode(repo, "cancel", job, timeout=30).returncode == 0
    assert run_of(repo, job)["state"] == "cancelled"

    def survivors():
        return procs_matching(lambda argv: argv[-1:] in ([f"600.{n}"], [f"601.{n}"], [f"602.{n}"], [f"603.{n}"]))
    wait_none(survivors, 10, what="every process of the run to be gone")


def test_escaped_memory_hog_is_counted_and_killed(repo, running, tmp_path):
    job = submit(repo, "hog_escaped")
    run = wait_final(repo, job, timeout=30)
    assert (run["state"], run["reason"]) == ("failed", "memory_limit_exceeded"), run
    assert len(stamps(tmp_path, "term")) == 2, "both the agent and its escaped child got SIGTERM"

    wait_none(lambda: hogs(tmp_path), 5, what="the escaped hog to be gone")


def test_monitor_kill9_runs_go_on_and_limits_are_enforced_after_restart(repo, running, tmp_path):
    job = submit(repo, "hog_gated")
    wait_until(lambda: run_of(repo, job)["commits"] == 1, 15, what="the agent's partial commit")
    pidfile = repo / ".cocode" / "run" / "monitor.pid"
    old = int(pidfile.read_text())
    os.kill(old, signal.SIGKILL)

    def restarted():
        ps = json.loads(cocode(repo, "ps", "--json", timeout=30).stdout)
        mon = next(s for s in ps if s["name"] == "monitor")
        return mon["pid"] not in (None, old) and mon["state"] == "ready" and mon
    wait_until(restarted, 15, what="the supervisor to restart the monitor", interval=0.2)
    assert run_of(repo, job)["state"] == "running", "the run went on without its monitor"
    (tmp_path / "gate").touch()
    run = wait_final(repo, job, timeout=20)
    assert (run["state"], run["reason"]) == ("failed", "memory_limit_exceeded"), run
    assert len(events(repo, "limit_hit")) == 1
    assert_work_kept(repo, job, "hog_gated")


@heavy
def test_memory_pressure_holds_new_runs_until_it_clears(repo, tmp_path):
    write_config(repo, tmp_path, memory_pressure_percent=1)  # every machine is over 1%
    up(repo)
    try:
        on = wait_until(lambda: events(repo, "memory_pressure"), 10, what="memory_pressure on")
        assert on[-1]["on"] is True and on[-1]["threshold"] == 1
        job = submit(repo, "adr003")
        wait_until(lambda: run_of(repo, job)["reason"] == "memory_pressure", 10, what="the run to wait")
        two_scheduler_decisions(repo, "adr003", "memory_pressure")  # would have dispatched it by now
        run = run_of(repo, job)
        assert (run["state"], run["reason"]) == ("queued", "memory_pressure"), run
        assert events(repo, "run_dispatched") == [] and events(repo, "run_started") == []
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


