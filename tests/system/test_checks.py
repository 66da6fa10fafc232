"""The checks service under faults (issue 10): a check that hangs past its timeout
and forks a daemon, one that needs more memory than the limit, a crash of the
service mid-check, a cancel, a new commit on the run's branch, `cocode check`,
and a run whose worktree was removed. Real services, real git, real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import psutil

from review_support import UNITTEST, ok, submit, write_config
from support import GitRepo, cocode, down, events, status, up, wait_until

N = os.getpid()  # makes this test's sleep arguments unique on a shared machine


def procs(*argv: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and p.info["cmdline"] == list(argv):
                out.append(p)
        except psutil.Error:
            continue
    return out


def shells(marker: str) -> list[psutil.Process]:
    """The check's shells: `sh -c '... # marker'`."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = p.info["cmdline"] or []
            if p.info["status"] != psutil.STATUS_ZOMBIE and cmd[:2] == ["/bin/sh", "-c"] and marker in cmd[-1]:
                out.append(p)
        except psutil.Error:
            continue
    return out


def finished(repo: Path, name: str, agent: str | None = None) -> list[dict]:
    return [e for e in events(repo, "check_finished") if e["name"] == name and (agent is None or e["agent"] == agent)]


def test_timeout_kills_the_group_and_an_escaped_daemon(calc: GitRepo, tmp_path: Path):
    """A check that hangs is stopped at its timeout (recorded `timeout`); the daemon
    it started in a new session dies with it (the monitor finds it in the worktree)."""
    repo = calc.path
    daemon, hang = f"301.{N}", f"302.{N}"
    write_config(repo, tmp_path, {"hang": {"command": f"(setsid sleep {daemon} &); sleep {hang}", "timeout": 2}},
                 {"monitor_interval_ms": 100})
    up(repo)
    try:
        job = submit(repo, "good")
        wait_until(lambda: procs("sleep", daemon) and procs("sleep", hang), 30, what="the check and its daemon")
        done = wait_until(lambda: finished(repo, "hang"), 30, what="the hanging check finished")
        assert done and done[0]["status"] == "timeout" and "timed out after 2 s" in done[0]["reason"]
        assert 2.0 <= done[0]["duration_s"] < 10
        wait_until(lambda: not procs("sleep", daemon) and not procs("sleep", hang), 15,
                   what="the check's processes gone (they must not outlive it)")
        assert status(repo, job)["runs"][0]["state"] == "ready"  # the run itself is untouched
    finally:
        down(repo)


def test_memory_limit_stops_the_check_not_the_run(calc: GitRepo, tmp_path: Path):
    repo = calc.path
    hog = f"{sys.executable} -c \"import time; b = b'x' * (200 * 2**20); time.sleep(60)\""  # pacing: holds the memory until stopped
    write_config(repo, tmp_path, {"hog": hog}, {"memory_limit_mb": 64, "monitor_interval_ms": 100})
    up(repo)
    try:
        job = submit(repo, "good")
        done = wait_until(lambda: finished(repo, "hog"), 40, what="the hog check finished")
        assert done and done[0]["status"] == "failed" and "memory_limit_exceeded" in done[0]["reason"], done
        hits = events(repo, "limit_hit")
        assert [(h["agent"], h["check"]) for h in hits] == [("good", "hog")]
        assert status(repo, job)["runs"][0]["state"] == "ready"
    finally:
        down(repo)


def test_crash_mid_check_reruns_it_and_none_stays_running(calc: GitRepo, tmp_path: Path):
    """kill -9 of the checks service: the restarted service kills what is left of the
    check, records it interrupted, and runs it again; it then passes."""
    repo = calc.path
    gate = tmp_path / "gate"
    wait = f"303.{N}"
    write_config(repo, tmp_path, {"gated": f"while [ ! -e {gate} ]; do sleep 0.05; done # {wait}"})
    up(repo)
    try:
        job = submit(repo, "good")
        first = wait_until(lambda: [e for e in events(repo, "check_started") if e["name"] == "gated"], 30,
                           what="the gated check started")
        assert first, "the check never started"
        assert wait_until(lambda: shells(wait), 10, what="the gated check's shell")
        service = [json.loads(ok(repo, "ps", "--json"))][0]
        pid = next(s["pid"] for s in service if s["name"] == "checks")
        os.kill(pid, signal.SIGKILL)
        interrupted = wait_until(lambda: finished(repo, "gated"), 30, what="the interrupted check recorded")
        assert interrupted and interrupted[0]["status"] == "interrupted", interrupted
        wait_until(lambda: len(shells(wait)) == 1, 10, what="only the rerun's shell (the first one's is gone)")
        assert first[0]["pid"] not in [p.pid for p in shells(wait)]
        again = wait_until(lambda: [e for e in events(repo, "check_started") if e["name"] == "gated"][1:], 30,
                           what="the rerun started")
        assert again and again[0]["execution"] == 2 and again[0]["commit"] == first[0]["commit"]
        gate.touch()
        done = wait_until(lambda: finished(repo, "gated")[1:], 30, what="the rerun finished")
        assert done and done[0]["status"] == "passed"
        assert status(repo, job)["runs"][0]["checks"]["gated"]["status"] == "passed"
    finally:
        down(repo)


