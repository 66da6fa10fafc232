"""The jobs and runs tables of `cocode top`: one small widget on Textual's Line API
(a header row, rows of plain-string cells keyed by a string, a row cursor).

Why not Textual's DataTable: one changed cell (a run's cpu sparkline, its time,
a job's age: every second) invalidates all its row caches, so every row went
through Rich again, 10-22 ms a frame (measured while agents streamed: the p99 of
both key-to-screen and output-to-screen). Here set_rows() compares the cells and
refreshes only the rows that changed; a row is one Segment in one style, its
Strip cached by (cells, style, width), so a frame draws only what moved.

Keys: up/down/pageup/pagedown/home/end move the cursor (the view scrolls to keep
it shown, the header says which rows are); a click puts it on a row; the wheel
scrolls. A move to another row posts RowTable.RowHighlighted.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

MAX_COLUMN = 24  # cells of content a column other than the last takes at most
PAD = 1  # a blank cell on each side of every column (as DataTable draws them)


class RowTable(Widget, can_focus=True):
    COMPONENT_CLASSES = {"rowtable--header", "rowtable--cursor", "rowtable--even-row"}
    # DataTable's look: its colours, its stripes, its cursor brighter with focus.
    DEFAULT_CSS = """
    RowTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .rowtable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .rowtable--header { background-tint: $foreground 5%; }
        }
        &:dark > .rowtable--even-row { background: $surface-darken-1 40%; }
        & > .rowtable--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .rowtable--header { background: ansi_bright_blue; color: ansi_default; }
        & > .rowtable--even-row { background: $surface-lighten-1 50%; }
        & > .rowtable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", show=False), Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home,ctrl+home", "edge(0)", show=False), Binding("end,ctrl+end", "edge(1)", show=False),
    ]

    class RowHighlighted(Message):
        """The cursor is on another row (a key, a click, move_cursor, or its row gone)."""

        def __init__(self, table: "RowTable", key: str, row: int) -> None:
            super().__init__()
            self.table, self.key, self.row = table, key, row

        @property
        def control(self) -> "RowTable":
            return self.table

    def __init__(self, *labels: str, zebra_stripes: bool = False, max_column: int = MAX_COLUMN, **kw) -> None:
        super().__init__(**kw)
        self.labels = tuple(labels)
        self.zebra = zebra_stripes
        self.max_column = max_column
        self.keys: list[str] = []
        self.cells: list[tuple[str, ...]] = []
        self.cursor_row = 0
        self.top = 0  # the first row shown (more rows than fit scroll)
        self._widths = self._measure([])  # content cells of each column but the last
        self._styles: dict[str, Style] | None = None
        self._strips: dict[tuple, Strip] = {}

    # -- what is shown ---------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.keys)

    @property
    def cursor_key(self) -> str | None:
        return self.keys[self.cursor_row] if 0 <= self.cursor_row < len(self.keys) else None

    def set_rows(self, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        """Show `rows` (key, cells), the cursor kept on its key. Only rows whose cells
        changed are redrawn, unless the keys or the column widths changed."""
        keys = [k for k, _ in rows]
        cells = [tuple(c) for _, c in rows]
        widths = self._measure(cells)
        if keys == self.keys and widths == self._widths:
            changed = [i for i, (a, b) in enumerate(zip(self.cells, cells)) if a != b]
            self.cells = cells
            width, visible = self.size.width, self.visible_rows
            for i in changed:
                if self.top <= i < self.top + visible:
                    self.refresh(Region(0, 1 + i - self.top, width, 1))
            return
        at = self.cursor_key
        relayout = len(keys) != len(self.keys)
        if widths != self._widths:
            self._strips.clear()  # every row's text moved
        self.keys, self.cells, self._widths = keys, cells, widths
        self.cursor_row = keys.index(at) if at in keys else max(0, min(self.cursor_row, len(keys) - 1))
        self._scroll_to_cursor()
        self.refresh(layout=relayout)
        now = self.cursor_key
        if now is not None and now != at:
            self.post_message(self.RowHighlighted(self, now, self.cursor_row))

    def move_cursor(self, row: int) -> None:
        """Put the cursor on `row` (clamped), scrolled into view; say so if it moved."""
        row = max(0, min(row, len(self.keys) - 1))
        if row == self.cursor_row or not self.keys:
            return
        old, top = self.cursor_row, self.top
        self.cursor_row = row
        self._scroll_to_cursor()
        if self.top != top:
            self.refresh()
        else:
            self._refresh_row(old)
            self._refresh_row(row)
        self.post_message(self.RowHighlighted(self, self.keys[row], row))

    # -- geometry --------------------------------------------------------------------------------

    @property
    def visible_rows(self) -> int:
        return max(0, self.size.height - 1)

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1 + len(self.keys)  # held to its container's max-height: then it scrolls

    def _measure(self, cells: list[tuple[str, ...]]) -> tuple[int, ...]:
        widths = []
        for i, label in enumerate(self.labels[:-1]):
            w = max([cell_len(label), *(cell_len(c[i]) for c in cells if i < len(c))])
            widths.append(min(w, self.max_column))
        return tuple(widths)

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.visible_rows)
        if self.cursor_row < self.top:
            self.top = self.cursor_row
        elif self.cursor_row >= self.top + visible:
            self.top = self.cursor_row - visible + 1
        self.top = max(0, min(self.top, len(self.keys) - visible))

    def _refresh_row(self, i: int) -> None:
        if self.top <= i < self.top + self.visible_rows:
            self.refresh(Region(0, 1 + i - self.top, self.size.width, 1))

    def on_resize(self) -> None:
        self._scroll_to_cursor()
        self._strips.clear()
        self.refresh()

    # -- keys and mouse --------------------------------------------------------------------------

    def action_cursor(self, rows: int) -> None:
        self.move_cursor(self.cursor_row + rows)

    def action_page(self, pages: int) -> None:
        self.move_cursor(self.cursor_row + pages * max(1, self.visible_rows))

    def action_edge(self, end: int) -> None:
        self.move_cursor(len(self.keys) - 1 if end else 0)

    def on_click(self, event) -> None:
        row = self.top + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.keys):
            self.move_cursor(row)

    def on_mouse_scroll_up(self, event) -> None:
        self._wheel(event, -1)

    def on_mouse_scroll_down(self, event) -> None:
        self._wheel(event, 1)

    def _wheel(self, event, rows: int) -> None:
        top = max(0, min(self.top + rows, len(self.keys) - max(1, self.visible_rows)))
        if top != self.top:
            event.stop()
            self.top = top
            self.refresh()

    # -- drawing ---------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()  # focus in or out comes here too (the :focus rules)
        self._styles = None
        self._strips.clear()

    def styles_for(self) -> dict[str, Style]:
        # rich_style walks the DOM each time: asked once per style change, not per row.
        if self._styles is None:
            s = {"base": self.rich_style}
            for name in self.COMPONENT_CLASSES:
                s[name.split("--")[1]] = self.get_component_rich_style(name)
            self._styles = s
        return self._styles

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._strip(self.labels, "header", width, self._where())
        row = self.top + y - 1
        if row >= len(self.keys):
            return self._strip((), "base", width)
        if row == self.cursor_row:
            kind = "cursor"
        else:
            kind = "even-row" if self.zebra and row % 2 == 0 else "base"
        return self._strip(self.cells[row], kind, width)

    def _where(self) -> str:
        """No scrollbar: when not all rows fit, the header says which are shown."""
        n, shown = len(self.keys), self.visible_rows
        if n <= shown or shown <= 0:
            return ""
        return f" {self.top + 1}-{self.top + shown} of {n} "

    def _strip(self, cells: tuple[str, ...], kind: str, width: int, note: str = "") -> Strip:
        key = (cells, kind, width, note)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 64 + 4 * len(self.keys):
                self._strips.clear()  # rows whose cells are gone
            text = self._text(cells, width)
            if note:
                used = cell_len(text.rstrip())
                for say in (note, note.replace(" of ", "/"), "↑↓" if self.top else " ↓"):
                    if width - used >= len(say):
                        text = set_cell_size(text, width - len(say)) + say
                        break
            strip = Strip([Segment(text, self.styles_for()[kind])], width)
            self._strips[key] = strip
        return strip

    def _text(self, cells: tuple[str, ...], width: int) -> str:
        """One row's text, exactly `width` cells: each column padded, the last cut with …"""
        if not cells:
            return " " * width
        pad = " " * PAD
        out, used = [], 0
        for i, w in enumerate(self._widths):
            out.append(pad + _fit(cells[i] if i < len(cells) else "", w) + pad)
            used += w + 2 * PAD
        last = cells[len(self._widths)] if len(cells) > len(self._widths) else ""
        rest = width - used
        if rest > 0:
            out.append(pad + _fit(last, max(0, rest - 2 * PAD)) + pad if rest >= 2 * PAD else " " * rest)
        return _fit("".join(out), width, cut="")


def _fit(text: str, width: int, cut: str = "…") -> str:
    """`text` in exactly `width` cells: padded, or cut with `cut` at its end."""
    if width <= 0:
        return ""
    if text.isascii():
        if len(text) <= width:
            return text.ljust(width)
        return text[:width - len(cut)] + cut if width > len(cut) else text[:width]
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - cell_len(cut)) + cut if width > cell_len(cut) else set_cell_size(text, width)
