"""One agent's pane as the view holds it: the last `keep` lines as plain strings in
a ring, where the reader looks (following the end, or paused on a line), the
sideways offset and the search matches. No Textual here: cocode/top/paneview.py
draws the panes from these, and the app's search (cocode/top/pane_search.py) and
tests read them.

Lines are numbered absolutely (`first` is the number of lines[0]), so a paused
reader stays on the same line while the ring turns, and a drawn row can be cached
by its line's number.
"""

from __future__ import annotations

from collections import deque

from cocode.top.panes import PaneLog
from cocode.top.search import Match


class Pane:
    """The lines one agent's pane shows, and where its reader is."""

    def __init__(self, agent: str, log: PaneLog, keep: int) -> None:
        self.agent, self.log = agent, log
        self.keep = max(1, keep)
        self.lines: deque[str] = deque(maxlen=self.keep)
        self.first = 0  # absolute number of lines[0]
        self.follow = True  # at the end: new lines scroll the view
        self.top = 0  # absolute number of the line at the top of the view while paused
        self.x = 0  # columns scrolled sideways
        self.height = 1  # rows the view has for lines (set by the widget at each layout)
        self.matches: list[Match] = []
        self.current = -1
        self.note = ""  # the search's "/text: 2 of 11", shown in the pane's title
        self.generation, self.version = -1, -1  # of the PaneLog last taken from
        self.changed = 0  # bumped on every change the widget must draw

    # -- content ---------------------------------------------------------------------------------

    @property
    def end(self) -> int:
        return self.first + len(self.lines)

    def sync(self) -> bool:
        """Take the PaneLog's new lines (a reset empties the pane first): True if any changed."""
        log = self.log
        if self.version == log.version:
            return False
        if self.generation != log.generation:
            self.clear()
            self.generation = log.generation
        self.version = log.version
        new = log.take()
        if new:
            self.write_lines(new)
        self.changed += 1
        return True

    def write_lines(self, new: list[str]) -> None:
        over = max(0, len(self.lines) + len(new) - self.keep)
        self.lines.extend(new)
        self.first += over
        self.changed += 1

    def clear(self) -> None:
        self.first += len(self.lines)
        self.lines.clear()
        self.top, self.x, self.follow = self.first, 0, True
        self.matches, self.current, self.note = [], -1, ""
        self.changed += 1

    # -- where the reader is ---------------------------------------------------------------------

    def view_top(self) -> int:
        """Absolute number of the line drawn on the view's first row."""
        last_top = max(self.first, self.end - self.height)
        if self.follow:
            return last_top
        return min(max(self.top, self.first), last_top)

    def line_at(self, row: int) -> int | None:
        """Absolute line number drawn on row `row` of the view, None past the lines."""
        n = self.view_top() + row
        return n if self.first <= n < self.end else None

    def visible(self) -> list[str]:
        top = self.view_top() - self.first
        return [self.lines[i] for i in range(top, min(top + self.height, len(self.lines)))]

    def scroll(self, rows: int) -> None:
        """Move the view by `rows` (negative: back). Back pauses the follow; reaching the
        end resumes it."""
        self.scroll_to(self.view_top() + rows)

    def scroll_to(self, top: int) -> None:
        last_top = max(self.first, self.end - self.height)
        self.top = min(max(top, self.first), last_top)
        self.follow = self.top >= last_top
        self.changed += 1

    def scroll_end(self) -> None:
        self.follow, self.x = True, 0
        self.changed += 1

    def scroll_x(self, cols: int) -> None:
        self.x = max(0, self.x + cols)
        self.changed += 1

    def show_line(self, absolute: int) -> None:
        """Scroll so that line `absolute` is in the middle of the view."""
        self.scroll_to(absolute - self.height // 2)

    def set_matches(self, matches: list[Match], current: int) -> None:
        self.matches, self.current = matches, current
        self.changed += 1

    def title(self) -> str:
        paused = "" if self.follow else "paused: scrolled back (End follows)"
        return "  ".join(t for t in (self.agent, paused, self.note) if t)