def test_new_commit_reruns_and_check_on_demand_and_cancel(calc: GitRepo, tmp_path: Path):
    repo = calc.path
    write_config(repo, tmp_path, {"tests": UNITTEST, "slow": f"sleep 304.{N}"})
    up(repo)
    try:
        job = submit(repo, "good")
        first = wait_until(lambda: finished(repo, "tests"), 30, what="the first tests check finished")
        assert first and first[0]["status"] == "passed"
        run = status(repo, job)["runs"][0]

        # A commit on the run's branch after its checks: they run again at the new head.
        # Another size than the fixed file: a same-size rewrite within one second could
        # leave Python reading its stale .pyc (validated by mtime and size).
        new = calc.commit("break it again", {"calc.py": "def add(a, b):\n    return (a - b) * 10\n"},
                          cwd=Path(run["worktree"]))
        # The run works in its own clone: its branch in the repository moves when the
        # worker (or a follow-up) takes a head; here the test takes it, as they would.
        calc.git("fetch", "-q", run["worktree"], f"{run['branch']}:{run['branch']}")
        rerun = wait_until(lambda: finished(repo, "tests")[1:], 30, what="the rerun at the new commit finished")
        assert rerun and rerun[0]["commit"] == new and rerun[0]["status"] == "failed", rerun

        # On demand: the same commit again, one check only; exit 1 as it fails.
        proc = cocode(repo, "check", job, "good", "--name", "tests", timeout=60)
        assert proc.returncode == 1 and "check:tests" in proc.stdout and "failed" in proc.stdout, proc
        assert len(finished(repo, "tests")) == 3
        bad = cocode(repo, "check", job, "--name", "nosuch")
        assert bad.returncode == 2 and "no such check" in bad.stderr

        # Cancel stops the running check; it is recorded cancelled and not rerun.
        assert wait_until(lambda: procs("sleep", f"304.{N}"), 20, what="the slow check running")
        ok(repo, "cancel", job, "--no-wait")
        done = wait_until(lambda: finished(repo, "slow"), 20, what="the slow check finished")
        assert done and done[0]["status"] == "cancelled"
        assert wait_until(lambda: not procs("sleep", f"304.{N}"), 10, what="the slow check's sleep gone")
    finally:
        down(repo)


def test_removed_worktree_is_a_recorded_error(calc: GitRepo, tmp_path: Path):
    repo = calc.path
    write_config(repo, tmp_path, {"tests": UNITTEST})
    up(repo)
    try:
        job = submit(repo, "good")
        assert wait_until(lambda: finished(repo, "tests"), 30, what="the tests check finished")
        worktree = status(repo, job)["runs"][0]["worktree"]
        shutil.rmtree(worktree)  # the run's own clone, gone
        proc = cocode(repo, "check", job, timeout=60)
        assert proc.returncode == 1 and "removed" in proc.stdout
        last = finished(repo, "tests")[-1]
        assert last["status"] == "error" and worktree in last["reason"]
    finally:
        down(repo)


