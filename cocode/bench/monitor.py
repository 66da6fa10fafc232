"""`cocode bench monitor`: what watching agents costs, how fast a limit bites, how
much memory cocode itself holds. All measured in one run, on a fresh repository
with cocode started there, at the default 1 s sampling:

- the monitor's CPU (percent of one core) with 10 runs of 10 processes each,
  against the same monitor idle; and one sample of those 10 trees with
  cocode.resources.proctree against a plain psutil walk (children(recursive=True), fresh
  Process objects) of the same trees: the design's saving, as a ratio;
- crossing the memory limit -> SIGTERM (the agent stamps both), over the
  sampling interval (target <= 1.5);
- the RSS of all cocode services (bus, store, scheduler, worker, logs, monitor)
  while 5 agents run (target < 160 MiB), with their PSS (shared pages divided
  among the processes that share them) beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from cocode import lock, updown
from cocode.bench import percentile
from cocode.client import append_one
from cocode.configload import load_config
from cocode.core.events import CancelRequested
from cocode.gitops.runner import init_repo
from cocode.paths import Paths
from cocode.resources.proctree import Sampler
from cocode.client import current_state
from cocode.launcher import SERVICE_NAMES
from cocode.jobs.submit import Issue, build_job

HOG = r"""
import os, signal, sys, time
out = os.environ["BENCH_OUT"]
def stamp(name):
    with open(os.path.join(out, f"{os.environ['COCODE_JOB_ID']}.{name}"), "w") as f:
        f.write(repr(time.time()))
def on_term(*_):
    stamp("term")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
time.sleep(float(os.environ.get("BENCH_DELAY", "0")))
limit = int(os.environ["BENCH_LIMIT_MB"]) << 20
page = os.sysconf("SC_PAGE_SIZE")
blocks = []
while True:
    blocks.append(bytearray(4 << 20))
    blocks[-1][::page] = b"x" * len(range(0, 4 << 20, page))
    with open("/proc/self/statm") as f:
        if int(f.read().split()[1]) * page > limit:
            stamp("crossed")
            break
while True:
    time.sleep(1)
