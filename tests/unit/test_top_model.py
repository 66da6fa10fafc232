"""`cocode top`'s pure parts: the view-model fold (events, samples, heartbeats in;
rows out) and a pane's bytes-to-lines buffer. No widgets, no sockets."""

from __future__ import annotations

from cocode.core import events as ev
from cocode.core import state as st
from cocode.top import model as vm
from cocode.top.panes import MAX_CHARS, PaneLog

T0 = 1_700_000_000.0


def submitted(job: str, seq: int, agents=("a", "b"), title="Fix it", ts=T0) -> ev.JobSubmitted:
    return ev.JobSubmitted(job=job, seq=seq, ts=ts, title=title, body="", agents=list(agents), base_sha="0" * 40)


def folded(*events) -> vm.Model:
    m = vm.Model()
    for e in events:
        m.apply(e)
    return m


def test_jobs_newest_first_with_state_age_and_ready_count():
    m = folded(
        submitted("j1", 1, ts=T0), submitted("j2", 2, title="Second", ts=T0 + 50),
        ev.RunStarted(job="j1", agent="a", seq=3, ts=T0 + 1, worker="w", pid=1, pgid=1, worktree="/w/a", branch="b",
                      base_sha="0" * 40),
        ev.RunFinished(job="j1", agent="a", seq=4, ts=T0 + 9, state="ready", commits=2),
    )
    rows = vm.job_rows(m, now=T0 + 110)
    assert [r.job for r in rows] == ["j2", "j1"]
    assert rows[0] == vm.JobRow(job="j2", title="Second", state="queued", age="1m", ready="0/2", cost="")
    assert rows[1].cost == ""  # no run reported a cost
    assert (rows[1].state, rows[1].age, rows[1].ready) == ("running", "2m", "1/2")


def test_runs_show_state_reason_time_commits_and_queue_place():
    m = folded(
        submitted("j1", 1), submitted("j2", 2, agents=("x",)),
        ev.RunStarted(job="j1", agent="a", seq=3, ts=T0 + 1, worker="w", pid=1, pgid=1, worktree="/w/a", branch="b",
                      base_sha="0" * 40),
        ev.RunProgress(job="j1", agent="a", seq=4, head="1" * 40, commits=3),
        ev.RunWaiting(job="j1", agent="b", seq=5, reason="max_worktrees"),
    )
    a, b = vm.run_rows(m, "j1", now=T0 + 31)
    assert (a.state, a.time, a.commits, a.queue, a.worktree) == ("running", "30s", "3", "", "/w/a")
    assert (b.state, b.reason, b.queue, b.time) == ("queued", "max_worktrees", "#1", "-")
    (x,) = vm.run_rows(m, "j2", now=T0)
    assert x.queue == "#2"  # FIFO behind j1's waiting run
    assert vm.run_cells(b)[:3] == ("b", "queued #1", "max_worktrees")  # the place shown beside the state
    assert vm.run_rows(m, "nope", now=T0) == []


def test_a_failed_run_keeps_its_reason_and_a_cancel_shows_before_it_lands():
    m = folded(submitted("j1", 1), ev.CancelRequested(job="j1", agent="b", seq=2),
               ev.RunFinished(job="j1", agent="a", seq=3, state="failed", reason="exit_1", detail="boom"))
    a, b = vm.run_rows(m, "j1", now=T0)
    assert (a.state, a.reason, a.detail) == ("failed", "exit_1", "boom")
    assert b.reason == "cancelling"


def test_metrics_give_a_sparkline_for_live_runs_only():
    m = folded(submitted("j1", 1, agents=("a",)),
               ev.RunStarted(job="j1", agent="a", seq=2, worker="w", pid=1, pgid=1, worktree="/w", branch="b",
                             base_sha="0" * 40))
    for cpu in (0.0, 50.0, 100.0):
        m.apply_metric(b"metric.run", {"job": "j1", "agent": "a", "cpu": cpu, "rss": 64 << 20})
    m.apply_metric(b"metric.run", {"bogus": 1})  # a sample without job/agent is ignored
    (a,) = vm.run_rows(m, "j1", now=T0)
    assert a.cpu == "▁▄█ 100%" and a.mem.endswith(" 64M")
    m.apply(ev.RunFinished(job="j1", agent="a", seq=3, state="ready"))
    assert vm.run_rows(m, "j1", now=T0)[0].cpu == ""


