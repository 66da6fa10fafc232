"""`cocode bench watch`: the worker's CPU per watched run (target <= 1% of a core).

N agents that stay alive and print a line a second (what a thinking agent looks
like to the worker: a live process group, a pipe that rarely speaks, a branch that
does not move) run for `seconds`; the worker's CPU over that window, minus its CPU
over an equal window with no run at all (the baseline, measured first in the same
cocode), divided by N, is the cost of watching one run. Both windows are read
from the worker's own CPU counters, so other load on the machine slows them but
does not add to them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from cocode import updown
from cocode.bench.monitor import cancel, cpu_seconds, submit, wait_running
from cocode.configload import load_config
from cocode.gitops.runner import init_repo
from cocode.paths import Paths

AGENT = "while :; do echo thinking; sleep 1; done"


def run(runs: int = 5, seconds: float = 60.0, progress: bool = True) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-watch-"))
    repo = tmp / "repo"
    repo.mkdir()
    init_repo(repo, "bench", name="bench", email="bench@cocode.invalid")
    paths = Paths(repo)
    paths.home.mkdir(mode=0o700, exist_ok=True)
    paths.config.write_text(
        "sandbox: off\nperformance:\n  max_concurrent_agents: %d\n  worktree_pool: 0\n"
        "agents:\n  idle:\n    command: [sh, -c, '%s']\n" % (max(runs, 1), AGENT))
    config = load_config(paths.config)
    try:
        updown.start_detached(paths)
        worker = psutil.Process(int((paths.run / "worker.pid").read_text()))
        time.sleep(4.0)  # past the services' eager start-up heartbeats
        say(f"worker with no run, {seconds:.0f} s ...")
        c0 = cpu_seconds(worker)
        time.sleep(seconds)
        idle = (cpu_seconds(worker) - c0) / seconds * 100
        jobs = [submit(paths, config, "idle") for _ in range(runs)]
        wait_running(paths, jobs)
        time.sleep(2.0)  # past each run's start-up work
        say(f"worker watching {runs} runs, {seconds:.0f} s ...")
        c0 = cpu_seconds(worker)
        time.sleep(seconds)
        busy = (cpu_seconds(worker) - c0) / seconds * 100
        cancel(paths, jobs)
    finally:
        updown.stop(paths)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "runs": runs,
        "seconds": seconds,
        "worker_idle_cpu_pct": round(idle, 3),
        "worker_busy_cpu_pct": round(busy, 3),
        "cpu_pct_per_run": round(max(0.0, busy - idle) / runs, 3),
        "loadavg": psutil.getloadavg()[0],
    }


def report(r: dict) -> str:
    return "\n".join([
        f"worker CPU per watched run ({r['runs']} idle agents, {r['seconds']:.0f} s windows, load {r['loadavg']:.1f})",
        f"  with the runs   {r['worker_busy_cpu_pct']:.2f}% of a core",
        f"  no run (baseline, same cocode)  {r['worker_idle_cpu_pct']:.2f}%",
        f"  per run         {r['cpu_pct_per_run']:.3f}% (target <= 1%)",
    ])
