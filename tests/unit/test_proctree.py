"""The process-tree sampler (cocode.resources.proctree) on real processes, no service:
its two readers (resources/procread.py), the Linux /proc fast path and the portable
psutil path (what macOS uses, forced here on Linux), see the same processes with the
same numbers; a run's session, its group, what left both, and killing all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from cocode import envnames
from cocode.resources import procread
from cocode.resources.proctree import Sampler
from support import agent_processes, live, wait_none, wait_until

# A leader (its own session), two sleepers in its session, one that leaves the
# session by setsid (found as a descendant outside the group), and one that burns
# CPU and holds ~40 MiB. Everything ends by itself within a minute if a test dies.
TREE = (
    "sleep 60 & sleep 61 & setsid sleep 62 & "
    f"{sys.executable} -c 'import time; x = bytearray(40 << 20); x[::4096] = b\"x\" * (10240); "
    "end = time.time() + 60\nwhile time.time() < end: pass' & wait"
)
MIB = 1 << 20


@pytest.fixture
def tree(tmp_path):
    leader = subprocess.Popen(["bash", "-c", TREE], cwd=tmp_path, start_new_session=True)
    try:
        yield leader
    finally:
        kids = []
        try:
            kids = psutil.Process(leader.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        for p in kids:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(leader.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        leader.wait(5)
        psutil.wait_procs(kids, timeout=5)


def _both_see_the_tree(fast: Sampler, portable: Sampler, want: int, timeout: float = 10.0):
    seen = None

    def both():
        nonlocal seen
        now = time.monotonic()
        seen = fast.sample(now)["j/a"], portable.sample(now)["j/a"]
        # The setsid child counts as escaped once setsid has run in it (bash forks it first).
        return all(s.procs >= want and s.escaped >= 1 for s in seen)

    try:
        wait_until(both, timeout, what=f"both samplers to see {want} processes", interval=0.05)
    except AssertionError as err:
        raise AssertionError(f"{err}; saw {[(s.procs, s.pids) for s in seen]}") from None
    return seen


@pytest.mark.skipif(not procread.has_procfs(), reason="the fast path needs /proc")
def test_fast_and_portable_samplers_agree_on_a_real_tree(tree, tmp_path):
    fast, portable = Sampler(scan_every=1, portable=False), Sampler(scan_every=1, portable=True)
    assert fast.stats.kind == "procfs" and portable.stats.kind == "psutil"
    try:
        for s in (fast, portable):
            s.track("j", "a", tree.pid, str(tmp_path))
        a, b = _both_see_the_tree(fast, portable, want=5)
        assert a.pids == b.pids and len(a.pids) == 5, (a.pids, b.pids)
        assert a.escaped == b.escaped == 1  # the setsid one: its own group
        time.sleep(0.5)  # pacing: one CPU interval for both, the burner running through it
        now = time.monotonic()
        a, b = fast.sample(now)["j/a"], portable.sample(now)["j/a"]
        assert a.pids == b.pids
        # Both read the kernel's resident pages: 40 MiB held, and the same total.
        assert 40 * MIB < a.rss < 1024 * MIB and 40 * MIB < b.rss < 1024 * MIB, (a.rss, b.rss)
        assert abs(a.rss - b.rss) < 0.1 * a.rss, (a.rss, b.rss)
        # The burner ran for the whole interval on some core; no tree here uses more
        # than every core.
        ceiling = 100.0 * (os.cpu_count() or 1) + 10
        assert 1.0 < a.cpu < ceiling and 1.0 < b.cpu < ceiling, (a.cpu, b.cpu)
    finally:
        fast.close()
        portable.close()


def test_portable_reader_is_chosen_by_env_or_argument(monkeypatch):
    monkeypatch.setenv(envnames.PORTABLE_SAMPLER, "1")
    assert Sampler().stats.kind == "psutil"
    monkeypatch.setenv(envnames.PORTABLE_SAMPLER, "0")
    assert Sampler().stats.kind == ("procfs" if procread.has_procfs() else "psutil")
    assert Sampler(portable=True).stats.kind == "psutil"


def test_readers_say_gone_for_a_dead_process():
    p = subprocess.Popen(["sleep", "60"])
    # Between fork and exec the child is a copy of us with no RSS of its own yet, and
    # right after the exec (not yet run, on a loaded machine) it may hold no page:
    # wait until the kernel shows the exec'd sleep resident.
    def resident() -> bool:
        proc = psutil.Process(p.pid)
        return proc.cmdline() == ["sleep", "60"] and proc.memory_info().rss > 0

    wait_until(resident, 10, what="sleep's exec and its first resident page")
    readers = [procread.PsutilStat()] + ([procread.ProcStat()] if procread.has_procfs() else [])
    try:
        for r in readers:
            st = r.stat(p.pid)
            assert st is not None and st.pgrp == os.getpgid(0) and st.rss > 0
            assert r.cwd(p.pid) == os.getcwd() and r.ppid(p.pid) == os.getpid()
    finally:
        p.kill()
        p.wait(5)
    for r in readers:
        assert r.stat(p.pid) is None, r.kind
        r.close()


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
        argv: set[tuple[str, ...]] = set()

        def sampled_all():
            nonlocal argv
            sample = sampler.sample(time.monotonic())["abc123/x"]
            argv = set()
            for pid in sample.pids:
                try:
                    argv.add(tuple(psutil.Process(pid).cmdline()))
                except psutil.Error:
                    pass
            return want <= argv and sample

        try:
            s = wait_until(sampled_all, 10, what="a sample holding all four sleeps")
        except AssertionError as err:
            raise AssertionError(f"{err}; sampled {argv}") from None
        assert s.escaped >= 2 and s.rss > 0  # 301 and 302 are out of the group
        sampler.signal(tree, signal.SIGKILL)
        procs = [psutil.Process(pid) for pid in s.pids]
        wait_none(lambda: [p for p in procs if live(p)], 5, what="the run's SIGKILL to kill every process")
    finally:
        for p in agent_processes(worktree):  # only this test's: others' `sleep 300` are not ours
            p.kill()
        leader.wait(5)


