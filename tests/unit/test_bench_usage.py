"""Benchmarks refuse durations too short to measure anything: a one-line usage error
(exit 2) before anything is started, not a run whose percentiles are empty."""

from __future__ import annotations

import subprocess
import sys

from cocode.bench import top


def bench(tmp, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cocode", "bench", *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp)


def test_bench_top_shorter_than_its_warm_up_plus_a_measurement_is_a_usage_error(tmp_path):
    assert top.MIN_SECONDS == top.WARM_UP_S + top.MEASURED_S >= 5
    for seconds in ("3", "4.9"):
        proc = bench(tmp_path, "top", "--seconds", seconds)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"--seconds {seconds} is too short: give at least 5" in lines[0]
