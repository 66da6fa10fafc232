"""The one renderer of text for a person: colour and tables.

Callers decide whether to colour (the CLI from `--color`, NO_COLOR and whether
stdout is a terminal: `wants_colour`); this module aligns tables and turns style
names ("bold", "red") into escape sequences through rich, only when told to
colour. Nothing else in cocode writes escape sequences.

The columns are aligned here rather than by rich's Table: for a 40-run status a
rich Table took 72-89 ms against 0.06 ms for the old hand-aligned strings (same
run, this loaded 2-core machine); this aligner takes 0.4 ms, and `cocode status`
lists every run. rich loads only to colour, never at import, so `import
cocode.cli`, pipes and the services stay light.
"""

from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from typing import Iterable, Sequence

MODES = ("auto", "always", "never")

# Run and job states as the tables colour them (rich style names).
STATE_STYLES = {
    "ready": "green", "done": "green", "failed": "red", "cancelled": "yellow",
    "running": "cyan", "queued": "", "waiting": "magenta",
}
AGENT_STYLES = ("cyan", "yellow", "magenta", "green", "blue", "red")


def wants_colour(mode: str, isatty: bool, environ=os.environ) -> bool:
    """`--color` never/always wins; auto colours a terminal unless NO_COLOR is set
    (to anything non-empty, per no-color.org) or TERM is dumb."""
    if mode == "never":
        return False
    if mode == "always":
        return True
    return isatty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


@lru_cache(maxsize=64)
def _style(name: str):
    from rich.style import Style

    return Style.parse(name)


def paint(text: str, style: str, colour: bool) -> str:
    """`text` in `style` (e.g. "bold red") when `colour`, else unchanged."""
    if not colour or not style or not text:
        return text
    from rich.color import ColorSystem

    return _style(style).render(text, color_system=ColorSystem.STANDARD)


def cells(text: str) -> int:
    """Terminal columns `text` takes (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fit(text: str, width: int) -> str:
    """`text` cut to `width` columns, ending in "…" when it was cut."""
    if cells(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = cells(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], colour: bool,
          styles: Iterable[Sequence[str]] | None = None, right: Sequence[str] = (),
          width: int | None = None, max_widths: dict[str, int] | None = None,
          notes: dict[int, str] | None = None, note_column: str | None = None,
          header: bool = True) -> str:
    """Columns aligned under bold headers, without borders (greppable, like `ps`).

    `styles` gives a style per cell (parallel to `rows`); headers in `right` align
    right; `max_widths` caps a column (cut cells end in "…"), and on a terminal of
    `width` columns those capped columns shrink first. Each row is one line, and
    `notes[i]`, a line of its own starting under `note_column`, follows row i. No
    line has trailing spaces. `header=False` leaves the header line out (the
    headers still name the columns for `right` and `max_widths`)."""
    caps = dict(max_widths or {})
    grid = [[str(v) for v in row] for row in rows]
    style_rows = [list(s) for s in styles] if styles is not None else [[] for _ in grid]
    widths = [max([cells(h)] + [cells(r[i]) for r in grid]) for i, h in enumerate(headers)]
    if width:
        over = sum(widths) + len(widths) - 1 - width
        for i, h in enumerate(headers):
            if over > 0 and h in caps:
                caps[h] = max(cells(h), min(caps[h], widths[i] - over))
    for i, h in enumerate(headers):
        if h in caps and widths[i] > caps[h]:
            widths[i] = caps[h]
            for r in grid:
                r[i] = fit(r[i], caps[h])

    def line(values: list[str], cell_styles: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            pad = " " * (widths[i] - cells(v))
            text = pad + v if headers[i] in right else v + pad
            if colour and i < len(cell_styles) and cell_styles[i]:
                # the padding stays outside the colour: nothing trails past the text
                text = pad + paint(v, cell_styles[i], True) if headers[i] in right else paint(v, cell_styles[i], True) + pad
            out.append(text)
        return " ".join(out).rstrip()

    at = list(headers).index(note_column) if note_column in headers else 0
    indent = " " * (sum(widths[:at]) + at)
    lines = [line(list(headers), ["bold"] * len(headers))] if header else []
    for k, (r, s) in enumerate(zip(grid, style_rows)):
        lines.append(line(r, s))
        if notes and k in notes:
            lines.append(indent + notes[k])
    return "\n".join(lines)
