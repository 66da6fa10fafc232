"""Finding the processes a test started (a repository's cocode, agents and their
children) and reaping what a test left, telling a live process from its pid's reuse."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil


def _processes(*attrs: str):
    """Live (not zombie) processes, with cmdline and `attrs` read in one pass."""
    for p in psutil.process_iter(["cmdline", "status", *attrs]):
        if p.info["status"] != psutil.STATUS_ZOMBIE:
            yield p


def procs_matching(pred) -> list[psutil.Process]:
    """Live (not zombie) processes whose argv satisfies pred(argv)."""
    return [p for p in _processes() if pred(p.info["cmdline"] or [])]


def cocode_processes(repo: Path) -> list[psutil.Process]:
    """Live processes started for this repository's cocode (services, supervisor)."""
    return procs_matching(lambda argv: "cocode" in argv and str(repo) in argv)


def agent_processes(where: Path) -> list[psutil.Process]:
    """Live processes working under `where` (by working directory or an argument):
    agents and their children; cocode's own processes are left to down()."""
    where_s, me = str(where), os.getpid()
    return [
        p for p in _processes("cwd")
        if p.pid != me and "cocode" not in (cmd := p.info["cmdline"] or [])
        and ((p.info["cwd"] or "").startswith(where_s) or any(where_s in a for a in cmd))
    ]


def sleeps_of(job: str, *prefixes: str) -> list[psutil.Process]:
    """The `sleep P.N` processes of a job's agent (N = the job id in decimal)."""
    n = int(job, 16)
    wanted = [["sleep", f"{prefix}.{n}"] for prefix in prefixes]
    return procs_matching(lambda argv: argv in wanted)


def kill_all(repo: Path) -> None:
    for p in cocode_processes(repo):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def reap(procs: list[psutil.Process], what: str) -> None:
    """Kill processes a test left behind, then fail the test for having left them."""
    shown = [describe(p) for p in procs]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not procs, f"{what}: {shown}"


def describe(item):
    """A process as (pid, argv) for a failure message; anything else as it is."""
    if isinstance(item, psutil.Process):
        try:
            return item.pid, item.cmdline()
        except psutil.Error:
            return item.pid
    return item


def alive(pid: int) -> bool:
    try:
        return live(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def live(p: psutil.Process) -> bool:
    """The very process `p` (not a later one with its pid) still runs and is not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
