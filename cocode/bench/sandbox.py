"""`cocode bench sandbox`: what confining agents costs, measured in one run.

Two cocode instances run side by side on two copies of a small repository, one
with `sandbox: off`, one with `sandbox: bwrap`; submissions alternate between
them, so both see the same machine:
- submit -> agent exec: the agent's first command stamps the time into its
  worktree (the one place a sandboxed agent can write). Target: the sandbox adds
  < 20 ms at p50.
- run_started -> exec: from the worker's Popen returning to the agent's first
  command, the part of start-up the sandbox changes, with less of the pipeline's noise.
- bwrap alone: `bwrap <a run's arguments> true` against `true`, the building block.
- agent -> `cocode tail` latency: an agent writes stamped lines (100 lines/s for a
  few seconds); the real `cocode tail -f` reads them, inside and outside, past the
  warm-up (bench/stamped.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cocode import updown
from cocode.bench import percentile, stamped
from cocode.client import append_one
from cocode.configload import load_config
from cocode.errors import EXIT_MISSING_DEPENDENCY, CocodeError
from cocode.gitops.runner import init_repo
from cocode.jobs import watch
from cocode.jobs.submit import Issue, build_job
from cocode.paths import Paths
from cocode.runkey import RunKey

MODES = ("off", "bwrap")
EXEC = 'date +%s%N > "$COCODE_REPO_PATH/.exec"'
# Stamped lines, `rate` a second for `seconds` (inline: a sandboxed agent sees no /tmp of ours).
WRITER = (
    "import os, sys, time\n"
    "rate, seconds = float(sys.argv[1]), float(sys.argv[2])\n"
    "t0 = time.monotonic(); n = 0\n"
    "while time.monotonic() - t0 < seconds:\n"
    "    os.write(1, b'T%d line\\n' % time.time_ns())\n"
    "    n += 1\n"
    "    d = t0 + n / rate - time.monotonic()\n"
    "    if d > 0: time.sleep(d)\n"
)


def available() -> None:
    from cocode.jobs import sandbox

    why = sandbox.unavailable()
    if why:
        raise CocodeError(f"the sandbox cannot run here: {why}", EXIT_MISSING_DEPENDENCY)


def make_instance(root: Path, mode: str, rate: float, seconds: float) -> Paths:
    root.mkdir(parents=True)
    for i in range(200):
        (root / f"file{i}.txt").write_text(f"line {i}\n" * 20)
    init_repo(root, "bench sandbox", name="bench", email="bench@cocode.invalid")
    paths = Paths(root)
    paths.home.mkdir(mode=0o700)
    agents = {
        "exec": {"command": ["sh", "-c", EXEC]},
        "writer": {"command": [sys.executable, "-c", WRITER, str(rate), str(seconds)]},
    }
    paths.config.write_text(json.dumps({"sandbox": mode, "agents": agents}))
    return paths


def submit(paths: Paths, agent: str) -> tuple[str, int]:
    event, _ = build_job(paths, load_config(paths.config), Issue("bench", "bench"), [agent])
    t = time.time_ns()
    append_one(paths, event)
    return event.job, t


def run(jobs: int = 15, seconds: float = 4.0, progress: bool = True) -> dict:
    available()
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-sandbox-"))
    started: list[Paths] = []
    try:
        instances = {m: make_instance(tmp / m, m, 100.0, seconds) for m in MODES}
        for paths in instances.values():
            updown.start_detached(paths)
            started.append(paths)
        say(f"submit -> exec: {jobs} jobs each, alternating sandbox off / bwrap ...")
        exec_ms = {m: [] for m in MODES}
        start_ms = {m: [] for m in MODES}  # run_started (the worker's Popen returned) -> exec
        states = {m: None for m in MODES}
        for i in range(jobs):
            # ABBA: the second of a pair runs while the first one's instance is still
            # winding down (its worker, its log collector); alternating cancels that out.
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                paths = instances[mode]
                job, t = submit(paths, "exec")
                seen: dict[str, float] = {}
                states[mode] = watch.watch_job(paths, job, states[mode] or _state(paths),
                                               lambda e, seen=seen: _note_start(e, seen), None, timeout=60)
                stamp = int((RunKey(job, "exec").worktree(paths) / ".exec").read_text())
                exec_ms[mode].append((stamp - t) / 1e6)
                if "started" in seen:
                    start_ms[mode].append((stamp - seen["started"] * 1e9) / 1e6)
        say("bwrap alone: a run's arguments around `true`, against `true` ...")
        wrap_ms, bare_ms = bwrap_alone(instances["bwrap"])
        tail = {}
        for mode, paths in instances.items():
            say(f"agent -> cocode tail, sandbox {mode}: 100 lines/s for {seconds:g} s ...")
            tail[mode] = tail_latency(paths, seconds)
    finally:
        for paths in started:
            updown.stop(paths)
        shutil.rmtree(tmp, ignore_errors=True)
    p50 = {m: percentile(v, 50) for m, v in exec_ms.items()}
    return {
        "exec_p50_ms": {m: round(v, 1) for m, v in p50.items()},
        "exec_p99_ms": {m: round(percentile(v, 99), 1) for m, v in exec_ms.items()},
        "added_p50_ms": round(p50["bwrap"] - p50["off"], 1),
        # Per pair (the two submissions made back to back): less of the machine's noise.
        "added_paired_p50_ms": round(percentile([b - a for a, b in zip(exec_ms["off"], exec_ms["bwrap"])], 50), 1),
        "started_to_exec_p50_ms": {m: round(percentile(v, 50), 1) for m, v in start_ms.items()},
        "bwrap_true_p50_ms": round(percentile(wrap_ms, 50), 2),
        "true_p50_ms": round(percentile(bare_ms, 50), 2),
        "tail_p50_ms": {m: round(percentile(v, 50), 2) for m, v in tail.items()},
        "tail_p99_ms": {m: round(percentile(v, 99), 2) for m, v in tail.items()},
        "tail_samples": {m: len(v) for m, v in tail.items()},
        "jobs": jobs,
    }


def _note_start(event, seen: dict[str, float]) -> None:
    from cocode.core import events as ev

    if isinstance(event, ev.RunStarted):
        seen["started"] = event.ts


def _state(paths: Paths):
    from cocode import client

    return client.current_state(paths)


def bwrap_alone(paths: Paths, n: int = 30) -> tuple[list[float], list[float]]:
    """The arguments a run gets (its workspace made up here), around `true`."""
    from cocode.jobs import sandbox

    probe = paths.worktrees / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    issue = paths.home / "probe-issue.md"
    issue.write_text("probe\n")
    run_home = paths.worktrees / "probe-home"
    run_home.mkdir(mode=0o700, exist_ok=True)
    argv = sandbox.wrap(["true"], root=paths.root, worktree=probe, git_common=paths.root / ".git", job="probe",
                        issue_file=issue, home=None, run_home=run_home)
    wrapped, bare = [], []
    for _ in range(n):
        for cmd, out in ((argv, wrapped), (["true"], bare)):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            out.append((time.perf_counter() - t0) * 1000)
    return wrapped, bare


def tail_latency(paths: Paths, seconds: float) -> list[float]:
    job, _ = submit(paths, "writer")
    return stamped.tail_latency(paths, job, ["writer"], seconds)


def report(r: dict) -> str:
    e50, e99, t50, t99 = r["exec_p50_ms"], r["exec_p99_ms"], r["tail_p50_ms"], r["tail_p99_ms"]
    return "\n".join([
        f"submit -> agent exec, sandbox off    p50 {e50['off']:.0f} ms  p99 {e99['off']:.0f} ms   ({r['jobs']} jobs)",
        f"submit -> agent exec, sandbox bwrap  p50 {e50['bwrap']:.0f} ms  p99 {e99['bwrap']:.0f} ms",
        f"added by the sandbox                 {r['added_p50_ms']:+.1f} ms at p50, {r['added_paired_p50_ms']:+.1f} ms "
        f"per pair at p50   (target < 20 ms)",
        f"run_started -> exec, off / bwrap     p50 {r['started_to_exec_p50_ms']['off']:.1f} ms / "
        f"{r['started_to_exec_p50_ms']['bwrap']:.1f} ms   (the agent's own start: Popen returned -> its first command)",
        f"bwrap ... true / true                p50 {r['bwrap_true_p50_ms']:.2f} ms / {r['true_p50_ms']:.2f} ms",
        f"agent -> cocode tail, off            p50 {t50['off']:.2f} ms  p99 {t99['off']:.2f} ms  ({r['tail_samples']['off']} lines)",
        f"agent -> cocode tail, bwrap          p50 {t50['bwrap']:.2f} ms  p99 {t99['bwrap']:.2f} ms  ({r['tail_samples']['bwrap']} lines)",
    ])
