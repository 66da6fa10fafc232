"""Snapshots of `cocode top`'s main screens (pytest-textual-snapshot), so a layout
change shows in review as an SVG diff. Update with `--snapshot-update`.

The screens are fed fixed batches by a scripted feed (the app's one input is the
feed's batches) and fixed clocks, so the pictures repeat; the same app against a
real cocode is tests/system/test_top.py.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from cocode.configload import load_config
from cocode.core import events as ev
from cocode.core import state as st
from cocode.paths import Paths
from cocode.top.app import TopApp
from cocode.top.feed import Batch, Chunk
from cocode.top.paneview import PaneView
from cocode.top.screens import DiffScreen

T0 = 1_700_000_000.0
MONO = 5_000.0
SHA = "0" * 40


class ScriptedFeed:
    """The feed's interface, delivering fixed batches from a thread as the real one does."""

    def __init__(self, batches):
        self.batches = batches

    def __call__(self, paths, on_batch, keep_lines):
        self.on_batch = on_batch
        return self

    def start(self) -> None:
        def run():
            for b in self.batches:
                self.on_batch(b)
        threading.Thread(target=run, daemon=True).start()

    def watch(self, job, agents, shown=None) -> None:
        pass

    def show(self, job, agents) -> None:
        pass

    def on_painted(self) -> None:
        pass

    def stop(self) -> None:
        pass


def started(job, agent, seq, ts):
    return ev.RunStarted(job=job, agent=agent, seq=seq, ts=ts, worker="w1", pid=10 + seq, pgid=10 + seq,
                         worktree=f"/repo/.cocode/worktrees/{job}-{agent}", branch=f"cocode/{job}/{agent}",
                         base_sha=SHA)


def main_batches(up: bool = True) -> list[Batch]:
    events = [
        ev.JobSubmitted(job="a1b2c3", seq=1, ts=T0 - 3600, title="Older: tidy the README", body="",
                        agents=["demo"], base_sha=SHA),
        ev.RunFinished(job="a1b2c3", agent="demo", seq=2, ts=T0 - 3500, state="ready", commits=1),
        ev.JobSubmitted(job="f00d42", seq=3, ts=T0 - 95, title="greet() says Helo instead of Hello", body="",
                        agents=["claude", "codex", "demo-slow"], base_sha=SHA),
        started("f00d42", "claude", 4, T0 - 90), started("f00d42", "codex", 5, T0 - 89),
        ev.RunProgress(job="f00d42", agent="claude", seq=6, head="1" * 40, commits=2),
        ev.RunFinished(job="f00d42", agent="codex", seq=7, ts=T0 - 20, state="failed", reason="exit_1",
                       detail="cannot reproduce"),
        ev.RunWaiting(job="f00d42", agent="demo-slow", seq=8, reason="max_worktrees"),
    ]
    state = st.replay(events)
    metrics = [(b"metric.run", {"job": "f00d42", "agent": "claude", "cpu": c, "rss": r << 20})
               for c, r in ((5, 80), (40, 120), (90, 160), (60, 150))]
    metrics.append((b"metric.host", {"mem_percent": 41.0}))
    chunks = [Chunk("f00d42", "claude", "reset"),
              Chunk("f00d42", "claude", "data", b"".join(b"claude: step %d of the fix\n" % i for i in range(30))),
              Chunk("f00d42", "codex", "reset"),
              Chunk("f00d42", "codex", "data", b"codex: reading greet.py\n\xff\xfe binary \x1b[31m\n"),
              Chunk("f00d42", "codex", "notice", text="attempt 2"),
              Chunk("f00d42", "demo-slow", "reset")]
    stats = [("f00d42", "claude", "1" * 40, (12, 3, 2))]  # runstats.py's measure of claude's head
    return [Batch(state=state, beat=MONO if up else 0.0, started=up), Batch(metrics=metrics, stats=stats),
            Batch(chunks=chunks)]


