"""`cocode bench jobs`: the job pipeline on a 2,000-file repository.

Measured in one run, on a fresh sample repository with cocode started there:
- submit -> agent exec, against bare `git worktree add` of the same repository
  (interleaved, so both see the same disk);
- ready commit -> `run_ready` event (the agent stamps the time its commit returned);
- the worker's CPU per watched run, over its idle CPU;
- a dispatch decision with 1,000 queued jobs (the pure dispatch.plan).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psutil

from cocode import supervisor
from cocode.jobs import dispatch
from cocode.jobs import watch
from cocode.core import events as ev
from cocode.core import state as st
from cocode.bench import percentile
from cocode.client import append_one
from cocode.config import load_config
from cocode.gitops.runner import git, init_repo
from cocode.paths import Paths
from cocode.jobs.submit import Issue, build_job

AGENT = r"""
date +%s%N > "$BENCH_OUT/$COCODE_JOB_ID.exec"
git commit -q --allow-empty -m bench -m "$COCODE_READY_MARKER"
date +%s%N > "$BENCH_OUT/$COCODE_JOB_ID.commit"
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


def write_config(paths: Paths, out: Path) -> None:
    paths.home.mkdir(mode=0o700, exist_ok=True)
    lines = [
        "performance:", "  max_worktrees: 50", "  max_concurrent_agents: 10",
        "agents:",
    ]
    for name, sleep in (("bench", "0"), ("bench-watch", "6")):
        lines += [
            f"  {name}:",
            f"    command: [sh, -c, '{AGENT.strip().replace(chr(10), '; ')}']",
            "    env: {BENCH_OUT: '%s', BENCH_SLEEP: '%s', GIT_AUTHOR_NAME: bench, GIT_AUTHOR_EMAIL: b@c.invalid,"
            " GIT_COMMITTER_NAME: bench, GIT_COMMITTER_EMAIL: b@c.invalid}" % (out, sleep),
        ]
    paths.config.write_text("\n".join(lines) + "\n")


def worktree_add_ms(repo: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    git(repo, "worktree", "add", "-q", "--detach", str(dest), "HEAD")
    return (time.perf_counter() - t0) * 1000


def submit(paths: Paths, config, agent: str, state: st.State) -> tuple[str, int]:
    event, _ = build_job(paths, config, Issue("bench", "bench"), [agent])
    t_submit = time.time_ns()
    append_one(paths, event)
    return event.job, t_submit


def dispatch_decision_ms(jobs: int = 1000) -> float:
    s = st.State()
    for i in range(jobs):
        st.apply(s, ev.JobSubmitted(seq=i + 1, job=f"j{i}", title="t", body="b",
                                    agents=["a", "b", "c"], base_sha="x", priority=i % 3))
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        dispatch.plan(s, 5, 10, set(), {"w": 0})
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 50)


def run(jobs: int = 15, watched: int = 5, progress: bool = True) -> dict:
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-"))
    try:
        say("making a 2,000-file repository ...")
        repo = make_repo(tmp / "repo")
        out = tmp / "out"
        out.mkdir()
        paths = Paths(repo)
        write_config(paths, out)
        config = load_config(paths.config)
        supervisor.start_detached(paths)
        try:
            return measure(paths, config, tmp, out, jobs, watched, say)
        finally:
            supervisor.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(paths, config, tmp, out, jobs, watched, say) -> dict:
    exec_ms, add_ms, ready_ms = [], [], []
    state = st.State()
    say(f"{jobs} jobs, each interleaved with a bare `git worktree add` ...")
    for i in range(jobs):
        add_ms.append(worktree_add_ms(paths.root, tmp / f"bare-{i}"))
        job, t_submit = submit(paths, config, "bench", state)
        got: dict[str, float] = {}

        def on_event(e, got=got):
            if isinstance(e, ev.RunReady):
                got["ready_ns"] = e.ts * 1e9

        state = watch.watch_job(paths, job, state, on_event, None, timeout=60)
        exec_ns = int((out / f"{job}.exec").read_text())
        commit_ns = int((out / f"{job}.commit").read_text())
        exec_ms.append((exec_ns - t_submit) / 1e6)
        if "ready_ns" in got:
            # The ref moves before `git commit` returns; a negative value means seen earlier.
            ready_ms.append(max(0.0, (got["ready_ns"] - commit_ns) / 1e6))
    worker = psutil.Process(int((paths.run / "worker.pid").read_text()))
    say("worker CPU: idle, then watching runs ...")
    idle = cpu_pct(worker, 2.0)
    started = [submit(paths, config, "bench-watch", state)[0] for _ in range(watched)]
    time.sleep(1.5)  # let them all start
    busy = cpu_pct(worker, 3.0)
    for job in started:
        state = watch.watch_job(paths, job, state, lambda e: None, None, timeout=60)
    exec_p50 = percentile(exec_ms, 50)
    add_p50 = percentile(add_ms, 50)
    return {
        "exec_p50_ms": round(exec_p50, 1),
        "exec_p99_ms": round(percentile(exec_ms, 99), 1),
        "worktree_add_p50_ms": round(add_p50, 1),
        "exec_ratio": round(exec_p50 / add_p50, 2),
        "ready_p50_ms": round(percentile(ready_ms, 50), 1),
        "ready_p99_ms": round(percentile(ready_ms, 99), 1),
        "dispatch_ms": round(dispatch_decision_ms(), 3),
        "watch_cpu_pct_per_run": round(max(0.0, busy - idle) / watched, 2),
        "worker_idle_cpu_pct": round(idle, 2),
        "jobs": jobs,
        "watched_runs": watched,
    }


def cpu_pct(proc: psutil.Process, seconds: float) -> float:
    t0 = proc.cpu_times()
    time.sleep(seconds)
    t1 = proc.cpu_times()
    return (t1.user + t1.system - t0.user - t0.system) / seconds * 100


def report(r: dict) -> str:
    return "\n".join([
        f"submit -> agent exec     p50 {r['exec_p50_ms']:.0f} ms  p99 {r['exec_p99_ms']:.0f} ms   ({r['jobs']} jobs, 2,000-file repo)",
        f"bare git worktree add    p50 {r['worktree_add_p50_ms']:.0f} ms",
        f"ratio                    {r['exec_ratio']:.2f}",
        f"ready commit -> event    p50 {r['ready_p50_ms']:.1f} ms  p99 {r['ready_p99_ms']:.1f} ms",
        f"worker CPU per watched run {r['watch_cpu_pct_per_run']:.2f}% of a core (idle worker {r['worker_idle_cpu_pct']:.2f}%)",
        f"dispatch decision, 1,000 queued jobs  {r['dispatch_ms']:.3f} ms",
    ])