def test_header_counts_and_says_when_cocode_is_down_or_not_started():
    m = folded(submitted("j1", 1), ev.RunDispatched(job="j1", agent="a", seq=2, worker="w"),
               ev.MemoryPressure(seq=3, on=True, percent=93.0),
               ev.WarningEvent(seq=4, code="disk_low", message="only 100 MB free"),
               ev.WarningEvent(seq=5, code="fetch_back_failed", message="not a disk thing"))
    h = vm.header(m, mono=100.0, root="/repo")
    assert not h.up and "not started in /repo" in h.text and "cocode up" in h.text
    assert "1 running · 1 queued · memory pressure" in h.text
    assert h.warnings == ("only 100 MB free",)
    m.beat(100.0)
    assert vm.header(m, mono=101.0).up
    down = vm.header(m, mono=110.0)
    assert not down.up and "DOWN" in down.text and "10s" in down.text
    m.link.error = "cannot read events.db"
    m.dropped = 2
    assert vm.header(m, mono=110.0).warnings[-2:] == ("cannot read events.db",
                                                      "2 messages could not be read (a different cocode version?)")


def test_a_disk_warning_shows_while_the_disk_is_low_dated_when_unknown_and_goes_when_it_has_room():
    m = folded(ev.WarningEvent(seq=1, ts=T0 - 600, code="disk_low", message="only 90 MB free"),
               ev.WarningEvent(seq=2, ts=T0 - 300, code="disk_low", message="only 80 MB free"))
    assert vm.header(m, mono=1.0, now=T0).warnings == ("only 80 MB free (5m ago)",)  # no sample yet
    m.apply_metric(b"metric.host", {"disk_free": 80 * 2**20})
    assert vm.header(m, mono=1.0, now=T0).warnings == ("only 80 MB free",)  # still low now
    m.apply_metric(b"metric.host", {"disk_free": 105 * 2**20})
    assert vm.header(m, mono=1.0, now=T0).warnings == ("only 80 MB free",)  # the monitor's hysteresis
    m.apply_metric(b"metric.host", {"disk_free": 5 * 2**30})
    assert vm.header(m, mono=1.0, now=T0).warnings == ()  # room again: the old warning is gone
    m.apply_metric(b"metric.host", {"disk_free": -1})  # unknown: the last known state holds
    assert m.disk_low is False


def test_the_fold_is_core_state_so_a_replay_gives_the_same_rows():
    events = [submitted("j1", 1), ev.RunDispatched(job="j1", agent="a", seq=2, worker="w")]
    m = vm.Model(state=st.replay(events))
    assert vm.run_rows(m, "j1", T0) == vm.run_rows(folded(*events), "j1", T0)


def test_twenty_runs_all_get_a_row():
    m = folded(submitted("j", 1, agents=[f"a{i}" for i in range(20)]))
    rows = vm.run_rows(m, "j", T0)
    assert [r.agent for r in rows] == [f"a{i}" for i in range(20)]
    assert [r.queue for r in rows] == [f"#{i + 1}" for i in range(20)]


def test_a_job_costs_the_sum_of_its_runs_known_costs_as_status_shows_it():
    m = folded(submitted("j1", 1, agents=("a", "b", "c")), submitted("j2", 2))
    m.apply(ev.RunUsage(job="j1", agent="a", seq=3, cost_usd=0.0125, input_tokens=10))
    m.apply(ev.RunUsage(job="j1", agent="b", seq=4, cost_usd=None, input_tokens=99))  # no price known
    m.apply(ev.RunUsage(job="j1", agent="c", seq=5, attempt=1, cost_usd=0.25))
    m.apply(ev.RunUsage(job="j1", agent="c", seq=6, attempt=2, cost_usd=0.5))  # a follow-up's attempt adds
    m.apply(ev.RunUsage(job="j2", agent="a", seq=7, input_tokens=5))
    j2, j1 = vm.job_rows(m, now=T0)
    assert j1.cost == "$0.7625" and j2.cost == ""


def ready(job: str, agent: str, seq: int, commit: str, ts: float = T0) -> list:
    return [ev.RunStarted(job=job, agent=agent, seq=seq, ts=ts, worker="w", pid=1, pgid=1, worktree=f"/w/{agent}",
                          branch="b", base_sha="0" * 40),
            ev.RunReady(job=job, agent=agent, seq=seq + 1, ts=ts + 5, commit=commit),
            ev.RunFinished(job=job, agent=agent, seq=seq + 2, ts=ts + 6, state="ready", commits=1,
                           ready_commit=commit, head=commit)]


