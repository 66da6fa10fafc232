"""`cocode bench jobs`: the job pipeline on a 2,000-file repository.

Measured in one run, on two identical fresh sample repositories, each with its own
cocode: one with the worktree pool (`worktree_pool: 2`), one without (0):
- submit -> agent exec with the pool and without it, against bare `git worktree add`
  of the same repository, interleaved so all three see the same disk and load; before
  each round the pool has refilled (a start after an idle moment, the case the pool is
  for), so no background checkout competes with the measured ones;
- the worker's prepare time (`run_started.worktree_ms`) with and without the pool;
- ready commit -> `run_ready` event (the agent stamps the time its commit returned): the
  event's own time (made in the worker) and its receipt here, through store and bus,
  as any subscriber sees it; and the worker's git time for it (`detect_ms`);
- the worker's CPU per watched run, over its idle CPU;
- a dispatch decision with 1,000 queued jobs (the pure dispatch.plan).

Agents run unsandboxed, as earlier runs were measured; `--sandbox` runs both sides
in bubblewrap, so the sandbox's start is in the measured path too. Every sample
is saved (`samples`) for `cocode bench plot`'s CDFs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psutil

from cocode import updown
from cocode.jobs import dispatch
from cocode.jobs import watch
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from cocode.bench import cdf_points, percentile
from cocode.client import append_one
from cocode.configload import load_config
from cocode.gitops.pool import WorktreePool
from cocode.gitops.runner import git, init_repo
from cocode.paths import Paths
from cocode.runkey import RunKey
from cocode.jobs.submit import Issue, build_job

# The stamps go into the run's own workspace (untracked, so the commit leaves them
# out): the one place the agent may write with or without the sandbox.
AGENT = r"""
date +%s%N > .bench-exec
git commit -q --allow-empty -m bench -m "$COCODE_READY_MARKER"
date +%s%N > .bench-commit
sleep "${BENCH_SLEEP:-0}"
"""


def make_repo(root: Path, files: int = 2000, size: int = 10_000) -> Path:
    root.mkdir(parents=True)
    block = (b"x" * 99 + b"\n") * (size // 100)
    for i in range(files):
        d = root / f"dir{i % 50:02d}"
        d.mkdir(exist_ok=True)
        (d / f"file{i}.txt").write_bytes(block)
    init_repo(root, "bench repo", name="bench", email="bench@cocode.invalid")
    return root


def write_config(paths: Paths, pool: int = 2, sandbox: str = "off") -> None:
    paths.home.mkdir(mode=0o700, exist_ok=True)
    # sandbox off by default, as earlier runs were measured; `--sandbox` runs both sides
    # in bubblewrap (`cocode bench sandbox` measures the sandbox against none).
    lines = [
        f"sandbox: {sandbox}", "performance:", "  max_worktrees: 50", "  max_concurrent_agents: 10", f"  worktree_pool: {pool}",
        "agents:",
    ]
    for name, sleep in (("bench", "0"), ("bench-watch", "6")):
        lines += [
            f"  {name}:",
            f"    command: [sh, -c, '{AGENT.strip().replace(chr(10), '; ')}']",
            "    env: {BENCH_SLEEP: '%s', GIT_AUTHOR_NAME: bench, GIT_AUTHOR_EMAIL: b@c.invalid,"
            " GIT_COMMITTER_NAME: bench, GIT_COMMITTER_EMAIL: b@c.invalid}" % sleep,
        ]
    paths.config.write_text("\n".join(lines) + "\n")


def worktree_add_ms(repo: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    git(repo, "worktree", "add", "-q", "--detach", str(dest), "HEAD")
    return (time.perf_counter() - t0) * 1000


def submit(paths: Paths, config, agent: str, state: State) -> tuple[str, int]:
    event, _ = build_job(paths, config, Issue("bench", "bench"), [agent])
    t_submit = time.time_ns()
    append_one(paths, event)
    return event.job, t_submit


def dispatch_decision_ms(jobs: int = 1000) -> float:
    s = State()
    for i in range(jobs):
        st.apply(s, ev.JobSubmitted(seq=i + 1, job=f"j{i}", title="t", body="b",
                                    agents=["a", "b", "c"], base_sha="x", priority=i % 3))
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        dispatch.plan(s, 5, 10, set(), {"w": 0})
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 50)


def run(jobs: int = 15, watched: int = 5, progress: bool = True, sandbox: bool = False) -> dict:
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-"))
    started: list[Paths] = []
    try:
        say("making two identical 2,000-file repositories ...")
        sides = []
        for name, pool in (("pool", 2), ("nopool", 0)):
            paths = Paths(make_repo(tmp / name))
            write_config(paths, pool, "bwrap" if sandbox else "off")
            sides.append(Side(name, paths, load_config(paths.config)))
        for side in sides:
            updown.start_detached(side.paths)
            started.append(side.paths)
        return {**measure(sides[0], sides[1], tmp, jobs, watched, say), "sandbox": sandbox}
    finally:
        for paths in started:
            updown.stop(paths)
        shutil.rmtree(tmp, ignore_errors=True)


class Side:
    """One repository with its own cocode, and what its jobs measured."""

    def __init__(self, name: str, paths: Paths, config) -> None:
        self.name, self.paths, self.config = name, paths, config
        self.state = State()
        self.exec_ms: list[float] = []
        self.prepare_ms: list[float] = []
        self.ready_ms: list[float] = []
        self.seen_ms: list[float] = []
        self.detect_ms: list[float] = []

    def one_job(self, agent: str = "bench") -> None:
        job, t_submit = submit(self.paths, self.config, agent, self.state)
        got: dict[str, float] = {}

        def on_event(e, got=got):
            if isinstance(e, ev.RunReady):
                got["ready_ns"] = e.ts * 1e9
                got["seen_ns"] = time.time_ns()  # delivered to this subscriber
                got["detect_ms"] = e.detect_ms
            elif isinstance(e, ev.RunStarted):
                got["prepare_ms"] = e.worktree_ms

        self.state = watch.watch_job(self.paths, job, self.state, on_event, None, timeout=60)
        workspace = RunKey(job, agent).worktree(self.paths)
        exec_ns = int((workspace / ".bench-exec").read_text())
        commit_ns = int((workspace / ".bench-commit").read_text())
        self.exec_ms.append((exec_ns - t_submit) / 1e6)
        self.prepare_ms.append(got.get("prepare_ms", float("nan")))
        if "ready_ns" in got:
            # The ref moves before `git commit` returns; a negative value means seen earlier.
            self.ready_ms.append(max(0.0, (got["ready_ns"] - commit_ns) / 1e6))
            self.seen_ms.append(max(0.0, (got["seen_ns"] - commit_ns) / 1e6))
            self.detect_ms.append(got["detect_ms"])


def wait_pool(paths: Paths, size: int, timeout: float = 60.0) -> None:
    """Until the pool holds `size` ready entries (it refills in the background)."""
    pool = WorktreePool(paths.root, paths.pool)
    deadline = time.monotonic() + timeout
    while len(pool.ready()) < size or len(pool.entries()) != len(pool.ready()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worktree pool of {paths.root} did not refill in {timeout:g}s")
        time.sleep(0.02)


def measure(pooled: Side, bare: Side, tmp, jobs, watched, say) -> dict:
    add_ms: list[float] = []
    say(f"{jobs} rounds: a bare `git worktree add`, a job with the pool, a job without ...")
    wait_pool(pooled.paths, 2)
    for i in range(jobs):
        # The order rotates, so no side always runs right after another's disk writes.
        for step in ((0, 1, 2), (1, 2, 0), (2, 0, 1))[i % 3]:
            if step == 0:
                add_ms.append(worktree_add_ms(bare.paths.root, tmp / f"bare-{i}"))
            elif step == 1:
                pooled.one_job()
                wait_pool(pooled.paths, 2)  # its refill must not slow the other two down
            else:
                bare.one_job()
    paths, config, state = pooled.paths, pooled.config, pooled.state
    ready_ms = pooled.ready_ms + bare.ready_ms
    seen_ms = pooled.seen_ms + bare.seen_ms
    detect_ms = pooled.detect_ms + bare.detect_ms
    worker = psutil.Process(int((paths.run / "worker.pid").read_text()))
    say("worker CPU: idle, then watching runs ...")
    idle = cpu_pct(worker, 2.0)
    started = [submit(paths, config, "bench-watch", state)[0] for _ in range(watched)]
    time.sleep(1.5)  # let them all start
    busy = cpu_pct(worker, 3.0)
    for job in started:
        state = watch.watch_job(paths, job, state, lambda e: None, None, timeout=60)
    exec_p50 = percentile(pooled.exec_ms, 50)
    nopool_p50 = percentile(bare.exec_ms, 50)
    add_p50 = percentile(add_ms, 50)
    return {
        "exec_p50_ms": round(exec_p50, 1),
        "exec_p99_ms": round(percentile(pooled.exec_ms, 99), 1),
        "exec_nopool_p50_ms": round(nopool_p50, 1),
        "exec_nopool_p99_ms": round(percentile(bare.exec_ms, 99), 1),
        "prepare_p50_ms": round(percentile(pooled.prepare_ms, 50), 1),
        "prepare_nopool_p50_ms": round(percentile(bare.prepare_ms, 50), 1),
        "worktree_add_p50_ms": round(add_p50, 1),
        "worktree_add_p99_ms": round(percentile(add_ms, 99), 1),
        "exec_ratio": round(exec_p50 / add_p50, 3),
        "exec_nopool_ratio": round(nopool_p50 / add_p50, 3),
        "ready_p50_ms": round(percentile(ready_ms, 50), 1),
        "ready_p99_ms": round(percentile(ready_ms, 99), 1),
        "ready_seen_p50_ms": round(percentile(seen_ms, 50), 1),
        "ready_seen_p99_ms": round(percentile(seen_ms, 99), 1),
        "ready_detect_p50_ms": round(percentile(detect_ms, 50), 1),
        "ready_detect_p99_ms": round(percentile(detect_ms, 99), 1),
        "dispatch_ms": round(dispatch_decision_ms(), 3),
        "watch_cpu_pct_per_run": round(max(0.0, busy - idle) / watched, 2),
        "worker_idle_cpu_pct": round(idle, 2),
        "jobs": jobs,
        "watched_runs": watched,
        # For `bench plot`'s CDFs: every sample of this run, sorted.
        "samples": {"exec_ms": cdf_points(pooled.exec_ms), "exec_nopool_ms": cdf_points(bare.exec_ms),
                    "worktree_add_ms": cdf_points(add_ms), "ready_ms": cdf_points(ready_ms),
                    "ready_seen_ms": cdf_points(seen_ms)},
    }


def cpu_pct(proc: psutil.Process, seconds: float) -> float:
    t0 = proc.cpu_times()
    time.sleep(seconds)
    t1 = proc.cpu_times()
    return (t1.user + t1.system - t0.user - t0.system) / seconds * 100


def report(r: dict) -> str:
    return "\n".join([
        f"submit -> agent exec, pool     p50 {r['exec_p50_ms']:.0f} ms  p99 {r['exec_p99_ms']:.0f} ms"
        f"   ({r['jobs']} jobs each, 2,000-file repo{', sandboxed' if r.get('sandbox') else ''})",
        f"submit -> agent exec, no pool  p50 {r['exec_nopool_p50_ms']:.0f} ms  p99 {r['exec_nopool_p99_ms']:.0f} ms",
        f"bare git worktree add          p50 {r['worktree_add_p50_ms']:.0f} ms  p99 {r['worktree_add_p99_ms']:.0f} ms",
        f"ratio to bare add              pool {r['exec_ratio']:.3f}  no pool {r['exec_nopool_ratio']:.3f}",
        f"worker prepare                 pool {r['prepare_p50_ms']:.0f} ms  no pool {r['prepare_nopool_p50_ms']:.0f} ms",
        f"ready commit -> event    p50 {r['ready_p50_ms']:.1f} ms  p99 {r['ready_p99_ms']:.1f} ms",
        f"ready commit -> seen     p50 {r['ready_seen_p50_ms']:.1f} ms  p99 {r['ready_seen_p99_ms']:.1f} ms"
        f"   (the worker's git: p50 {r['ready_detect_p50_ms']:.1f}  p99 {r['ready_detect_p99_ms']:.1f} ms)",
        f"worker CPU per watched run {r['watch_cpu_pct_per_run']:.2f}% of a core (idle worker {r['worker_idle_cpu_pct']:.2f}%)",
        f"dispatch decision, 1,000 queued jobs  {r['dispatch_ms']:.3f} ms",
    ])
