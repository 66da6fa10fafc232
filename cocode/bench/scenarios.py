"""`cocode bench scenario N`: ADR-005's five load scenarios (its testing plan), each
on a deterministic generated repository with cocode started on it, each printing
JSON: what was measured, ADR-005's targets checked (`adr005`), our own goals
(`goals`), and `ok` (every ADR-005 target met).

1. 5 agents on a large repository (`--size` MB; ADR: 1 GB; `--quick`: 20 MB);
2. 10 agents logging >= 1 MB/s each;
3. long-running agents (`--minutes`; ADR: > 30; `--quick`: 0.5);
4. memory pressure: a growing agent turns the pressure gate on (a job submitted
   then waits, and starts once it is off); an agent over its memory limit is
   stopped; an ordinary agent beside them is undisturbed;
5. a large monorepo taken as sparse light workspaces.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from cocode.bench import harness as h
from cocode.errors import EXIT_TIMEOUT, CocodeError
from cocode.resources.policy import PRESSURE_RELEASE

ADR_START_S, ADR_READY_S, ADR_LOG_MS, ADR_TOTAL_MIB = 5.0, 2.0, 500.0, 3 * 1024
GOAL_START_MS, GOAL_READY_P99_MS, GOAL_TAIL_P99_MS = 50.0, 100.0, 10.0


def _result(n: int, name: str, params: dict, runs: dict, scene: h.Scene, extra: dict,
            adr: dict, goals: dict) -> dict:
    start = [r["start_ms"] for r in runs.values() if "start_ms" in r]
    ready = [r["ready_ms"] for r in runs.values() if "ready_ms" in r]
    adr = {
        "agent_start_s": h.check(round(max(start) / 1000, 3) if start else None, ADR_START_S, "s (max)"),
        "ready_detection_s": h.check(round(max(ready) / 1000, 3) if ready else None, ADR_READY_S, "s (max)"),
        **adr,
    }
    goals = {
        "start_p50_ms": h.check(h.stats(start)["p50"], GOAL_START_MS, "ms"),
        "ready_p99_ms": h.check(h.stats(ready)["p99"], GOAL_READY_P99_MS, "ms"),
        **goals,
    }
    return {
        "scenario": n, "name": name, "params": params,
        "start_ms": h.stats(start), "ready_ms": h.stats(ready),
        "runs": {k: {"state": r["state"], "reason": r["reason"]} for k, r in runs.items()},
        **extra, "adr005": adr, "goals": goals, "ok": all(c["ok"] for c in adr.values()),
        "load_avg_1m": round(psutil.getloadavg()[0], 2),
        "memory_timeline": scene.timeline,
    }


def _all_ready(runs: dict) -> dict:
    n = sum(r["state"] == "ready" for r in runs.values())
    return h.check(len(runs) - n, 1, f"runs not ready of {len(runs)}")


def one(quick: bool, size_mb: float | None = None) -> dict:
    size = size_mb or (20.0 if quick else 1024.0)
    tmp = h.tempdir("cocode-scenario1-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=size)
        agents = {f"s{i}": {"env": {"BENCH_SECONDS": 3}} for i in range(5)}
        perf = {"max_concurrent_agents": 5, "max_repo_size_mb": 50000, "worktree_pool": 5}
        with h.Scene(tmp, repo, perf, agents) as sc:
            job = sc.submit(list(agents))
            sc.wait([job], 120 + size / 10, until=lambda j: all(r.live for r in j.runs.values()) or j.done)
            time.sleep(1.0)  # the agents hold their memory for 3 s: sample inside that
            mem = sc.memory_mib()
            sc.wait([job], 300 + size)
            runs = sc.runs([job])
        total = mem["services_mib"] + mem["agents_mib"]
        return _result(1, "5 agents on a large repository", {"size_mb": size, "agents": 5}, runs, sc,
                       {"memory": mem}, {"total_memory_mib": h.check(total, ADR_TOTAL_MIB, "MiB"),
                                         "all_ready": _all_ready(runs)}, {})
    finally:
        h.remove(tmp)


def two(quick: bool, seconds: float | None = None) -> dict:
    secs = seconds or (4.0 if quick else 30.0)
    tmp = h.tempdir("cocode-scenario2-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=2)
        agents = {f"v{i}": {"env": {"BENCH_LOG_MB_S": 1, "BENCH_SECONDS": secs}} for i in range(10)}
        perf = {"max_concurrent_agents": 10, "log_max_buffer_mb": 10, "worktree_pool": 10, "max_worktrees": 20}
        with h.Scene(tmp, repo, perf, agents) as sc:
            job = sc.submit(list(agents))
            sc.wait([job], 120 + secs * 3)
            runs = sc.runs([job])
            mem = sc.memory_mib()
        log = h.stats(sc.log_ms)
        return _result(2, "10 agents with verbose logging", {"agents": 10, "mb_per_s_each": 1, "seconds": secs},
                       runs, sc, {"log_ms": log, "memory": mem},
                       {"log_latency_ms": h.check(log["p99"], ADR_LOG_MS, "ms (p99)"), "all_ready": _all_ready(runs)},
                       {"tail_p99_ms": h.check(log["p99"], GOAL_TAIL_P99_MS, "ms")})
    finally:
        h.remove(tmp)


def three(quick: bool, minutes: float | None = None) -> dict:
    mins = minutes or (0.5 if quick else 31.0)
    tmp = h.tempdir("cocode-scenario3-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=2)
        agents = {f"l{i}": {"env": {"BENCH_SECONDS": mins * 60}} for i in range(5)}
        # A timeout above the run, so the scenario sees the agents end on their own.
        perf = {"max_concurrent_agents": 5, "agent_timeout": min(3600, int(mins * 60 * 1.5) + 60), "worktree_pool": 5}
        with h.Scene(tmp, repo, perf, agents) as sc:
            job = sc.submit(list(agents))
            sc.wait([job], 60, until=lambda j: all(r.live for r in j.runs.values()))
            first = sc.memory_mib()
            time.sleep(max(0.0, mins * 60 - 2))
            last = sc.memory_mib()
            sc.wait([job], 120 + mins * 60)
            runs = sc.runs([job])
        log = h.stats(sc.log_ms)
        growth = round(last["services_mib"] - first["services_mib"], 1)
        return _result(3, "long-running agents", {"agents": 5, "minutes": mins}, runs, sc,
                       {"log_ms": log, "memory_first": first, "memory_last": last, "services_growth_mib": growth},
                       {"log_latency_ms": h.check(log["p99"], ADR_LOG_MS, "ms (p99)"), "all_ready": _all_ready(runs)},
                       {"services_growth_mib": h.check(growth, 16, "MiB")})
    finally:
        h.remove(tmp)


def four(quick: bool) -> dict:
    tmp = h.tempdir("cocode-scenario4-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=2)
        vm = psutil.virtual_memory()
        # The gate sits 2 points above what is used now plus the points it needs to
        # fall before it opens again; the grower goes 3 points above the gate.
        threshold = min(99, int(vm.percent) + 2 + int(PRESSURE_RELEASE))
        grow_mb = int((threshold + 3 - vm.percent) / 100 * vm.total / 2**20)
        hold = tmp / "release"
        agents = {
            "grower": {"env": {"BENCH_GROW_MB": grow_mb, "BENCH_HOLD": hold}, "memory_limit_mb": 65536},
            "hog": {"env": {"BENCH_GROW_MB": 400, "BENCH_SECONDS": 60}, "memory_limit_mb": 100},
            "plain": {"env": {"BENCH_SECONDS": 3}},
            "late": {"env": {"BENCH_SECONDS": 0}},
        }
        perf = {"max_concurrent_agents": 5, "memory_pressure_percent": threshold, "monitor_interval_ms": 250}
        with h.Scene(tmp, repo, perf, agents) as sc:
            first = sc.submit(["grower", "hog", "plain"])
            state = _wait_pressure(sc, True, 60)
            late = sc.submit(["late"])
            queued = sc.wait([late], 30, until=lambda j: j.runs["late"].reason == "memory_pressure")
            gated = queued.jobs[late].runs["late"].state == "queued"
            hold.touch()  # the grower commits and exits: memory frees, the gate opens
            t_release = time.monotonic()
            sc.wait([first, late], 120)
            released_s = time.monotonic() - t_release
            runs = sc.runs([first])  # started at once; `late` waited for the gate on purpose
            late_run = sc.runs([late])
        by_agent = {k.split("/", 1)[1]: r for k, r in {**runs, **late_run}.items()}
        return _result(4, "memory pressure", {"threshold_percent": threshold, "grow_mb": grow_mb}, runs, sc,
                       {"gate_queued": gated, "released_after_s": round(released_s, 2), "pressure_seen": state,
                        "late": {"state": by_agent["late"]["state"], "reason": by_agent["late"]["reason"]}},
                       {"pressure_gate_queues": h.check(0 if gated else 1, 1, "queued while under pressure"),
                        "limit_enforced": h.check(0 if by_agent["hog"]["reason"] == "memory_limit_exceeded" else 1, 1,
                                                  "hog stopped for its memory limit"),
                        "others_undisturbed": h.check(sum(by_agent[a]["state"] != "ready"
                                                          for a in ("grower", "plain", "late")), 1, "not ready")},
                       {})
    finally:
        h.remove(tmp)


def _wait_pressure(sc: h.Scene, on: bool, timeout: float) -> bool:
    from cocode.client import current_state

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(current_state(sc.paths).pressure) == on:
            return on
        time.sleep(0.1)
    raise CocodeError(f"scenario 4: memory pressure did not turn {'on' if on else 'off'} within {timeout:g}s: "
                      "other programs' memory moved too much; retry on a quieter machine", EXIT_TIMEOUT)


def five(quick: bool, size_mb: float | None = None) -> dict:
    size = size_mb or (20.0 if quick else 500.0)
    tmp = h.tempdir("cocode-scenario5-")
    try:
        repo = h.generate_repo(tmp / "repo", size_mb=size, dirs=200, blob_share=0.1)
        agents = {f"m{i}": {"env": {"BENCH_SECONDS": 1}} for i in range(3)}
        sparse = ("pkg001", "pkg002")
        with h.Scene(tmp, repo, {"max_concurrent_agents": 5, "max_repo_size_mb": 50000}, agents) as sc:
            job = sc.submit(list(agents), sparse=sparse)
            sc.wait([job], 120 + size / 5, until=lambda j: all(r.live or r.final for r in j.runs.values()))
            state = sc.wait([job], 120 + size / 5, until=lambda j: all(r.worktree for r in j.runs.values()))
            workspace = state.jobs[job].runs["m0"].worktree
            checked_out = sorted(p.name for p in Path(workspace).iterdir() if p.name != ".git")
            sc.wait([job], 300)
            runs = sc.runs([job])
        return _result(5, "large monorepo with sparse checkout", {"size_mb": size, "dirs": 200, "sparse": sparse},
                       runs, sc, {"workspace_entries": checked_out},
                       {"sparse_honoured": h.check(0 if set(checked_out) <= set(sparse) else 1, 1,
                                                   "paths outside the sparse set"),
                        "all_ready": _all_ready(runs)}, {})
    finally:
        h.remove(tmp)


SCENARIOS = {1: one, 2: two, 3: three, 4: four, 5: five}
