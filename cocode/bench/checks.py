"""`cocode bench checks`: how soon checks start, and how well they share the cap.

Measured in one run, on a small fresh repository with cocode started there:
- ready commit (the mtime of the branch ref git wrote) -> first check_started,
  with the same run's ready commit -> run_ready (the worker's detection, the step
  before) as the baseline;
- 5 runs, each a quick agent then a 2 s check, with max_concurrent_agents 3: the
  wall time from submit to the last check_finished, against the ideal schedule of
  the same measured agent and check durations on 3 slots (list scheduling, every
  check as soon as its agent ended and a slot is free) plus the first dispatch.
"""

from __future__ import annotations

import heapq
import shutil
import tempfile
import time
from pathlib import Path

from cocode import client, updown
from cocode.bench import percentile
from cocode.client import append_one
from cocode.configload import load_config
from cocode.core import events as ev
from cocode.core.views import State
from cocode.gitops import init_repo
from cocode.jobs import checks as checks_mod
from cocode.jobs import watch
from cocode.jobs.submit import Issue, build_job
from cocode.paths import Paths

AGENT = 'git commit -q --allow-empty -m bench -m "$COCODE_READY_MARKER"'

SLOTS = 3
RUNS = 5


def setup(root: Path, out: Path) -> Paths:
    root.mkdir(parents=True)
    (root / "README").write_text("bench\n")
    init_repo(root, "bench", name="bench", email="bench@cocode.invalid")
    paths = Paths(root)
    paths.home.mkdir(mode=0o700)
    env = ("{BENCH_OUT: '%s', GIT_AUTHOR_NAME: b, GIT_AUTHOR_EMAIL: b@c.invalid, "
           "GIT_COMMITTER_NAME: b, GIT_COMMITTER_EMAIL: b@c.invalid}" % out)
    # sandbox off: the agents write to files outside their workspace (hidden by the
    # sandbox) or run from /tmp; `cocode bench sandbox` measures the sandbox itself.
    lines = ["sandbox: off", "performance:", f"  max_concurrent_agents: {SLOTS}", "  max_worktrees: 50", "agents:"]
    for i in range(1, RUNS + 1):
        lines += [f"  b{i}:", f"    command: [sh, -c, '{AGENT}']", f"    env: {env}"]
    # One check whose length the bench sets per phase (0 s, then 2 s).
    lines += ["checks:", f"  wait: sleep $(cat {out}/check_seconds)"]
    paths.config.write_text("\n".join(lines) + "\n")
    return paths


def submit(paths: Paths, config, agents: list[str]) -> tuple[str, float]:
    event, _ = build_job(paths, config, Issue("bench", "bench"), agents)
    t = time.time()
    append_one(paths, event)
    return event.job, t


def run_job(paths: Paths, config, agents: list[str], state: State) -> tuple[State, str, float, list]:
    job, t_submit = submit(paths, config, agents)
    seen: list[ev.Event] = []
    state = watch.watch_job(paths, job, state, seen.append, None, timeout=120,
                            settled=lambda _, j: checks_mod.settled(j, ["wait"]))
    return state, job, t_submit, seen


def ideal_makespan(agent_s: list[float], check_s: list[float], slots: int) -> float:
    """List scheduling on `slots`: agents in order, each check once its agent ended."""
    free = [0.0] * slots
    ready: list[float] = []
    for a in agent_s:
        t = heapq.heappop(free)
        heapq.heappush(free, t + a)
        ready.append(t + a)
    end = 0.0
    for r, c in sorted(zip(ready, check_s)):
        t = max(heapq.heappop(free), r)
        heapq.heappush(free, t + c)
        end = max(end, t + c)
    return end