def test_checks_share_the_cap_with_agents(calc: GitRepo, tmp_path: Path):
    """max_concurrent_agents 1. A check of job 1 runs in the checks lane and holds no
    agent's slot: job 2's first agent starts meanwhile. That agent's check, an extra
    one, waits while job 2's second agent is still queued (agents first), then runs."""
    repo = calc.path
    gates = tmp_path / "gates"
    gates.mkdir()
    gate = f"{gates}/$COCODE_JOB_ID-$COCODE_AGENT"
    write_config(repo, tmp_path, {"gated": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
                 {"max_concurrent_agents": 1})
    up(repo)
    try:
        j1 = submit(repo, "good")
        wait_until(lambda: [e for e in events(repo, "check_started") if e["job"] == j1], 30,
                   what="job 1's check started")
        j2 = submit(repo, "good", "bad")
        started = wait_until(lambda: {(e["job"], e["agent"]): e["seq"] for e in events(repo, "check_started")}
                             if len(events(repo, "check_started")) >= 2 else None, 60, what="two checks started")
        assert started, events(repo, "check_started")
        dispatched = {(e["job"], e["agent"]): e["seq"] for e in events(repo, "run_dispatched")}
        assert not finished(repo, "gated"), "job 1's check still runs: job 2's agents did not wait for it"
        assert (j2, "bad") in dispatched and started[(j2, "good")] > dispatched[(j2, "bad")], \
            "an extra check started while an agent waited"
        for job, agent in ((j1, "good"), (j2, "good"), (j2, "bad")):
            (gates / f"{job}-{agent}").touch()
        done = wait_until(lambda: len(finished(repo, "gated")) == 3 and finished(repo, "gated"), 60,
                          what="all three checks finished")
        assert done and {e["status"] for e in done} == {"passed"}
        # Never more than the cap + the one checks lane at once, counted from the log.
        running = peak = 0
        for e in events(repo, "run_started", "run_finished", "check_started", "check_finished"):
            running += 1 if e["type"] in ("run_started", "check_started") else -1
            peak = max(peak, running)
        assert peak <= 2, peak
    finally:
        down(repo)


def test_a_flooding_check_is_stored_whole_and_the_service_stays_small(calc: GitRepo, tmp_path: Path):
    """24 MiB of output from one check: every byte reaches the run's check log through
    the collector (rotated like an agent's; under rotated_logs_keep, so all is kept),
    and the checks service keeps only the output's tail in memory."""
    repo = calc.path
    flood = f"{sys.executable} -c \"import sys; [sys.stdout.write('x' * 1023 + chr(10)) for _ in range(24576)]\""
    write_config(repo, tmp_path, {"flood": flood})
    up(repo)
    try:
        pid = next(s["pid"] for s in json.loads(ok(repo, "ps", "--json")) if s["name"] == "checks")
        before = psutil.Process(pid).memory_info().rss
        job = submit(repo, "good")
        done = wait_until(lambda: finished(repo, "flood"), 90, what="the flood check finished")
        assert done and done[0]["status"] == "passed", done
        grown = psutil.Process(pid).memory_info().rss - before
        assert grown < 8 * 2**20, f"the checks service grew {grown / 2**20:.0f} MiB for 24 MiB of output"

        def stored() -> int:  # the shipper may still be sending what the check wrote
            return len(cocode(repo, "logs", job, "good/check:flood", timeout=60).stdout)
        assert wait_until(lambda: stored() == 24 * 2**20, 60, interval=0.5, what="all 24 MiB stored"), stored()
    finally:
        down(repo)


def test_counts_come_from_junit_xml_when_the_check_writes_it(calc: GitRepo, tmp_path: Path):
    repo = calc.path
    xml = "<testsuite tests='7' failures='2' errors='0' skipped='0'/>"
    write_config(repo, tmp_path, {"junit": f"echo \"{xml}\" > $COCODE_JUNIT_XML; echo '99 passed'; exit 1"})
    up(repo)
    try:
        submit(repo, "good")
        done = wait_until(lambda: finished(repo, "junit"), 30, what="the junit check finished")
        assert done, "the check never finished"
        e = done[0]
        assert (e["status"], e["passed"], e["failed"], e["exit_code"]) == ("failed", 5, 2, 1), e
        assert e["summary"] == "5 passed, 2 failed (JUnit XML)"
    finally:
        down(repo)


def test_down_kills_a_running_check_and_up_runs_it_again(calc: GitRepo, tmp_path: Path):
    repo = calc.path
    gate = tmp_path / "gate"
    marker = f"305.{N}"
    write_config(repo, tmp_path, {"gated": f"while [ ! -e {gate} ]; do sleep 0.05; done # {marker}"})
    up(repo)
    try:
        submit(repo, "good")
        assert wait_until(lambda: shells(marker), 30, what="the gated check's shell"), "the check never ran"
    finally:
        down(repo)  # fails the test if any cocode process is left
    assert not shells(marker), "the check outlived `cocode down`"
    stopped = finished(repo, "gated")
    assert [(e["status"], e["reason"]) for e in stopped] == [("interrupted", "cocode stopped")]
    gate.touch()
    up(repo)
    try:
        done = wait_until(lambda: finished(repo, "gated")[1:], 30, what="the rerun after up finished")
        assert done and done[0]["status"] == "passed"
        assert [e["execution"] for e in events(repo, "check_started") if e["name"] == "gated"] == [1, 2]
    finally:
        down(repo)
