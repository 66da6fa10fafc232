"""The pane widget (cocode/top/lineview.py) in a real headless Textual app: it follows
the end, keeps a scrolled-back reader on the same line while lines come and the ring
turns, and grows its page (a layout) only in doublings."""

from __future__ import annotations

import asyncio

from textual.app import App

from cocode.top.lineview import LineView, bucket


class One(App):
    CSS = "LineView { height: 1fr; }"

    def compose(self):
        yield LineView(300)


def drawn(view: LineView) -> list[str]:
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def test_follows_the_end_and_a_reader_scrolled_back_keeps_his_line():
    async def main():
        app = One()
        async with app.run_test(size=(60, 20)) as pilot:
            view = app.query_one(LineView)
            view.write_lines([f"line {i}" for i in range(10)])
            await pilot.pause()
            assert drawn(view)[:10] == [f"line {i}" for i in range(10)]  # fits: drawn from the top
            view.write_lines([f"line {i}" for i in range(10, 250)])
            await pilot.pause()
            assert view.follow and drawn(view)[-1] == "line 249"
            view.scroll_to(y=view.scroll_y - 40, animate=False, immediate=True)
            await pilot.pause()
            top = drawn(view)[0]
            assert not view.follow and top != "line 249"
            view.write_lines([f"line {i}" for i in range(250, 320)])  # the ring of 300 turns
            await pilot.pause()
            assert drawn(view)[0] == top and not view.follow and view.lines[0] == "line 20"
            view.scroll_end(animate=False, immediate=True)
            view.write_lines(["line 320"])
            await pilot.pause()
            assert view.follow and drawn(view)[-1] == "line 320"
    asyncio.run(asyncio.wait_for(main(), 30))


def test_virtual_size_grows_in_doublings_of_the_view_up_to_the_cap():
    assert bucket(0, 30, 2000) == 30
    assert bucket(30, 30, 2000) == 30
    assert bucket(31, 30, 2000) == 60
    assert bucket(1000, 30, 2000) == 1920
    assert bucket(1999, 30, 2000) == 2000
    sizes = {bucket(n, 30, 2000) for n in range(2001)}
    assert len(sizes) == 8  # an append changes the page (a layout) 7 times in a pane's life