def make_app(batches, config=None, mono=MONO + 1) -> TopApp:
    return TopApp(Paths(Path("/repo")), config, 2000, feed_factory=ScriptedFeed(batches),
                  wall=lambda: T0, mono=lambda: mono)


def settled(count: int):
    async def run_before(pilot) -> None:
        for _ in range(200):
            if pilot.app.batches >= count:
                break
            await pilot.pause(0.02)
        await pilot.pause()
        await pilot.pause(0.1)  # the panes' scroll to the end comes after their layout
    return run_before


@pytest.mark.timeout(60)
def test_main_screen(snap_compare):
    assert snap_compare(make_app(main_batches()), terminal_size=(130, 36), run_before=settled(3))


@pytest.mark.timeout(60)
def test_main_screen_at_80_columns(snap_compare):
    """Under 120 columns the tables are stacked: the jobs keep their titles, the runs
    their diff and checks (a queued run's place beside its state); cpu, mem are cut."""
    assert snap_compare(make_app(main_batches()), terminal_size=(80, 24), run_before=settled(3))


@pytest.mark.timeout(60)
def test_down_in_a_40_by_10_terminal(snap_compare):
    app = make_app(main_batches(up=False))
    app.model.link.last_beat = MONO - 30  # heard once, silent since: down
    assert snap_compare(app, terminal_size=(40, 10), run_before=settled(3))


@pytest.mark.timeout(60)
def test_twenty_runs_go_to_tabs(snap_compare):
    agents = [f"agent{i:02d}" for i in range(20)]
    state = st.replay([ev.JobSubmitted(job="bead01", seq=1, ts=T0 - 30, title="Twenty at once", body="",
                                       agents=agents, base_sha=SHA)])
    chunks = [Chunk("bead01", "agent00", "data", b"first agent's line\n")]
    assert snap_compare(make_app([Batch(state=state, beat=MONO), Batch(chunks=chunks)]),
                        terminal_size=(110, 34), run_before=settled(2))


def finished_batches() -> list[Batch]:
    """A finished job of three runs: two ready (one recommended), one failed; costs, checks, diffs."""
    ready = {"claude": "c" * 40, "codex-with-a-long-name": "d" * 40}
    events = [ev.JobSubmitted(job="beef07", seq=1, ts=T0 - 400, title="Parse the config file's include: lines "
                              "recursively, with a cycle check", body="", agents=[*ready, "gemini"], base_sha=SHA)]
    seq = 2
    for agent, commit in ready.items():
        events += [started("beef07", agent, seq, T0 - 390),
                   ev.RunReady(job="beef07", agent=agent, seq=seq + 1, ts=T0 - 200, commit=commit),
                   ev.RunUsage(job="beef07", agent=agent, seq=seq + 2, cost_usd=0.4321, input_tokens=9000),
                   ev.RunFinished(job="beef07", agent=agent, seq=seq + 3, ts=T0 - 190, state="ready", commits=3,
                                  ready_commit=commit, head=commit),
                   ev.CheckStarted(job="beef07", agent=agent, seq=seq + 4, name="tests", commit=commit),
                   ev.CheckFinished(job="beef07", agent=agent, seq=seq + 5, name="tests", commit=commit,
                                    status="passed", passed=41)]
        seq += 6
    events.append(ev.RunFinished(job="beef07", agent="gemini", seq=seq, ts=T0 - 100, state="failed",
                                 reason="exit_1", detail="gave up"))
    stats = [("beef07", "claude", ready["claude"], (120, 14, 4)),
             ("beef07", "codex-with-a-long-name", ready["codex-with-a-long-name"], (48, 9, 2))]
    return [Batch(state=st.replay(events), beat=MONO, started=True), Batch(stats=stats)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [(80, 24), (160, 30)], ids=["80", "160"])
