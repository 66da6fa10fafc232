"""The metrics fold over events (cocode.resources.metrics) and its exposition
(cocode.resources.exposition),
offline: summary, table, and Prometheus text a real Prometheus parser accepts."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from cocode.core import events as ev
from cocode.resources import exposition, metrics

MIB = 1024 * 1024


def test_metrics_fold_and_prometheus_offline():
    t0 = 1000.0
    evts = [
        ev.RunStarted(seq=1, ts=t0, job="j1", agent="a", worker="w", pid=1, pgid=1, worktree="/w",
                      branch="b", base_sha="s", worktree_ms=120.0),
        ev.RunProgress(seq=2, ts=t0 + 1, job="j1", agent="a", head="h1", commits=1),
        ev.RunProgress(seq=3, ts=t0 + 2, job="j1", agent="a", head="h2", commits=2),
        ev.RunReady(seq=4, ts=t0 + 2, job="j1", agent="a", commit="h2", detect_ms=3.0),
        ev.RunFinished(seq=5, ts=t0 + 60, job="j1", agent="a", state="ready"),
        ev.RunStarted(seq=6, ts=t0, job="j2", agent="a", worker="w", pid=2, pgid=2, worktree="/w2",
                      branch="b2", base_sha="s", worktree_ms=80.0),
        ev.LimitHit(seq=7, ts=t0 + 5, job="j2", agent="a", kind="memory", value=150, limit=100),
        ev.RunFinished(seq=8, ts=t0 + 6, job="j2", agent="a", state="failed", reason="memory_limit_exceeded"),
        ev.RunStarted(seq=9, ts=t0, job="j3", agent='we"ird\\', worker="w", pid=3, pgid=3, worktree="/w3",
                      branch="b3", base_sha="s"),
        ev.RunFinished(seq=10, ts=t0 + 900, job="j3", agent='we"ird\\', state="failed", reason="timeout_exceeded"),
        ev.LogRotated(seq=11, job="j3", agent="x", file="f", bytes=10),
        ev.RunStarted(seq=12, ts=t0 + 100, job="j4", agent="a", worker="w", pid=4, pgid=4, worktree="/w4",
                      branch="b4", base_sha="s", worktree_ms=100.0),
    ]
    t = metrics.fold(evts)
    sample = {"rss": 50 * MIB, "peak_rss": 60 * MIB, "cpu": 12.5, "procs": 3, "escaped": 1, "limit": 100 * MIB}
    host = {"mem_percent": 40.0, "cpu_percent": 10.0, "disk_free": 5 * 2**30, "pressure_threshold": 80.0}
    s = metrics.summary(t, {"j4/a": sample}, host, {"j1/a": 6 * MIB}, now=t0 + 160)
    a = s["agents"]["a"]
    assert (a["runs"], a["finished"], a["ready_checks"], a["limit_hits"]) == (3, 2, 2, 1)
    assert a["execution_s_avg"] == 33.0 and a["worktree_ms_avg"] == 100.0
    assert a["rss"] == 50 * MIB
    j1 = next(r for r in s["runs"] if r["job"] == "j1")
    assert j1["log_mb_per_min"] == 6.0 and j1["ready_detect_ms"] == 3.0
    assert s["totals"]["timeouts"] == 1 and s["totals"]["limit_hits"] == {"memory": 1}
    assert s["totals"]["buffer_overflows"] == 1
    text = exposition.prometheus(s)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["cocode_resource_limit_hits"].samples[0].value == 1
    ex = {(x.name, x.labels["agent"]): x.value for x in fams["cocode_run_execution_seconds"].samples}
    assert ex[("cocode_run_execution_seconds_sum", "a")] == 66.0
    assert ex[("cocode_run_execution_seconds_count", "a")] == 2
    assert ex[("cocode_run_execution_seconds_count", 'we"ird\\')] == 1  # labels escaped
    mem = fams["cocode_run_memory_bytes"].samples
    assert [(x.labels, x.value) for x in mem] == [({"job": "j4", "agent": "a"}, 50 * MIB)]
    assert "no run has started" not in exposition.table(s)


