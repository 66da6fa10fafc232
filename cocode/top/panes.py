"""An agent's output as lines for a pane: bytes in, safe lines out, at most `keep`
of them waiting for the pane (a hidden tab takes them when shown). Pure: the feed hands it contiguous bytes (it owns the offsets and the
collector), this turns them into what a person can read.

A line is made safe once (invalid UTF-8 replaced, control characters visible,
a progress bar shown at its last state) and cut for display at MAX_CHARS: a
100 KB line must not cost a 100 KB repaint. `version` counts changes so the
widget repaints only when something changed, and only once per batch.
"""

from __future__ import annotations

from collections import deque

from cocode.logs.printer import safe_text

MAX_CHARS = 2000  # shown of one line; the rest is counted, not drawn
HOLD_PARTIAL = 65536  # an unterminated line this long is shown as it is


def display(raw: bytes) -> str:
    if len(raw) > MAX_CHARS * 4:
        head = safe_text(raw[: MAX_CHARS * 4])[:MAX_CHARS]
        return f"{head} … (+{len(raw) - MAX_CHARS * 4:,} bytes)"
    text = safe_text(raw)
    return text if len(text) <= MAX_CHARS else f"{text[:MAX_CHARS]} … (+{len(text) - MAX_CHARS:,} chars)"


class PaneLog:
    """One run's output not yet shown (the last `keep` lines), plus the line being written."""

    def __init__(self, keep: int) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self.partial = b""
        self.version = 0
        self.total_lines = 0  # complete lines ever added (the pane keeps the last `keep`)
        self.generation = 0  # bumped by reset: a widget showing an older one starts over
        self.unseen = 0  # lines that came while its tab was hidden (not held: fetched when shown)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        buf = self.partial + data if self.partial else data
        *done, rest = buf.split(b"\n")
        for line in done:
            self.lines.append(display(line))
        self.total_lines += len(done)
        if len(rest) > HOLD_PARTIAL:
            self.lines.append(display(rest))
            self.total_lines += 1
            rest = b""
        self.partial = rest
        self.version += 1

    def notice(self, text: str) -> None:
        self.lines.append(f"-- {text}")
        self.total_lines += 1
        self.version += 1

    def flush(self) -> None:
        """The run ended: its last line counts even without a newline."""
        if self.partial:
            self.lines.append(display(self.partial))
            self.total_lines += 1
            self.partial = b""
            self.version += 1

    def reset(self) -> None:
        self.lines.clear()
        self.partial = b""
        self.total_lines = 0
        self.generation += 1
        self.version += 1

    def take(self) -> list[str]:
        """The lines not shown yet (at most `keep`), handed over once: the widget keeps
        what it shows, so a line is held twice only until its pane is drawn."""
        out = list(self.lines)
        self.lines.clear()
        return out

    def visible(self) -> list[str]:
        """Complete lines, then the unterminated one (an agent's prompt, a bar)."""
        out = list(self.lines)
        if self.partial:
            out.append(display(self.partial))
        return out