def test_a_finished_jobs_runs_with_cost_diff_checks_and_the_recommended_run(snap_compare, size):
    """The jobs' cost; the runs' diff and checks as `status` shows them, and a ★ on the
    run `compare` recommends (codex: both checks pass, its diff is smaller). At 80
    columns the runs table's last columns are cut, not its first ones."""
    async def run_before(pilot) -> None:
        await settled(2)(pilot)
        rows = pilot.app.run_rows
        assert [(r.agent, r.diff, r.checks, r.best) for r in rows] == [
            ("claude", "+120/-14", "1/1 pass", False), ("codex-with-a-long-name", "+48/-9", "1/1 pass", True),
            ("gemini", "-", "-", False)]
        assert pilot.app.job_rows[0].cost == "$0.8642"
    assert snap_compare(make_app(finished_batches()), terminal_size=size, run_before=run_before)


@pytest.mark.timeout(60)
def test_diff_view(snap_compare):
    diff = ("diff --git a/greet.py b/greet.py\n--- a/greet.py\n+++ b/greet.py\n@@ -1,2 +1,2 @@\n"
            " def greet(name: str) -> str:\n-    return f\"Helo, {name}!\"\n+    return f\"Hello, {name}!\"\n")

    async def run_before(pilot) -> None:
        await settled(3)(pilot)
        await pilot.app.push_screen(DiffScreen("diff f00d42/claude", diff))
        await pilot.pause()
    assert snap_compare(make_app(main_batches()), terminal_size=(100, 24), run_before=run_before)


@pytest.mark.timeout(60)
def test_submit_screen(snap_compare, tmp_path):
    config = load_config(tmp_path / "none.yaml")

    async def run_before(pilot) -> None:
        await settled(3)(pilot)
        await pilot.press("s")
        for _ in range(250):  # the screens' module is imported when a key first opens one
            screen = pilot.app.screen
            if type(screen).__name__ == "SubmitScreen" and screen.query("#issue") and screen.focused is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.1)
    assert snap_compare(make_app(main_batches(), config), terminal_size=(100, 30), run_before=run_before)


@pytest.mark.timeout(60)
def test_search_in_a_pane(snap_compare):
    """`/`, a text, Enter: the selected run's pane shows its matches, the current one
    in the accent colour, the count in its title; n moves to the next one."""
    async def run_before(pilot) -> None:
        await settled(3)(pilot)
        app = pilot.app
        await pilot.press("slash")
        await pilot.press(*"step 2", "enter")
        pane = app.widgets["claude"]
        # 'step 2' is in lines 2 and 20-29: 11 matches, the first at line 2
        assert app.search_at == (pane.first + 2, 8) and pane.note == "/step 2: 1 of 11"
        await pilot.press("n")
        assert app.search_at == (pane.first + 20, 8) and pane.note == "/step 2: 2 of 11"
        await pilot.press("N", "N")
        assert pane.note == "/step 2: 11 of 11"  # wrapped to the last
        view = app.query_one(PaneView)
        drawn = [seg for y in range(view.size.height) for seg in view.render_line(y) if seg.text == "step 2"]
        assert sum(bool(seg.style.reverse) for seg in drawn) == len(drawn) - 1  # the others, reversed
        assert sum(bool(seg.style.bold) and not seg.style.reverse for seg in drawn) == 1  # the current
        await pilot.pause(0.1)
    assert snap_compare(make_app(main_batches()), terminal_size=(130, 36), run_before=run_before)


def tab_x(app, agent: str) -> int:
    """The column of `agent`'s tab in the tab row."""
    view = app.query_one(PaneView)
    return next(x0 for x0, _, i in view._tab_spans if view.panes[i].agent == agent) + 1


