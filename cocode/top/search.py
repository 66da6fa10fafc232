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


def after(matches: list[Match], at: tuple[int, int] | None, forward: bool) -> int:
    """The index of the first match after (n) or before (N) position `at` (line, start),
    wrapping around; with no position, the first (n) or last (N). -1 when none."""
    if not matches:
        return -1
    if at is None:
        return 0 if forward else len(matches) - 1
    if forward:
        return next((i for i, m in enumerate(matches) if (m.line, m.start) > at), 0)
    return next((i for i in range(len(matches) - 1, -1, -1) if (matches[i].line, matches[i].start) < at),
                len(matches) - 1)
