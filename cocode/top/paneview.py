"""The agents' panes as ONE widget (Textual's Line API): every shown pane side by
side, a title row over each, and a plain one-line tab row when the job has more
agents than fit (then one pane is shown at a time).

Why one widget: Textual composites each widget of a region separately, and every
row of a scrolling pane is new each frame, so each layer (container, tabbed
content, switcher, tab pane, the pane, its border and scrollbars) cost a Strip and
a divide per row per frame: most of the view's CPU. Here a frame is one Strip per
row, built from per-line segments cached by the line's absolute number.

What each pane holds and where its reader is: cocode/top/panestate.py. Keys: up/
down/page/home/end scroll the current pane (back pauses its follow, End resumes),
left/right change the pane (or the tab), shift+left/right scroll sideways; the
mouse wheel scrolls the pane under it, a click picks a pane or a tab.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.filter import ANSIToTruecolor
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from cocode.top.panestate import Pane

SEP = "│"


class PaneView(Widget, can_focus=True):
    COMPONENT_CLASSES = {"paneview--title", "paneview--title-current", "paneview--border",
                         "paneview--tab", "paneview--tab-active", "paneview--current"}
    DEFAULT_CSS = """
    PaneView { background: $surface; color: $text; height: 1fr; }
    PaneView > .paneview--title { background: $panel; color: $text-muted; }
    PaneView > .paneview--title-current { background: $panel; color: $text; text-style: bold; }
    PaneView > .paneview--border { color: $primary-darken-2; }
    PaneView > .paneview--tab { background: $panel-darken-1; color: $text-muted; }
    PaneView > .paneview--tab-active { background: $primary; color: $text; text-style: bold; }
    PaneView > .paneview--current { background: $accent; color: $text; }
    """
    BINDINGS = [
        Binding("up", "scroll(-1)", show=False), Binding("down", "scroll(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "home", show=False), Binding("end", "end", "Follow", show=False),
        Binding("left", "pick(-1)", show=False), Binding("right", "pick(1)", show=False),
        Binding("shift+left", "sideways(-8)", show=False), Binding("shift+right", "sideways(8)", show=False),
    ]

    class TabChanged(Message):
        """Another tab is shown (more agents than fit side by side)."""

        def __init__(self, agent: str) -> None:
            super().__init__()
            self.agent = agent

    def __init__(self, max_side_by_side: int = 4, **kw) -> None:
        super().__init__(**kw)
        self.max_side = max_side_by_side
        self.panes: list[Pane] = []
        self.tabs = False  # more agents than fit: one shown, a tab row above it
        self.at = 0  # the current pane (the shown one when tabs)
        self.labels: dict[str, str] = {}  # a tab's label (its unread count while hidden)
        self.empty = "no job selected"
        self._cells: dict[tuple, list[Segment]] = {}  # (pane, line, x, width, matches) -> a row's segments
        self._styles: dict[str, Style] | None = None
        self._tab_spans: list[tuple[int, int, int]] = []  # (x0, x1, pane index) of the tab row
        self._columns: list[tuple[int, int]] | None = None
        self._seen: dict[int, tuple] = {}  # id(pane) -> what its rows and title showed at the last refresh

    # -- what is shown ---------------------------------------------------------------------------

    def set_panes(self, panes: list[Pane]) -> None:
        self.panes, self.at = panes, 0
        self.tabs = len(panes) > self.max_side
        self.labels = {p.agent: p.agent for p in panes}
        self._cells.clear()
        self._seen.clear()
        self._fit()
        self.refresh()

    @property
    def shown(self) -> list[Pane]:
        if self.tabs:
            return self.panes[self.at:self.at + 1]
        return self.panes

    @property
    def current(self) -> Pane | None:
        return self.panes[self.at] if self.panes else None

    def show_tab(self, i: int) -> None:
        if not self.tabs or not 0 <= i < len(self.panes) or i == self.at:
            return
        self.at = i
        self._fit()
        self.refresh()
        self.post_message(self.TabChanged(self.panes[i].agent))

    def set_label(self, agent: str, label: str) -> None:
        if self.labels.get(agent) != label:
            self.labels[agent] = label
            if self.tabs:
                self.refresh(Region(0, 0, self.size.width, 1))

    def changed(self, panes: list[Pane]) -> None:
        """These panes took new lines: redraw if one of them is shown (one refresh a batch)."""
        shown = self.shown
        if any(p in shown and self._moved(p) for p in panes):
            if len(self._cells) > 8 * max(self.size.height, 1) * max(len(shown), 1):
                self._cells.clear()  # rows of lines scrolled away
            self.refresh()

    def _moved(self, p: Pane) -> bool:
        """Did the rows or the title of this pane change since the last refresh? Lines
        are immutable by their absolute number, so which ones are on screen says it all:
        a pane scrolled back that only took new lines below its view is not redrawn."""
        top = p.view_top()
        seen = (top, min(p.end, top + p.height), p.x, p.height, id(p.matches), p.current, p.follow, p.note)
        if self._seen.get(id(p)) == seen:
            return False
        self._seen[id(p)] = seen
        return True

    # -- geometry --------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """Rows above the lines: the tab row (tabs), the titles."""
        return 2 if self.tabs else 1

    def columns(self) -> list[tuple[int, int]]:
        """(x, width) of each shown pane; a one-column separator between them."""
        if self._columns is None:
            n, out, x = len(self.shown), [], 0
            free = max(0, self.size.width - (n - 1))
            for i in range(n):
                w = free // n + (1 if i >= n - free % n else 0)
                out.append((x, w))
                x += w + 1
            self._columns = out
        return self._columns

    def _fit(self) -> None:
        """The panes' rows and columns for this size (asked per row, computed once)."""
        self._columns = None
        rows = max(1, self.size.height - self.head)
        for p in self.panes:
            p.height = rows

    def on_resize(self) -> None:
        self._fit()
        self._cells.clear()
        self.refresh()

    def pane_at(self, x: int) -> int | None:
        for i, (x0, w) in enumerate(self.columns()):
            if x0 <= x < x0 + w + 1:
                return self.at if self.tabs else i
        return None

    # -- keys and mouse --------------------------------------------------------------------------

    def _act(self, fn) -> None:
        p = self.current
        if p is not None:
            fn(p)
            self._moved(p)  # drawn now: its next lines are compared with this
            self.refresh()

    def action_scroll(self, rows: int) -> None:
        self._act(lambda p: p.scroll(rows))

    def action_page(self, pages: int) -> None:
        self._act(lambda p: p.scroll(pages * max(1, p.height - 1)))

    def action_home(self) -> None:
        self._act(lambda p: p.scroll_to(p.first))

    def action_end(self) -> None:
        self._act(lambda p: p.scroll_end())

    def action_sideways(self, cols: int) -> None:
        self._act(lambda p: p.scroll_x(cols))

    def action_pick(self, step: int) -> None:
        if not self.panes:
            return
        i = (self.at + step) % len(self.panes)
        if self.tabs:
            self.show_tab(i)
        else:
            self.at = i
            self.refresh()

    def on_focus(self) -> None:
        self.refresh(Region(0, self.head - 1, self.size.width, 1))  # the current pane's title shows it

    def on_blur(self) -> None:
        self.refresh(Region(0, self.head - 1, self.size.width, 1))

    def on_mouse_scroll_up(self, event) -> None:
        self._wheel(event, -3)

    def on_mouse_scroll_down(self, event) -> None:
        self._wheel(event, 3)

    def _wheel(self, event, rows: int) -> None:
        i = self.pane_at(event.x)
        if i is not None:
            event.stop()
            self.panes[i].scroll(rows)
            self._moved(self.panes[i])
            self.refresh()

    def on_click(self, event) -> None:
        if self.tabs and event.y == 0:
            for x0, x1, i in self._tab_spans:
                if x0 <= event.x < x1:
                    self.show_tab(i)
            return
        i = self.pane_at(event.x)
        if i is not None and i != self.at:
            self.at = i
            self.refresh()

    # -- drawing ---------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cells.clear()

    def styles_for(self) -> dict[str, Style]:
        # rich_style walks the DOM each time: asked once per style change, not per row.
        if self._styles is None:
            base = self.rich_style
            s = {"base": base}
            for name in self.COMPONENT_CLASSES:
                s[name.split("--")[1]] = base + self.get_component_rich_style(name, partial=True)
            s["hit"] = base + Style(reverse=True)
            s["now"] = s["current"] + Style(bold=True)
            self._styles = s
        return self._styles

    def render_lines(self, crop: Region) -> list[Strip]:
        """The rows straight from render_line: this widget has no border, padding or
        tint for Textual's styles cache to add, and its per-row pass (a new Strip per
        row of a scrolling pane) was the larger part of a frame. The app's filters
        (e.g. the dimming behind a modal screen) still apply."""
        filters = [f for f in self.get_line_filters() if not self._already_truecolor(f)]
        background = self.background_colors[1] if filters else None
        strips = []
        width, st = self.size.width, self.styles_for()  # asked once a frame: `size` walks the DOM
        for y in crop.line_range:
            strip = self._row(y, width, st)
            for f in filters:
                strip = strip.apply_filter(f, background)
            strips.append(strip)
        x1, x2 = crop.column_span
        if (x1, x2) != (0, self.size.width):
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips

    def _already_truecolor(self, f) -> bool:
        """Every segment drawn here has one of styles_for()'s styles (the lines are plain
        text): when the ANSI-to-truecolor filter leaves each of them as it is, it would
        only copy every row each frame (profiled: more CPU than making the rows)."""
        if not isinstance(f, ANSIToTruecolor):
            return False
        bg = self.background_colors[1].rich_color
        return all(f.truecolor_style(style, bg) == style for style in self.styles_for().values())

    def render_line(self, y: int) -> Strip:
        return self._row(y, self.size.width, self.styles_for())

    def _row(self, y: int, width: int, st: dict[str, Style]) -> Strip:
        if not self.panes:
            text = f"  {self.empty}" if y == 1 else ""
            return Strip([Segment(text[:width].ljust(width), st["base"])], width)
        if self.tabs and y == 0:
            return self._tab_row(width, st)
        row = y - self.head
        segs: list[Segment] = []
        shown = self.shown
        for k, (x0, w) in enumerate(self.columns()):
            if k:
                segs.append(Segment(SEP, st["border"]))
            p = shown[k]
            if row < 0:
                mine = (self.tabs or p is self.current) and self.has_focus
                segs.append(Segment(_fit(f" {p.title()}", w), st["title-current" if mine else "title"]))
            else:
                segs.extend(self._cell(p, row, w, st))
        if x0 + w > width:  # narrower than its separators: cut, never wider than the widget
            return Strip(segs).crop(0, width)
        return Strip(segs, width)

    def _cell(self, p: Pane, row: int, w: int, st: dict[str, Style]) -> list[Segment]:
        n = p.line_at(row)
        if n is None:
            return [Segment(" " * w, st["base"])]
        key = (id(p), n, p.x, w, id(p.matches), p.current)
        segs = self._cells.get(key)
        if segs is None:
            text = p.lines[n - p.first]
            spans = [(m.start, m.end, i == p.current) for i, m in enumerate(p.matches) if m.line == n]
            segs = _segments(text, p.x, w, spans, st)
            self._cells[key] = segs
        return segs

    def _tab_row(self, width: int, st: dict[str, Style]) -> Strip:
        segs, spans, x = [], [], 0
        labels = [f" {self.labels.get(p.agent, p.agent)} " for p in self.panes]
        start = 0  # tabs that do not fit scroll: the shown one is always in the row
        while start < self.at and sum(map(len, labels[start:self.at + 1])) > width:
            start += 1
        for i in range(start, len(labels)):
            label = labels[i]
            if x + len(label) > width:
                break
            segs.append(Segment(label, st["tab-active" if i == self.at else "tab"]))
            spans.append((x, x + len(label), i))
            x += len(label)
        self._tab_spans = spans
        segs.append(Segment(" " * (width - x), st["tab"]))
        return Strip(segs, width)


def _fit(text: str, width: int) -> str:
    """`text` cut or padded to `width` cells."""
    if text.isascii():
        return text[:width].ljust(width)
    return Strip([Segment(text)]).crop_extend(0, width, None).text


def _segments(text: str, x: int, width: int, spans: list[tuple[int, int, bool]],
              st: dict[str, Style]) -> list[Segment]:
    """The cells [x, x + width) of a line, matches highlighted."""
    base = st["base"]
    if not spans:
        if text.isascii():
            return [Segment(text[x:x + width].ljust(width), base)]
        return list(Strip([Segment(text, base)]).crop_extend(x, x + width, base))
    out, at = [], 0
    for start, end, now in sorted(spans):
        if start > at:
            out.append(Segment(text[at:start], base))
        out.append(Segment(text[max(start, at):end], st["now"] if now else st["hit"]))
        at = max(at, end)
    out.append(Segment(text[at:], base))
    return list(Strip(out).crop_extend(x, x + width, base))
