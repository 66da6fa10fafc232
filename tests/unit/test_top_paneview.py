"""The panes widget (cocode/top/paneview.py, one widget drawing every shown pane)
and what each pane holds (cocode/top/panestate.py), in a real headless Textual app:
a pane follows the end, a reader scrolled back keeps his line while lines come and
the ring turns, End resumes; panes side by side scroll apart; more agents than fit
are tabs, switched by a click on the tab row or a key."""

from __future__ import annotations

import asyncio

from textual.app import App

from cocode.top.panes import PaneLog
from cocode.top.panestate import Pane
from cocode.top.paneview import PaneView


class Panes(App):
    def __init__(self, agents: list[str], keep: int = 300) -> None:
        super().__init__()
        self.logs = {a: PaneLog(keep) for a in agents}
        self.panes = [Pane(a, log, keep) for a, log in self.logs.items()]
        self.tabs_shown: list[str] = []

    def compose(self):
        yield PaneView(4)

    def on_mount(self) -> None:
        self.query_one(PaneView).set_panes(self.panes)

    def on_pane_view_tab_changed(self, event: PaneView.TabChanged) -> None:
        self.tabs_shown.append(event.agent)

    def write(self, agent: str, lines: list[str]) -> None:
        self.logs[agent].add(lines, len(lines), "")
        pane = next(p for p in self.panes if p.agent == agent)
        pane.sync()
        self.query_one(PaneView).changed([pane])


def column(view: PaneView, k: int) -> list[str]:
    """What pane k (of those shown) draws, row by row, under its title."""
    x, w = view.columns()[k]
    rows = [view.render_line(y).text for y in range(view.head, view.size.height)]
    return [r[x:x + w].rstrip() for r in rows]


def title(view: PaneView, k: int) -> str:
    x, w = view.columns()[k]
    return view.render_line(view.head - 1).text[x:x + w].strip()


def run(app: App, scenario, size=(60, 20)) -> None:
    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await scenario(pilot, app.query_one(PaneView))
    asyncio.run(asyncio.wait_for(main(), 30))


def test_follows_the_end_and_a_reader_scrolled_back_keeps_his_line():
    app = Panes(["one"])

    async def scenario(pilot, view):
        pane = app.panes[0]
        app.write("one", [f"line {i}" for i in range(10)])
        await pilot.pause()
        assert column(view, 0)[:11] == [f"line {i}" for i in range(10)] + [""]  # fits: drawn from the top
        app.write("one", [f"line {i}" for i in range(10, 250)])
        await pilot.pause()
        assert pane.follow and column(view, 0)[-1] == "line 249" and title(view, 0) == "one"
        view.focus()
        await pilot.press("pageup", "pageup")
        top = column(view, 0)[0]
        assert not pane.follow and top != f"line {249 - pane.height + 1}"
        assert "paused: scrolled back (End follows)" in title(view, 0)
        app.write("one", [f"line {i}" for i in range(250, 320)])  # the ring of 300 turns
        await pilot.pause()
        assert column(view, 0)[0] == top and not pane.follow and pane.lines[0] == "line 20"
        await pilot.press("end")
        app.write("one", ["line 320"])
        await pilot.pause()
        assert pane.follow and column(view, 0)[-1] == "line 320" and title(view, 0) == "one"
    run(app, scenario)


def test_side_by_side_panes_scroll_apart_under_the_mouse_wheel():
    app = Panes(["a", "b", "c"])

    async def scenario(pilot, view):
        for agent in ("a", "b", "c"):
            app.write(agent, [f"{agent}{i}" for i in range(100)])
        await pilot.pause()
        assert [column(view, k)[-1] for k in range(3)] == ["a99", "b99", "c99"]
        assert [title(view, k) for k in range(3)] == ["a", "b", "c"]
        x, _ = view.columns()[1]
        await pilot.click(PaneView, offset=(x + 2, 5))  # a click picks the pane keys act on
        assert view.current.agent == "b"
        for _ in range(5):
            view.post_message(_wheel(view, x + 2))
        await pilot.pause()
        a, b, c = app.panes
        assert a.follow and c.follow and not b.follow and column(view, 1)[-1] != "b99"
        app.write("b", ["b100"])
        app.write("a", ["a100"])
        await pilot.pause()
        assert column(view, 0)[-1] == "a100" and column(view, 1)[-1] != "b100"  # b stays where its reader is
    run(app, scenario, size=(90, 20))


