"""`cocode bench profiles`: the same job under the low, medium and high profiles,
through the real CLI (real services, real agents; tiny sizes: this proves the
measuring, the numbers are in docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cocode.config import BUILTIN_PROFILES
from support import ROOT


@pytest.mark.timeout(300)
def test_each_profile_runs_the_job_within_its_cap(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cocode", "bench", "profiles", "--agents", "3", "--seconds", "1",
                           "--size", "2", "--json"], capture_output=True, text=True, timeout=280, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert [r["profile"] for r in result["results"]] == ["low", "medium", "high"]
    for r in result["results"]:
        assert r["keys"] == BUILTIN_PROFILES[r["profile"]]
        assert r["ready"] == r["runs"] == 3, r
        # low runs 2 at once: two waves of 1 s; medium and high one wave. A job can
        # not beat the floor its cap sets (each agent runs its full second).
        assert r["floor_s"] == (2 if r["profile"] == "low" else 1)
        assert r["job_s"] >= r["floor_s"] and r["job_over_floor"] >= 1, r
        assert 0 < r["start_p50_ms"] <= r["start_max_ms"] < r["job_s"] * 1000
        assert r["services_peak_mib"] > 20, "seven services' RSS was sampled"