def test_runs_show_diff_and_checks_and_mark_compares_pick_once_the_diffs_are_measured():
    m = folded(submitted("j1", 1, agents=("a", "b", "c")), *ready("j1", "a", 2, "a" * 40),
               *ready("j1", "b", 5, "b" * 40),
               ev.RunFinished(job="j1", agent="c", seq=8, state="failed", reason="exit_1"))
    a, b, c = vm.run_rows(m, "j1", now=T0 + 60)
    assert (a.diff, b.diff, c.diff) == ("…", "…", "-")  # c has no commit: nothing to measure
    assert not any(r.best for r in (a, b, c))  # the diff decides between a and b: not known yet
    assert (a.checks, c.checks) == ("-", "-")
    m.apply_stats([("j1", "a", "a" * 40, (30, 2, 3)), ("j1", "b", "b" * 40, (4, 1, 1))])
    a, b, c = vm.run_rows(m, "j1", now=T0 + 60)
    assert (a.diff, b.diff) == ("+30/-2", "+4/-1")
    assert [r.best for r in (a, b, c)] == [False, True, False]  # checks tie (none), smaller diff wins
    # A failing check on b: fewer failures beats a smaller diff (config rank_by's default order).
    m.apply(ev.CheckStarted(job="j1", agent="b", seq=9, name="tests", commit="b" * 40))
    assert vm.run_rows(m, "j1", now=T0)[1].checks == "running"
    m.apply(ev.CheckFinished(job="j1", agent="b", seq=10, name="tests", commit="b" * 40, status="failed"))
    a, b, _ = vm.run_rows(m, "j1", now=T0)
    assert b.checks == "0/1 pass" and (a.best, b.best) == (True, False)
    m.rank_by = ["diff"]  # the config's own order
    assert [r.best for r in vm.run_rows(m, "j1", now=T0)] == [False, True, False]


def test_a_moved_head_is_measured_again_and_an_unreadable_one_shows_no_diff():
    m = folded(submitted("j1", 1, agents=("a", "b")), *ready("j1", "a", 2, "a" * 40),
               ev.RunProgress(job="j1", agent="b", seq=5, head="1" * 40, commits=1))
    m.apply_stats([("j1", "a", "a" * 40, None), ("j1", "b", "1" * 40, (1, 0, 1))])
    a, b = vm.run_rows(m, "j1", now=T0)
    assert (a.diff, b.diff) == ("-", "+1/-0") and a.best  # git could not tell: ranked as no change (compare)
    m.apply(ev.RunProgress(job="j1", agent="b", seq=6, head="2" * 40, commits=2))
    assert vm.run_rows(m, "j1", now=T0)[1].diff == "…"  # the old head's size is not shown as the new one's
    m.apply(ev.RunProgress(job="j1", agent="a", seq=7, head="3" * 40, commits=2))
    assert vm.run_rows(m, "j1", now=T0)[0].diff == "-"  # a ready run is measured at its ready commit


# -- panes ----------------------------------------------------------------------------------------


def test_pane_joins_split_lines_and_keeps_the_last_n():
    p = PaneLog(keep=3)
    p.feed(b"one\ntw")
    assert list(p.lines) == ["one"] and p.partial == b"tw" and p.rest == "tw"
    p.feed(b"o\nthree\nfour\nfive\n")
    assert list(p.lines) == ["three", "four", "five"] and p.total_lines == 5
    assert p.take() == ["three", "four", "five"] and p.take() == []  # handed over once
    p.feed(b"six\n")
    assert p.take() == ["six"] and p.total_lines == 6


def test_pane_makes_binary_and_huge_lines_safe_and_short():
    p = PaneLog(keep=10)
    p.feed(b"\xff\xfe bad \x1b[31m red\x00\n" + b"x" * 100_000 + b"\n" + b"50%\r100%\n")
    bad, huge, bar = p.lines
    assert "\\x1b" in bad and "\\x00" in bad and "\ufffd" in bad
    assert len(huge) < MAX_CHARS + 50 and huge.endswith("bytes)")
    assert bar == "100%"


def test_pane_shows_an_unterminated_line_at_the_end_and_reset_starts_over():
    p = PaneLog(keep=10)
    p.feed(b"prompt> ")
    assert p.visible() == ["prompt> "]
    p.flush()
    assert list(p.lines) == ["prompt> "] and p.partial == b"" and p.rest == ""
    gen = p.generation
    p.reset()
    assert p.generation == gen + 1 and not p.lines and p.total_lines == 0
    p.feed(b"x" * 70_000)  # a very long line without its end is shown in pieces
    assert len(p.lines) == 1 and p.partial == b""
