"""`cocode bench events --sweep`: throughput against the number of producers, each
point with its own raw SQLite baseline, through the real CLI against a real running
cocode (small counts: this proves the measuring, not the machine's speed)."""

from __future__ import annotations

import json

from support import cocode, one_line_error


def test_sweep_measures_each_producer_count_against_raw_sqlite(running):
    proc = cocode(running.root, "bench", "events", "--count", "3000", "--producers", "2", "--rate", "500",
                  "--sweep", "1,2,4", "--json", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    points = result["throughput"]
    assert [p["producers"] for p in points] == [1, 2, 4]
    for p in points:
        # Each producer sends its share (3000 // n), every one acked, read back once.
        assert p["count"] == 3000 // p["producers"] * p["producers"]
        assert p["events_per_s"] > 0 and p["raw_rows_per_s"] > 0
        assert abs(p["ratio"] - p["events_per_s"] / p["raw_rows_per_s"]) < 0.002
        assert p["lost"] == 0 and p["duplicated"] == 0, p
    assert result["lost"] == 0 and result["duplicated"] == 0


def test_bad_sweep_and_too_few_events_are_usage_errors(running):
    bad = cocode(running.root, "bench", "events", "--sweep", "1,two")
    assert bad.returncode == 2 and "1,2,4,8" in one_line_error(bad)
    short = cocode(running.root, "bench", "events", "--count", "4", "--sweep", "1,8")
    assert short.returncode == 2 and "--count must be at least" in one_line_error(short)
