"""cocode.resources.reaper: the worker as subreaper; a run's daemons swept, another
run's spared; orphans reaped without taking any Popen's exit status.

Each test runs a small host program in its own process (it becomes the subreaper,
as the worker does), which starts real agents (tests/agents/daemons.py) and
reports what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from support import AGENTS_DIR, ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux's")

PRELUDE = textwrap.dedent(f"""
    import json, os, subprocess, sys, threading, time
    import psutil
    from cocode.resources import reaper

    r = reaper.Reaper()
    DAEMONS = {str(AGENTS_DIR / "daemons.py")!r}

    def agent(job, where, release=True):
        # A run's agent, started as the worker starts one (own session, subreaper).
        os.makedirs(where, exist_ok=True)
        if release:
            open(os.path.join(where, "release"), "w").close()  # it exits once its daemons are out
        env = dict(os.environ, COCODE_JOB_ID=job, COCODE_AGENT_NAME="a", DAEMON_TAG=job, COCODE_REPO_PATH=where)
        with reaper.spawning() as keep:
            p = subprocess.Popen([sys.executable, DAEMONS], env=env, start_new_session=True,
                                 preexec_fn=reaper.preexec(False))
            keep(p.pid)
        return p

    def daemons(tag):
        out = {{}}
        for p in psutil.process_iter(["cmdline", "status", "ppid"]):
            cmd = p.info["cmdline"] or []
            if cmd and cmd[0].startswith("cocode-daemon-") and cmd[0].endswith("-" + tag) \\
                    and p.info["status"] != psutil.STATUS_ZOMBIE:
                out[cmd[0].split("-")[2]] = p.info["ppid"]
        return out

    def wait_for(cond, what, timeout=15):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise SystemExit(what)
            time.sleep(0.02)  # pacing: a poll of wait_for, bounded by its timeout

    def zombies():
        return [pid for pid in reaper.children(os.getpid()) if (p := reaper.read(pid)) and p.state == "Z"]
