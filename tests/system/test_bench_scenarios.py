"""`cocode bench scenario all --quick`: ADR-005's five load scenarios at CI size, once,
through the real CLI (real services, real agents, real generated repositories)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from support import ROOT

BUDGET_S = 300  # the CI budget for all five


@pytest.mark.timeout(BUDGET_S + 60)
def test_all_five_scenarios_run_quick_within_the_ci_budget(tmp_path):
    t0 = time.monotonic()
    saved = tmp_path / "scenarios.json"
    proc = subprocess.run([sys.executable, "-m", "cocode", "bench", "scenario", "all", "--quick", "--save", str(saved)],
                          capture_output=True, text=True, timeout=BUDGET_S + 30, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    took = time.monotonic() - t0
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["scenario"] for r in results] == [1, 2, 3, 4, 5], proc.stderr[-2000:]
    assert took < BUDGET_S, f"took {took:.0f} s"
    by_n = {r["scenario"]: r for r in results}
    for r in results:
        assert {"adr005", "goals", "ok", "start_ms", "ready_ms"} <= set(r)
        assert all({"value", "limit", "ok"} <= set(c) for c in r["adr005"].values())
    # What must hold however loaded the machine: every run ended as it should, limits bit.
    for n in (1, 2, 3, 5):
        assert by_n[n]["adr005"]["all_ready"]["ok"], by_n[n]["runs"]
    assert by_n[2]["log_ms"]["n"] > 1000, "the verbose agents' stamped lines reached the bus"
    four = by_n[4]
    assert four["gate_queued"] and four["late"]["state"] == "ready", four
    assert four["adr005"]["limit_enforced"]["ok"] and four["adr005"]["others_undisturbed"]["ok"], four["runs"]
    assert by_n[5]["adr005"]["sparse_honoured"]["ok"], by_n[5]["workspace_entries"]
    # Saved as printed, with each service's memory over the scenario for `bench plot`.
    assert [r["scenario"] for r in json.loads(saved.read_text())["scenarios"]] == [1, 2, 3, 4, 5]
    for r in results:
        timeline = r["memory_timeline"]
        assert len(timeline["t"]) >= 4 and timeline["t"] == sorted(timeline["t"])
        for service in ("bus", "store", "scheduler", "worker", "logs", "monitor"):
            assert sum(v is not None for v in timeline["services_mib"][service]) >= 4, (r["scenario"], service)
    # Timing targets (start < 5 s, ready < 2 s, log p99 < 500 ms) decide the exit code.
    missed = [f"{r['scenario']}:{k}" for r in results for k, c in r["adr005"].items() if not c["ok"]]
    assert (proc.returncode == 0) == (not missed), (proc.returncode, missed, proc.stderr[-500:])
