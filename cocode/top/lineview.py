"""The pane widget: an agent's lines drawn straight from a ring of strings, only the
rows on screen, each as one Segment (no Rich Text per line, no re-render of the pane).

Why not Textual's `Log`: it re-renders every visible line through Rich on each repaint
(its line cache is filled only while text is selected) and sets `virtual_size` on every
write, and `virtual_size` is a layout reactive: each append laid out the whole screen.
Here the virtual size grows in powers of two (a handful of layouts in a pane's life),
lines sit at the bottom of it like a terminal's, and a drawn row is cached by the line's
absolute number, so an append redraws rows but renders only the new lines.

AgentPane is the LineView of one agent: it takes its PaneLog's new lines when shown.
Search (cocode/top/search.py finds) is drawn here: matches in reverse, the current one
in the accent colour.
"""

from __future__ import annotations

from collections import deque

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cocode.top.panes import PaneLog
from cocode.top.search import Match

def bucket(n: int, floor: int, cap: int) -> int:
    """The smallest power-of-two multiple of `floor` holding n, at most `cap` (never under
    `floor`): a size that changes log2 times while n grows."""
    size = floor
    while size < n and size < cap:
        size *= 2
    return max(floor, min(size, cap))


class LineView(ScrollView, can_focus=True):
    """Lines at the bottom of a virtual page; rows on screen drawn from a cache."""

    COMPONENT_CLASSES = {"lineview--current"}
    DEFAULT_CSS = """
    LineView { background: $surface; color: $text; overflow: auto auto;
               &:focus { background-tint: $foreground 5%; } }
    LineView > .lineview--current { background: $accent; color: $text; }
    """

    def __init__(self, keep: int, **kw) -> None:
        super().__init__(**kw)
        self.keep = max(1, keep)
        self.lines: deque[str] = deque(maxlen=self.keep)
        self.first = 0  # absolute number of lines[0]: cache keys survive the ring's turn
        self.widest = 0
        self._strips: dict[tuple[int, int, int], Strip] = {}
        self.matches: list[Match] = []  # absolute line numbers
        self.current = -1
        self.follow = True  # at the end: appends scroll with it

    # -- content ---------------------------------------------------------------------------------

    def write_lines(self, new: list[str]) -> None:
        """Append; a person scrolled back keeps seeing the same lines."""
        if not new:
            return
        following = self.following
        top = None if following else self.line_at(round(self.scroll_y))  # what a reader looks at
        over = max(0, len(self.lines) + len(new) - self.keep)
        self.lines.extend(new)
        self.first += over
        self.widest = max(self.widest, max(map(len, new)))
        self._fit()
        if following:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif top is not None:
            # Lines sit at the bottom of the page: keep the one at the top of the view there.
            row = max(top, self.first) - self.first + self.top_pad()
            self.scroll_to(y=row, animate=False, immediate=True, force=True)
        if len(self._strips) > 4 * max(self.size.height, 1):
            self._strips.clear()
        self.refresh()

    def clear(self) -> None:
        self.first += len(self.lines)
        self.lines.clear()
        self.widest = 0
        self._strips.clear()
        self.matches, self.current = [], -1
        self._fit()
        self.refresh()

    def _fit(self) -> bool:
        """Set the virtual size if its bucket changed (a layout): True if it did. Lines
        that fit the view need no scrollbar, so the view's size is the smallest bucket."""
        height = bucket(len(self.lines), max(self.size.height, 1), max(self.keep, self.size.height))
        # The vertical scrollbar's column is not the lines': a line as wide as the view
        # would scroll sideways.
        width = bucket(self.widest, max(self.size.width - self.styles.scrollbar_size_vertical, 1), 1 << 16)
        if self.virtual_size != Size(width, height):
            self.virtual_size = Size(width, height)
            return True
        return False

    @property
    def following(self) -> bool:
        return self.follow

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        # Only a scroll changes it: a virtual size not laid out yet must not stop the follow.
        super().watch_scroll_y(old_value, new_value)
        self.follow = new_value >= self.max_scroll_y

    def top_pad(self) -> int:
        """Rows above the first line: lines sit at the bottom of the page (an append then
        moves what is drawn, not the page), at the top while they fit the view."""
        if len(self.lines) <= self.size.height:
            return 0
        return max(0, self.virtual_size.height - len(self.lines))

    def on_resize(self) -> None:
        if self._fit() and self.follow:
            self.scroll_end(animate=False, x_axis=False, force=True)
        self._strips.clear()

    def line_at(self, row: int) -> int | None:
        """Absolute line number drawn at virtual row `row`, None above the lines."""
        i = row - self.top_pad()
        return self.first + i if 0 <= i < len(self.lines) else None

    def show_line(self, absolute: int) -> None:
        """Scroll so that line `absolute` is in the middle of the view."""
        row = absolute - self.first + self.top_pad()
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True, force=True)

    def set_matches(self, matches: list[Match], current: int) -> None:
        self.matches, self.current = matches, current
        self._strips.clear()
        self.refresh()

    # -- drawing ---------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._style = None

    _style: Style | None = None

    @property
    def base_style(self) -> Style:
        # rich_style walks the DOM each time: a third of a row's cost when asked per row.
        if self._style is None:
            self._style = self.rich_style
        return self._style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        style = self.base_style
        n = self.line_at(scroll_y + y)
        if n is None:
            return Strip.blank(width, style)
        key = (n, scroll_x, width)
        strip = self._strips.get(key)
        if strip is None:
            text = self.lines[n - self.first]
            spans = [(m.start, m.end, i == self.current) for i, m in enumerate(self.matches) if m.line == n]
            strip = Strip(self._segments(text[: scroll_x + width], spans, style))
            strip = strip.crop_extend(scroll_x, scroll_x + width, style)
            self._strips[key] = strip
        return strip.apply_offsets(scroll_x, scroll_y + y)

    def _segments(self, text: str, spans: list[tuple[int, int, bool]], style: Style) -> list[Segment]:
        if not spans:
            return [Segment(text, style)]
        hit = style + Style(reverse=True)
        now = style + self.get_component_rich_style("lineview--current", partial=True) + Style(bold=True)
        out, at = [], 0
        for start, end, current in sorted(spans):
            if start >= len(text):
                break
            if start > at:
                out.append(Segment(text[at:start], style))
            out.append(Segment(text[max(start, at):end], now if current else hit))
            at = max(at, end)
        if at < len(text):
            out.append(Segment(text[at:], style))
        return out


class AgentPane(LineView):
    """One agent's output; scrolling back pauses its follow (End resumes it)."""

    def __init__(self, agent: str, pane: PaneLog, keep: int, **kw) -> None:
        super().__init__(keep, **kw)
        self.agent, self.pane = agent, pane
        self.generation, self.version = -1, -1
        self.border_title = agent

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        subtitle = "" if self.is_vertical_scroll_end else "paused: scrolled back (End follows)"
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle

    def on_show(self) -> None:
        self.sync()

    def on_resize(self) -> None:
        super().on_resize()
        self.sync()

    def sync(self) -> None:
        if self.version == self.pane.version or not self.region.area:
            return  # unchanged, or hidden (another tab): caught up when shown
        if self.generation != self.pane.generation:
            self.clear()
            self.generation = self.pane.generation
        new = self.pane.take()
        self.version = self.pane.version
        if new:
            following = self.following
            self.write_lines(new)
            if following:
                self.call_after_refresh(self.scroll_end, animate=False, x_axis=False, force=True)  # once laid out