"""
LIMIT_MB = 100
SERVICES = list(SERVICE_NAMES)


def write_config(paths: Paths, out: Path) -> None:
    paths.home.mkdir(mode=0o700, exist_ok=True)
    (out / "hog.py").write_text(HOG)
    config = {
        "sandbox": "off",  # the hog reports through BENCH_OUT, outside its workspace (hidden by the sandbox)
        "performance": {"max_concurrent_agents": 10, "max_worktrees": 50, "monitor_interval_ms": 1000},
        "agents": {
            "tree10": {"command": ["bash", "-c", "for i in $(seq 9); do sleep 300 & done; wait"]},
            "idle": {"command": ["sleep", "300"]},
            "hog": {"command": [sys.executable, str(out / "hog.py")], "memory_limit_mb": LIMIT_MB,
                    "env": {"BENCH_OUT": str(out), "BENCH_LIMIT_MB": str(LIMIT_MB)}},
        },
    }
    paths.config.write_text(json.dumps(config, indent=1))


def make_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "README").write_text("bench\n")
    init_repo(root, "bench repo", name="bench", email="bench@cocode.invalid")
    return root


def run(seconds: float = 10.0, hogs: int = 5, progress: bool = True) -> dict:
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-monitor-"))
    try:
        repo = make_repo(tmp / "repo")
        out = tmp / "out"
        out.mkdir()
        paths = Paths(repo)
        write_config(paths, out)
        updown.start_detached(paths)
        try:
            return measure(paths, load_config(paths.config), out, seconds, hogs, say)
        finally:
            updown.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def submit(paths: Paths, config, agent: str) -> str:
    event, _ = build_job(paths, config, Issue("bench", "bench"), [agent])
    append_one(paths, event)
    return event.job


def wait_running(paths: Paths, jobs: list[str], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = current_state(paths)
        runs = {j: next(iter(state.jobs[j].runs.values())) for j in jobs if j in state.jobs}
        if len(runs) == len(jobs) and all(r.pgid and r.live for r in runs.values()):
            return runs
        time.sleep(0.2)
    raise RuntimeError(f"runs did not all start within {timeout:.0f} s")


def wait_final(paths: Paths, jobs: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = current_state(paths)
        if all(state.jobs[j].done for j in jobs):
            return
        time.sleep(0.2)
    raise RuntimeError(f"runs did not all end within {timeout:.0f} s")


def cancel(paths: Paths, jobs: list[str]) -> None:
    for job in jobs:
        append_one(paths, CancelRequested(job=job))
    wait_final(paths, jobs)


def service_procs(paths: Paths) -> dict[str, psutil.Process]:
    return {name: psutil.Process(int((paths.run / f"{name}.pid").read_text())) for name in SERVICES}


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def monitor_cpu_pct(monitor: psutil.Process, seconds: float) -> float:
    c0, t0 = cpu_seconds(monitor), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(monitor) - c0) / (time.monotonic() - t0) * 100


def sample_ms(pgids: dict[str, int], rounds: int = 20) -> tuple[float, float]:
    """One sample of these trees: proctree (cached, after its first sample) vs a plain walk."""
    sampler = Sampler()
    for key, pgid in pgids.items():
        sampler.track(key, "a", pgid, "")
    sampler.sample(time.monotonic())
    ours, plain = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sampler.sample(time.monotonic())
        ours.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        for pgid in pgids.values():
            try:
                leader = psutil.Process(pgid)
                for p in [leader, *leader.children(recursive=True)]:
                    with p.oneshot():
                        p.memory_info()
                        p.cpu_times()
            except psutil.Error:
                pass
        plain.append((time.perf_counter() - t0) * 1000)
    return percentile(ours, 50), percentile(plain, 50)


def measure(paths: Paths, config, out: Path, seconds: float, hogs: int, say) -> dict:
    procs = service_procs(paths)
    monitor = procs["monitor"]
    time.sleep(4.0)  # past the services' eager start-up heartbeats
    say(f"monitor CPU idle, {seconds:.0f} s ...")
    idle = monitor_cpu_pct(monitor, seconds)

    say("10 runs x 10 processes ...")
    trees = [submit(paths, config, "tree10") for _ in range(10)]
    runs = wait_running(paths, trees)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sids = [_sid(pid) for pid in psutil.pids()]
        if all(sids.count(r.pgid) >= 10 for r in runs.values()):
            break
        time.sleep(0.2)
    time.sleep(2.0)  # the monitor has tracked them all
    say(f"monitor CPU with 10 x 10 processes, {seconds:.0f} s ...")
    busy = monitor_cpu_pct(monitor, seconds)
    ours_ms, plain_ms = sample_ms({j: r.pgid for j, r in runs.items()})
    cancel(paths, trees)

    say("services' memory while 5 agents run ...")
    idles = [submit(paths, config, "idle") for _ in range(5)]
    wait_running(paths, idles)
    time.sleep(2.0)
    procs = service_procs(paths)  # a restart would have changed a pid
    rss = {n: p.memory_info().rss for n, p in procs.items()}
    pss = {}
    for n, p in procs.items():
        try:
            pss[n] = p.memory_full_info().pss
        except (psutil.AccessDenied, AttributeError):
            pss[n] = 0
    sup_pid = lock.running_pid(paths)
    sup_rss = psutil.Process(sup_pid).memory_info().rss if sup_pid and sup_pid > 0 else 0
    cancel(paths, idles)

    say(f"{hogs} agents crossing a {LIMIT_MB} MB limit ...")
    latencies = []
    for _ in range(hogs):
        job = submit(paths, config, "hog")
        wait_final(paths, [job], timeout=60)
        try:
            crossed = float((out / f"{job}.crossed").read_text())
            term = float((out / f"{job}.term").read_text())
        except OSError:
            continue
        latencies.append(term - crossed)
    interval = config.limits.monitor_interval_ms / 1000
    mib = 1024 * 1024
    return {
        "interval_s": interval,
        "monitor_idle_cpu_pct": round(idle, 3),
        "monitor_cpu_pct_10x10": round(busy, 3),
        "monitor_cpu_pct_10x10_over_idle": round(busy - idle, 3),
        "sample_ms_proctree": round(ours_ms, 3),
        "sample_ms_plain_walk": round(plain_ms, 3),
        "sample_ratio": round(ours_ms / plain_ms, 4) if plain_ms else None,
        "limit_to_sigterm_s": [round(x, 3) for x in latencies],
        "limit_to_sigterm_p50_s": round(percentile(latencies, 50), 3),
        "limit_to_sigterm_max_s": round(max(latencies), 3) if latencies else None,
        "limit_to_sigterm_max_over_interval": round(max(latencies) / interval, 3) if latencies else None,
        "services_rss_mib": {n: round(v / mib, 1) for n, v in rss.items()},
        "services_rss_total_mib": round(sum(rss.values()) / mib, 1),
        "services_pss_total_mib": round(sum(pss.values()) / mib, 1),
        "supervisor_rss_mib": round(sup_rss / mib, 1),
    }


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def report(r: dict) -> str:
    per = ", ".join(f"{n} {v:.1f}" for n, v in r["services_rss_mib"].items())
    lat = r["limit_to_sigterm_max_over_interval"]
    return "\n".join([
        f"monitor CPU, 10 runs x 10 processes   {r['monitor_cpu_pct_10x10']:.2f}% of a core "
        f"(idle monitor {r['monitor_idle_cpu_pct']:.2f}%, so {max(0.0, r['monitor_cpu_pct_10x10_over_idle']):.2f}% "
        f"for the runs, within noise when ~0; target <= 2%)",
        f"one sample of the 10 trees            {r['sample_ms_proctree']:.2f} ms vs {r['sample_ms_plain_walk']:.2f} ms "
        f"for a plain psutil walk (ratio {r['sample_ratio']})",
        f"limit crossed -> SIGTERM              p50 {r['limit_to_sigterm_p50_s'] * 1000:.0f} ms, "
        f"max {(r['limit_to_sigterm_max_s'] or 0) * 1000:.0f} ms = {lat}x the {r['interval_s']:.1f} s interval "
        f"(target <= 1.5x)",
        f"services' RSS with 5 agents running   {r['services_rss_total_mib']:.1f} MiB (target < 160; "
        f"PSS {r['services_pss_total_mib']:.1f} MiB; supervisor apart {r['supervisor_rss_mib']:.1f} MiB)",
        f"  per service (MiB): {per}",
    ])