def test_hidden_tabs_count_their_unread_lines_in_their_labels():
    """More than 4 agents: tabs. A hidden tab's label says how many lines came since
    (the feed only counts them); shown, its label is the agent's name again."""
    import asyncio

    agents = [f"ag{i}" for i in range(6)]
    state = st.replay([ev.JobSubmitted(job="cafe01", seq=1, ts=T0 - 30, title="Six at once", body="",
                                       agents=agents, base_sha=SHA)])
    chunks = [Chunk("cafe01", "ag0", "lines", lines=["shown line"], n=1),
              Chunk("cafe01", "ag2", "count", n=1200), Chunk("cafe01", "ag2", "count", n=34),
              Chunk("cafe01", "ag5", "count", n=7)]

    def labels(app) -> list[str]:
        labels = app.query_one(PaneView).labels
        return [labels[a] for a in agents]

    async def main():
        app = make_app([Batch(state=state, beat=MONO), Batch(chunks=chunks)])
        async with app.run_test(size=(120, 30)) as pilot:
            await settled(2)(pilot)
            for _ in range(150):  # the labels follow the counts once a second
                if labels(app)[2] != "ag2":
                    break
                await pilot.pause(0.02)
            assert labels(app) == ["ag0", "ag1", "ag2 (1,234 new)", "ag3", "ag4", "ag5 (7 new)"]
            assert list(app.widgets["ag0"].lines) == ["shown line"] and not app.widgets["ag2"].lines
            await pilot.click(PaneView, offset=(tab_x(app, "ag2"), 0))  # the tab row
            for _ in range(150):
                if labels(app)[2] == "ag2":
                    break
                await pilot.pause(0.02)
            assert labels(app)[2] == "ag2" and "ag2" not in app.hidden and "ag0" in app.hidden
    asyncio.run(asyncio.wait_for(main(), 50))


# -- faults the view must survive (not pictures, but the same scripted app) ---------------------


def test_a_resize_storm_leaves_the_view_up_and_drawn():
    import asyncio

    async def main():
        app = make_app(main_batches())
        async with app.run_test(size=(130, 36)) as pilot:
            await settled(3)(pilot)
            for i in range(60):
                await pilot.resize_terminal(40 + (i * 37) % 120, 8 + (i * 13) % 40)
            await pilot.resize_terminal(120, 30)
            await pilot.pause()
            assert app.is_running and app.screen.size == (120, 30)
            assert list(app.widgets["claude"].lines)[-1] == "claude: step 29 of the fix"
            assert "up" in str(app.query_one("#status").render())
    asyncio.run(asyncio.wait_for(main(), 50))


def test_an_unreadable_events_db_is_named_and_the_view_goes_on(tmp_path):
    from cocode.top.feed import initial_state

    paths = Paths(tmp_path)
    paths.home.mkdir()
    paths.db.write_bytes(b"not a database, or one from another cocode" * 100)
    state, error = initial_state(paths)
    assert state.jobs == {} and str(paths.db) in error and "live events only" in error


# -- keys as a person finds them: every one in the command palette (and running its
# action), the everyday ones in the footer of an 80-column terminal.


def on_main_screen(size: tuple[int, int], check) -> None:
    """`check(app, pilot)` on the main screen (main_batches()) at this terminal size."""
    async def go():
        app = make_app(main_batches())
        async with app.run_test(size=size) as pilot:
            await settled(3)(pilot)
            await check(app, pilot)
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_every_key_is_in_the_palette_and_runs_its_action():
    async def check(app, pilot):
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for b in app.BINDINGS:
            if b.action != "quit":
                assert b.description in commands, f"{b.description} ({b.key}) is not in the palette"
        assert "Quit" in commands  # Textual's own
        search = app.query_one("#search")
        assert not search.display
        await commands["Search"].callback()  # what the palette calls
        await pilot.pause(0.1)
        assert search.display  # the palette's Search opened the pane's search box
    on_main_screen((130, 36), check)


@pytest.mark.timeout(60)
def test_at_80_columns_the_footer_shows_every_key_up_to_quit():
    async def check(app, pilot):
        keys = {k.description: k.region for k in app.query("FooterKey") if k.description}
        palette = min(k.region.x for k in app.query("FooterKey") if k.has_class("-command-palette"))
        for name in ("Submit", "Cancel run", "Diff", "Say", "Pick", "Search", "Quit"):
            assert keys[name].right <= palette, f"{name} is cut off at 80 columns ({keys[name]})"
    on_main_screen((80, 24), check)
