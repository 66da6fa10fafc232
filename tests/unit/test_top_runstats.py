"""`cocode top`'s diff sizes: measured in a real git repository by runstats.py's
worker thread, each (run, head) once, from the snapshot's newest jobs, a watched
job's and the heads events name; a head git cannot read yet is asked again.

One worker measures in the order asked, so "not measured" is shown by the next
result being another one's, never by waiting for nothing."""

from __future__ import annotations

import queue
import threading

from cocode.core import events as ev
from cocode.core import state as st
from cocode.jobs import review
from cocode.top.runstats import RunStats
from support import GitRepo


def test_heads_are_measured_once_each_off_the_callers_thread_as_status_measures_them(tmp_path, monkeypatch):
    repo = GitRepo.init(tmp_path / "r", {"a.txt": "1\n2\n3\n"})
    base = repo.head()
    repo.git("switch", "-q", "-c", "run")
    one = repo.commit("one", {"a.txt": "1\ntwo\n3\n4\n"})
    two = repo.commit("two", {"b.txt": "new\n"})
    gone = "f" * 40
    snapshot = st.replay([
        ev.JobSubmitted(job="old", seq=1, title="t", body="", agents=["x"], base_sha=base),
        ev.RunProgress(job="old", agent="x", seq=2, head=two, commits=2),
        ev.JobSubmitted(job="mid", seq=3, title="t", body="", agents=["x"], base_sha=base),
        ev.RunProgress(job="mid", agent="x", seq=4, head=one, commits=1),
    ])
    monkeypatch.setattr(review, "DIFFSTAT_JOBS", 1)  # the snapshot's newest job only, the other when watched
    got: queue.Queue = queue.Queue()
    threads = set()

    def deliver(results):
        threads.add(threading.current_thread())
        for r in results:
            got.put(r)

    def next_result():
        return got.get(timeout=20)

    stats = RunStats(repo.path, deliver)
    stats.start(snapshot)
    try:
        assert next_result() == ("mid", "x", one, review.measure(repo.path, base, one))
        assert review.measure(repo.path, base, one) == (2, 1, 1)
        stats.on_event(ev.RunProgress(job="mid", agent="x", seq=5, head=one, commits=1))  # asked already
        stats.on_event(ev.JobSubmitted(job="new", seq=6, title="t", body="", agents=["y"], base_sha=base))
        stats.on_event(ev.RunProgress(job="new", agent="y", seq=7, head=one, commits=1))
        stats.on_event(ev.RunReady(job="new", agent="y", seq=8, commit=one))  # the same head again
        stats.on_event(ev.RunFinished(job="new", agent="y", seq=9, state="ready", ready_commit=one, head=two))
        assert next_result() == ("new", "y", one, (2, 1, 1))  # not mid's again, nor old's (not watched)
        assert next_result() == ("new", "y", two, (3, 1, 2))
        stats.watch("old")
        assert next_result() == ("old", "x", two, (3, 1, 2))
        # A head git cannot read (a light workspace's, before the run ends): asked again when named again.
        stats.on_event(ev.RunProgress(job="new", agent="z", seq=10, head=gone, commits=1))
        assert next_result() == ("new", "z", gone, None)
        stats.on_event(ev.RunFinished(job="new", agent="z", seq=11, state="failed", head=gone))
        assert next_result() == ("new", "z", gone, None)
    finally:
        stats.stop()
    assert threading.current_thread() not in threads and not stats.thread.is_alive()
