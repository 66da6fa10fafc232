"""The jobs and runs tables' widget (cocode/top/table.py) in a real headless Textual
app: the cursor moves by key and click and says so, set_rows keeps it on its key
and redraws only the rows that changed, many rows scroll, wide cells line up."""

from __future__ import annotations

import asyncio

from rich.cells import cell_len
from textual.app import App
from textual.containers import Horizontal

from cocode.top.table import RowTable

LABELS = ("agent", "state", "cpu", "title")


def rows(n: int, state: str = "running", cpu: str = "▁▂▃ 5%") -> list[tuple[str, tuple[str, ...]]]:
    return [(f"a{i}", (f"a{i}", state, cpu, f"title of a{i}")) for i in range(n)]


class Tables(App):
    CSS = "#tables { height: auto; max-height: 45%; }"

    def __init__(self, initial) -> None:
        super().__init__()
        self.initial = initial
        self.highlighted: list[str] = []

    def compose(self):
        with Horizontal(id="tables"):
            yield RowTable(*LABELS, id="t", zebra_stripes=True)

    def on_mount(self) -> None:
        t = self.query_one(RowTable)
        t.set_rows(self.initial)
        t.focus()

    def on_row_table_row_highlighted(self, event: RowTable.RowHighlighted) -> None:
        self.highlighted.append(event.key)


def run(initial, scenario, size=(80, 24)) -> None:
    async def main():
        app = Tables(initial)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.highlighted.clear()  # the first rows put the cursor on a0
            await scenario(pilot, app, app.query_one(RowTable))
    asyncio.run(asyncio.wait_for(main(), 30))


def texts(t: RowTable) -> list[str]:
    return [t.render_line(y).text for y in range(t.size.height)]


def style(t: RowTable, y: int):
    (seg,) = list(t.render_line(y))  # a row is one segment in one style
    return seg.style


def test_the_header_and_rows_are_drawn_and_the_height_fits_them():
    async def scenario(pilot, app, t):
        assert t.size.height == 1 + 3 and t.row_count == 3
        lines = texts(t)
        assert lines[0].split() == list(LABELS)  # all rows shown: no "of n" in the header
        assert lines[2].split()[:2] == ["a1", "running"] and lines[2].rstrip().endswith("title of a1")
        assert all(cell_len(line) == t.size.width for line in lines)
        t.set_rows(rows(5))
        await pilot.pause()
        assert t.size.height == 1 + 5  # more rows: a new layout
    run(rows(3), scenario)


def test_keys_and_clicks_move_the_cursor_and_post_the_row_key():
    async def scenario(pilot, app, t):
        await pilot.press("down", "down")
        await pilot.pause()
        assert t.cursor_row == 2 and t.cursor_key == "a2" and app.highlighted == ["a1", "a2"]
        await pilot.press("up")
        await pilot.press("end")
        await pilot.pause()
        assert t.cursor_row == 4 and app.highlighted[-2:] == ["a1", "a4"]
        await pilot.press("down")  # at the end: no move, no message
        await pilot.press("home")
        await pilot.pause()
        assert t.cursor_row == 0 and app.highlighted[-2:] == ["a4", "a0"] and len(app.highlighted) == 5
        await pilot.click(RowTable, offset=(3, 4))  # the header is row 0: the 4th data row
        await pilot.pause()
        assert t.cursor_key == "a3" and app.highlighted[-1] == "a3"
        await pilot.click(RowTable, offset=(3, 0))  # the header: nothing
        await pilot.pause()
        assert t.cursor_key == "a3" and len(app.highlighted) == 6
        t.move_cursor(1)
        await pilot.pause()
        assert t.cursor_row == 1 and app.highlighted[-1] == "a1"
    run(rows(5), scenario)


def test_the_cursor_is_drawn_in_its_own_style_brighter_with_focus():
    async def scenario(pilot, app, t):
        focused = style(t, 1)
        assert focused != style(t, 2) and focused != style(t, 3)
        assert style(t, 2) != style(t, 3)  # zebra stripes
        t.blur()
        await pilot.pause()
        assert style(t, 1) not in (focused, style(t, 2))
    run(rows(3), scenario)


def test_set_rows_keeps_the_cursor_on_its_key():
    async def scenario(pilot, app, t):
        await pilot.press("down")
        await pilot.pause()
        assert t.cursor_key == "a1" and app.highlighted == ["a1"]
        t.set_rows([("new", ("new", "queued", "", "a new one")), *rows(3)])  # listed first
        await pilot.pause()
        assert t.cursor_row == 2 and t.cursor_key == "a1" and app.highlighted == ["a1"]
        t.set_rows(rows(1))  # its row gone: the nearest row, said
        await pilot.pause()
        assert t.cursor_key == "a0" and app.highlighted == ["a1", "a0"]
        t.set_rows([])
        assert t.cursor_key is None and t.row_count == 0 and t.cursor_row == 0
        await pilot.pause()
        assert texts(t)[0].split() == list(LABELS)
    run(rows(3), scenario)