""")


def host(tmp_path, body: str) -> dict:
    script = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


VARIANTS = {"doublefork", "env_i", "nohup", "setsid_f", "ignore_term", "own_group"}


def test_a_runs_daemons_re_parent_to_the_worker_and_die_with_the_run_another_runs_live_on(tmp_path):
    """Run j1's agent has exited, j2's still runs: j1's sweep kills each of j1's daemons,
    the env_i one too (no mark, no session of the run: only where it hangs in the tree
    links it to j1), and none of j2's, whose orphans wait under j2's agent."""
    seen = host(tmp_path, """
        mine, other = agent("j1", "w1"), agent("j2", "w2", release=False)
        mine.wait()
        wait_for(lambda: len(daemons("j1")) == 6 and len(daemons("j2")) == 6, "every daemon to start")
        before, others_before = daemons("j1"), daemons("j2")
        killed = r.sweep("j1", "a", sid=mine.pid, spare={other.pid}, live={("j2", "a")})
        after, others = daemons("j1"), daemons("j2")
        left_zombies = zombies()
        open("w2/release", "w").close()
        other.wait()
        all_killed = r.sweep_all()
        print(json.dumps({"active": r.active, "me": os.getpid(), "other": other.pid, "before": before,
                          "others_before": others_before, "killed": killed,
                          "after": after, "others": sorted(others), "zombies": left_zombies,
                          "all_killed": all_killed, "finally": daemons("j2"), "zombies_at_end": zombies()}))
    """)
    assert seen["active"]
    assert set(seen["before"]) == VARIANTS
    # Orphaned by their parents' exit, they re-parented to the run's agent while it lived,
    # then (it exited) to the subreaper host, never to init.
    assert all(seen["before"][v] == seen["me"] for v in ("doublefork", "env_i", "setsid_f")), seen
    assert all(seen["others_before"][v] == seen["other"] for v in ("doublefork", "env_i", "setsid_f")), seen
    assert seen["killed"] == 6 and seen["after"] == {}, seen
    assert set(seen["others"]) == VARIANTS, "the other run's daemons are not its to kill"
    assert seen["zombies"] == [], "what the sweep killed was reaped"
    assert seen["all_killed"] == 6 and seen["finally"] == {} and seen["zombies_at_end"] == []


def test_a_made_up_mark_protects_no_stray(tmp_path):
    """A daemon that names a run that is not live (COCODE_JOB_ID=nobody) is killed
    with the run that left it; one that names a live run is left to that run."""
    seen = host(tmp_path, """
        def leave(job, tag):
            # An agent that leaves one setsid daemon carrying `job`'s marks, then exits.
            env = dict(os.environ, COCODE_JOB_ID="j1", COCODE_AGENT_NAME="a", DAEMON_TAG="x")
            code = ("import subprocess; subprocess.Popen(['env', '-i', 'COCODE_JOB_ID=%s', 'COCODE_AGENT_NAME=a', "
                    "'bash', '-c', 'exec -a cocode-daemon-marked-%s sleep 1000'], start_new_session=True)" % (job, tag))
            with reaper.spawning() as keep:
                p = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                                     preexec_fn=reaper.preexec(False))
                keep(p.pid)
            p.wait()
            return p
        mine = leave("nobody", "fake")
        leave("j2", "live")
        wait_for(lambda: daemons("fake") and daemons("live"), "both daemons to start")
        killed = r.sweep("j1", "a", sid=mine.pid, live={("j2", "a")})
        fake, live = daemons("fake"), daemons("live")
        r.sweep("j2", "a")
        print(json.dumps({"killed": killed, "fake": fake, "live": live, "then": daemons("live")}))
    """)
    assert seen["killed"] == 1 and seen["fake"] == {}, seen
    assert seen["live"] and seen["then"] == {}, seen


def test_reaping_orphans_never_takes_a_popens_exit_status(tmp_path):
    """reap() runs in a loop while git-like subprocesses (the worker's session) and
    own-session ones (agents, setup commands) exit: each Popen still gets its code."""
    seen = host(tmp_path, """
        stop = threading.Event()
        reaped = []
        def hammer():
            while not stop.is_set():
                reaped.append(r.reap())
        t = threading.Thread(target=hammer); t.start()
        codes = []
        for i in range(30):
            codes.append(subprocess.run(["sh", "-c", "exit 3"]).returncode)
            with reaper.spawning() as keep:
                p = subprocess.Popen(["sh", "-c", "exit 7"], start_new_session=True)
                keep(p.pid)
            codes.append(p.wait())
            reaper.release(p.pid)
        # Orphans that exit on their own: each becomes this process's zombie, then is reaped.
        for i in range(5):
            subprocess.run(["setsid", "-f", "sh", "-c", "exit 0"])
        wait_for(lambda: sum(reaped) >= 5 and not zombies(), "the orphans to be reaped")
        stop.set(); t.join()
        print(json.dumps({"codes": codes, "reaped": sum(reaped), "zombies": zombies()}))
    """)
    assert seen["codes"] == [3, 7] * 30
    assert seen["reaped"] >= 5 and seen["zombies"] == []


def _writable_cgroup2() -> "Path | None":
    """A cgroup v2 directory this test may make a child cgroup in, or None."""
    from pathlib import Path

    for where in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (where / "cgroup.procs").exists() and (where / "cgroup.controllers").exists():
            probe = where / f"cocode-probe-{os.getpid()}"
            try:
                probe.mkdir()
            except OSError:
                continue
            if (probe / "cgroup.kill").exists():
                return probe
            probe.rmdir()
    return None


def test_a_runs_cgroup_is_killed_whole_daemons_included(tmp_path):
    from cocode.resources import cpushare
    from support import wait_until

    group = _writable_cgroup2()
    if group is None:
        pytest.skip("no writable cgroup v2 with cgroup.kill here")
    try:
        # Joins the cgroup before it forks: its daemon (own session) is in it too.
        leader = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {group}/cgroup.procs && setsid -f sleep 1000 && exec sleep 1000"],
            start_new_session=True)
        members = lambda: (group / "cgroup.procs").read_text().split()  # noqa: E731
        wait_until(lambda: len(members()) == 2, 10, what="the leader and its daemon in the cgroup")
        assert cpushare.kill_cgroup(group)
        wait_until(lambda: not members(), 10, what="the cgroup to be empty")
        assert leader.wait(10) == -9
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            os.kill(int(pid), 9)
        wait_until(lambda: not (group / "cgroup.procs").read_text().split(), 10, what="an empty cgroup")
        group.rmdir()
    assert not cpushare.kill_cgroup(group), "no such cgroup any more"