def run(samples: int = 20, progress: bool = True) -> dict:
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-checks-"))
    try:
        out = tmp / "out"
        out.mkdir()
        paths = setup(tmp / "repo", out)
        config = load_config(paths.config)
        updown.start_detached(paths)
        try:
            return measure(paths, config, out, samples, say)
        finally:
            updown.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(paths: Paths, config, out: Path, samples: int, say) -> dict:
    state = client.current_state(paths)
    (out / "check_seconds").write_text("0\n")
    to_check, to_ready, reaction, sched = [], [], [], []
    say(f"{samples} jobs one after another: ready commit -> check_started ...")
    for _ in range(samples):
        state, job, t_submit, seen = run_job(paths, config, ["b1"], state)
        # The moment the ready commit exists: its branch ref file was written (a stamp
        # by the agent after `git commit` returns comes later than the events it causes).
        commit = (paths.root / ".git" / "refs" / "heads" / "cocode" / job / "b1").stat().st_mtime_ns / 1e9
        ready = next(e.ts for e in seen if isinstance(e, ev.RunReady))
        started = next(e.ts for e in seen if isinstance(e, ev.CheckStarted))
        to_ready.append((ready - commit) * 1000)
        to_check.append((started - commit) * 1000)
        reaction.append((started - ready) * 1000)
        submitted = next(e.ts for e in seen if isinstance(e, ev.RunDispatched))
        sched.append((submitted - t_submit) * 1000)

    (out / "check_seconds").write_text("2\n")
    say(f"{RUNS} runs x a 2 s check, max_concurrent_agents {SLOTS} ...")
    agents = [f"b{i}" for i in range(1, RUNS + 1)]
    state, job, t_submit, seen = run_job(paths, config, agents, state)
    wall = max(e.ts for e in seen if isinstance(e, ev.CheckFinished)) - t_submit
    dispatched = {e.agent: e.ts for e in seen if isinstance(e, ev.RunDispatched)}
    finished = {e.agent: e.ts for e in seen if isinstance(e, ev.RunFinished)}
    checked = {e.agent: e.duration_s for e in seen if isinstance(e, ev.CheckFinished)}
    agent_s = [finished[a] - dispatched[a] for a in agents]
    first = min(dispatched.values()) - t_submit
    ideal = first + ideal_makespan(agent_s, [checked[a] for a in agents], SLOTS)
    return {
        "check_start_p50_ms": round(percentile(to_check, 50), 1),
        "check_start_p99_ms": round(percentile(to_check, 99), 1),
        "ready_event_p50_ms": round(percentile(to_ready, 50), 1),
        "ready_event_p99_ms": round(percentile(to_ready, 99), 1),
        "reaction_p50_ms": round(percentile(reaction, 50), 1),
        "reaction_p99_ms": round(percentile(reaction, 99), 1),
        "dispatch_p50_ms": round(percentile(sched, 50), 1),
        "dispatch_p99_ms": round(percentile(sched, 99), 1),
        "samples": samples,
        "share_wall_s": round(wall, 2),
        "share_ideal_s": round(ideal, 2),
        "share_ratio": round(wall / ideal, 2),
        "agent_p50_s": round(percentile(agent_s, 50), 2),
        "first_dispatch_s": round(first, 3),
    }


def report(r: dict) -> str:
    return "\n".join([
        f"ready commit -> check_started  p50 {r['check_start_p50_ms']:.0f} ms  p99 {r['check_start_p99_ms']:.0f} ms"
        f"   ({r['samples']} jobs; target p99 < 100 ms)",
        f"ready commit -> run_ready      p50 {r['ready_event_p50_ms']:.0f} ms  p99 {r['ready_event_p99_ms']:.0f} ms"
        "   (baseline: the step before)",
        f"run_ready -> check_started     p50 {r['reaction_p50_ms']:.0f} ms  p99 {r['reaction_p99_ms']:.0f} ms"
        f"   (vs submit -> run_dispatched, the scheduler's same path: p50 {r['dispatch_p50_ms']:.0f} ms"
        f"  p99 {r['dispatch_p99_ms']:.0f} ms)",
        f"{RUNS} runs x 2 s check, cap {SLOTS}: wall {r['share_wall_s']:.2f} s, ideal {r['share_ideal_s']:.2f} s, "
        f"ratio {r['share_ratio']:.2f} (target <= 1.2; agents p50 {r['agent_p50_s']:.2f} s)",
    ])