def test_a_changed_cell_redraws_only_its_row():
    async def scenario(pilot, app, t):
        await pilot.pause()
        refreshed, drawn = [], []
        plain_refresh, plain_line = t.refresh, t.render_line
        t.refresh = lambda *a, **k: (refreshed.append((a, k)), plain_refresh(*a, **k))[1]
        t.render_line = lambda y: (drawn.append(y), plain_line(y))[1]
        new = rows(5)
        new[3] = ("a3", ("a3", "running", "▁▂▅ 9%", "title of a3"))  # as wide as before: no relayout
        t.set_rows(new)
        assert [(r.y, r.height, r.width) for (r,), _ in refreshed] == [(4, 1, t.size.width)]
        await pilot.pause()
        assert drawn == [4]  # the one row, nothing else drawn
        assert "▁▂▅ 9%" in texts(t)[4]
        refreshed.clear()
        t.set_rows(new)  # nothing changed: nothing redrawn
        assert refreshed == []
        t.set_rows([*new[:4], ("a4", ("a4", "running", "▁▂▃▅▇ 100%", "title of a4"))])
        assert refreshed and refreshed[-1] == ((), {"layout": False})  # a wider column: every row
    run(rows(5), scenario)


def test_a_cursor_move_redraws_two_rows():
    async def scenario(pilot, app, t):
        await pilot.pause()
        drawn = []
        plain_line = t.render_line
        t.render_line = lambda y: (drawn.append(y), plain_line(y))[1]
        await pilot.press("down")
        await pilot.pause()
        assert sorted(drawn) == [1, 2]
    run(rows(5), scenario)


def test_twenty_rows_scroll_to_keep_the_cursor_shown():
    async def scenario(pilot, app, t):
        shown = t.size.height - 1
        assert 0 < shown < 20  # the table is held to 45% of the screen
        assert texts(t)[0].endswith(f" 1-{shown} of 20 ")  # no scrollbar: the header says it
        await pilot.press(*["down"] * 15)
        await pilot.pause()
        assert t.cursor_row == 15 and t.top == 15 - shown + 1
        assert texts(t)[-1].split()[0] == "a15"  # the cursor's row, at the bottom
        await pilot.press("end")
        await pilot.pause()
        assert t.cursor_key == "a19" and texts(t)[-1].split()[0] == "a19"
        assert texts(t)[0].endswith(f" {21 - shown}-20 of 20 ")
        await pilot.press("pageup")
        await pilot.pause()
        assert t.cursor_row == 19 - shown and texts(t)[1].split()[0] == f"a{19 - shown}"
        await pilot.press("home")
        await pilot.pause()
        assert t.top == 0 and texts(t)[1].split()[0] == "a0"
        await pilot.click(RowTable, offset=(2, shown))  # the last row shown
        await pilot.pause()
        assert t.cursor_row == shown - 1
    run(rows(20), scenario, size=(80, 24))


def test_a_40_by_10_terminal_draws_without_a_crash():
    async def scenario(pilot, app, t):
        long = [(f"k{i}", (f"k{i}" * 20, "state " * 10, "▁▂▃▄▅▆▇█" * 5, "a title " * 20)) for i in range(20)]
        t.set_rows(long)
        await pilot.press("end", "pageup", "down")
        await pilot.pause()
        lines = texts(t)
        assert len(lines) == t.size.height >= 1 and all(cell_len(line) == 40 for line in lines)
        assert "…" in lines[1]  # a capped column says it was cut
        await pilot.resize_terminal(12, 4)
        await pilot.pause()
        assert all(cell_len(line) == t.size.width for line in texts(t))
    run(rows(3), scenario, size=(40, 10))


def test_wide_characters_line_up():
    wide = [("a", ("a", "日本語", "▁▂▃", "タイトルは長いタイトル")), ("b", ("b", "ok", "█", "plain"))]

    async def scenario(pilot, app, t):
        lines = texts(t)
        assert all(cell_len(line) == t.size.width for line in lines)
        col = lines[0].index("cpu")  # the header is ascii: its index is its cell
        assert cell_len(lines[1][:lines[1].index("▁")]) == col
        assert lines[2].index("█") == col
        await pilot.resize_terminal(30, 10)  # the wide title cut with …, no half character
        await pilot.pause()
        row = texts(t)[1]
        assert cell_len(row) == t.size.width and row.rstrip().endswith("…")
    run(wide, scenario, size=(60, 10))