def _wheel(view: PaneView, x: int):
    from textual.events import MouseScrollUp

    return MouseScrollUp(view, x, 5, 0, 0, 0, False, False, False, screen_x=x, screen_y=5)


def test_more_agents_than_fit_are_tabs_switched_by_a_click_or_a_key():
    agents = [f"ag{i}" for i in range(6)]
    app = Panes(agents)

    async def scenario(pilot, view):
        assert view.tabs and [p.agent for p in view.shown] == ["ag0"]
        assert view.render_line(0).text.split() == agents  # the tab row
        app.write("ag0", ["shown"])
        app.write("ag3", ["not drawn while hidden"])
        await pilot.pause()
        assert column(view, 0)[0] == "shown"
        x0 = next(x for x, _, i in view._tab_spans if i == 3)
        await pilot.click(PaneView, offset=(x0 + 1, 0))
        assert [p.agent for p in view.shown] == ["ag3"] and app.tabs_shown == ["ag3"]
        assert column(view, 0)[0] == "not drawn while hidden"
        view.focus()
        await pilot.press("right")
        assert [p.agent for p in view.shown] == ["ag4"] and app.tabs_shown == ["ag3", "ag4"]
        view.set_label("ag0", "ag0 (12 new)")
        assert "ag0 (12 new)" in view.render_line(0).text
    run(app, scenario, size=(80, 12))


def test_a_pane_numbers_its_lines_absolutely_so_a_paused_reader_survives_the_ring():
    """No widget: where the reader is, as the ring of `keep` lines turns and a reset
    (a backlog coming again) empties the pane."""
    log = PaneLog(5)
    pane = Pane("a", log, 5)
    pane.height = 3
    log.add([f"l{i}" for i in range(4)], 4, "")
    assert pane.sync() and not pane.sync()  # taken once; nothing new the second time
    assert pane.visible() == ["l1", "l2", "l3"] and pane.follow
    pane.scroll(-1)
    assert pane.visible() == ["l0", "l1", "l2"] and not pane.follow
    log.add(["l4", "l5"], 2, "")
    pane.sync()
    assert pane.first == 1 and pane.visible() == ["l1", "l2", "l3"]  # l0 left the ring: the nearest kept
    pane.scroll(10)
    assert pane.follow and pane.visible() == ["l3", "l4", "l5"]
    log.reset()
    log.add(["again"], 1, "")
    pane.sync()
    assert list(pane.lines) == ["again"] and pane.first == 6 and pane.line_at(0) == 6


def test_a_pane_whose_rows_did_not_change_is_not_redrawn():
    app = Panes(["one"])

    async def scenario(pilot, view):
        refreshes = []
        plain = view.refresh
        view.refresh = lambda *a, **k: (refreshes.append(a), plain(*a, **k))[1]
        app.write("one", [f"line {i}" for i in range(100)])
        assert len(refreshes) == 1  # following: the rows moved
        view.focus()
        await pilot.press("pageup")
        await pilot.pause()
        top, n = column(view, 0)[0], len(refreshes)
        app.write("one", [f"line {i}" for i in range(100, 150)])  # below the paused view
        assert len(refreshes) == n
        await pilot.pause()
        assert column(view, 0)[0] == top
        await pilot.press("end")
        app.write("one", ["line 150"])
        assert len(refreshes) == n + 2  # End, then the new line
        await pilot.pause()
        assert column(view, 0)[-1] == "line 150"
    run(app, scenario)
