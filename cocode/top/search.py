"""Search within a pane: which lines hold a text, and which match comes next. Pure:
lines in, positions out; the widget draws them, the app moves between them."""

from __future__ import annotations

from typing import Iterable, NamedTuple


class Match(NamedTuple):
    line: int  # absolute line number (the pane's first kept line + index)
    start: int  # character offsets in the line as shown
    end: int


def find(lines: Iterable[str], query: str, first: int = 0) -> list[Match]:
    """Every occurrence of `query` in `lines` (case-insensitive unless it has a capital,
    like less and vim's smartcase), in order; lines are numbered from `first`."""
    if not query:
        return []
    fold = query == query.lower()
    needle = query.lower() if fold else query
    out = []
    for n, line in enumerate(lines, first):
        hay = line.lower() if fold else line
        at = hay.find(needle)
        while at >= 0:
            out.append(Match(n, at, at + len(needle)))
            at = hay.find(needle, at + len(needle))
    return out


def step(matches: list[Match], current: int, forward: bool) -> int:
    """The index of the next (n) or previous (N) match, wrapping; -1 when none."""
    if not matches:
        return -1
    if current < 0:
        return 0 if forward else len(matches) - 1
    return (current + (1 if forward else -1)) % len(matches)


def nearest(matches: list[Match], line: int) -> int:
    """The first match at or after `line` (where the person is looking), else the first."""
    for i, m in enumerate(matches):
        if m.line >= line:
            return i
    return 0 if matches else -1
