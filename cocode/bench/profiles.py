"""`cocode bench profiles`: the built-in performance profiles (low, medium, high)
side by side on the same job, for docs/performance.md's tuning guide.

For each profile, in turn and in the same session: cocode started on one generated
repository (bench/harness.py's, 20 MB) with that profile's keys, its pool filled as
an idle cocode's would be, then one job of `agents` agents that each run for
`seconds` s and commit. Measured: submit -> each agent's exec (p50, max), submit ->
the job done, and the services' peak RSS. The baseline is the job's floor under
that profile's cap, ceil(agents / max_concurrent_agents) x `seconds`: the job's
time over it is what starting, watching and landing the agents cost.
"""

from __future__ import annotations

import math
import time

import psutil

from cocode.bench import harness as h
from cocode.config import BUILTIN_PROFILES

PROFILES = ("low", "medium", "high")


def one(profile: str, agents: int, seconds: float, size_mb: float) -> dict:
    tmp = h.tempdir(f"cocode-bench-profile-{profile}-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=size_mb)
        perf = {**BUILTIN_PROFILES[profile], "max_repo_size_mb": 50000}
        table = {f"p{i}": {"env": {"BENCH_SECONDS": seconds}} for i in range(agents)}
        with h.Scene(tmp, repo, perf, table) as sc:
            t0 = time.monotonic()
            job = sc.submit(list(table))
            sc.wait([job], 120 + agents * seconds * 3)
            wall = time.monotonic() - t0
            runs = sc.runs([job])
        start = [r["start_ms"] for r in runs.values() if "start_ms" in r]
        floor = math.ceil(agents / perf["max_concurrent_agents"]) * seconds
        peak = max((sum(v or 0 for v in col) for col in zip(*sc.timeline["services_mib"].values())), default=0)
        return {"profile": profile, "keys": BUILTIN_PROFILES[profile],
                "ready": sum(r["state"] == "ready" for r in runs.values()), "runs": len(runs),
                "start_p50_ms": round(h.stats(start)["p50"], 1), "start_max_ms": round(max(start, default=0), 1),
                "job_s": round(wall, 2), "floor_s": floor, "job_over_floor": round(wall / floor, 2),
                "services_peak_mib": round(peak, 1)}
    finally:
        h.remove(tmp)


def run(agents: int = 5, seconds: float = 2.0, size_mb: float = 20.0, rounds: int = 1, progress: bool = True) -> dict:
    say = (lambda m: print(m, flush=True)) if progress else (lambda m: None)
    results = []
    for k in range(rounds):
        # Alternate the order so that a load that changes over the session is shared.
        for profile in PROFILES if k % 2 == 0 else tuple(reversed(PROFILES)):
            say(f"round {k + 1}: profile {profile}, {agents} agents x {seconds:g} s ...")
            results.append(one(profile, agents, seconds, size_mb))
    return {"agents": agents, "seconds": seconds, "size_mb": size_mb, "rounds": rounds, "results": results,
            "load_avg_1m": round(psutil.getloadavg()[0], 2)}


def report(r: dict) -> str:
    lines = [f"{r['agents']} agents x {r['seconds']:g} s on a {r['size_mb']:g} MB repository, {r['rounds']} round(s)",
             f"{'profile':8} {'start p50':>10} {'start max':>10} {'job':>8} {'floor':>6} {'job/floor':>9}"
             f" {'services':>9}  ready"]
    for x in r["results"]:
        lines.append(f"{x['profile']:8} {x['start_p50_ms']:8.0f}ms {x['start_max_ms']:8.0f}ms {x['job_s']:7.1f}s"
                     f" {x['floor_s']:5.0f}s {x['job_over_floor']:9.2f} {x['services_peak_mib']:7.0f}MiB"
                     f"  {x['ready']}/{x['runs']}")
    lines.append(f"host load average {r['load_avg_1m']:.2f}")
    return "\n".join(lines)
