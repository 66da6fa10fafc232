"""An agent's output as lines for a pane: bytes in, safe lines out.

Splitter turns contiguous bytes into readable lines; the feed's thread runs it (the
decode and the line split cost nothing on the app's thread, and a hidden tab's bytes
are only counted). PaneLog holds what the pane has not drawn yet (at most `keep`
lines) and the line being written; the app fills it from the feed's chunks.

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
    if "\t" in text:
        text = text.expandtabs()  # a tab is one character but several cells: drawn as spaces
    return text if len(text) <= MAX_CHARS else f"{text[:MAX_CHARS]} … (+{len(text) - MAX_CHARS:,} chars)"


# Every byte but the control characters display() escapes (tab and newline are not):
# deleting these from a batch leaves nothing when it has none (in UTF-8 a byte below
# 0x20 is always that ASCII character). bytes.translate runs in C, ~15x a regex.
NOT_CONTROL = bytes(b for b in range(256) if b >= 0x20 or b in (0x09, 0x0A))


def body_start(body: bytes, lines: int) -> int:
    """Where the last `lines` newline-separated lines of `body` begin."""
    i = len(body)
    for _ in range(lines):
        i = body.rfind(b"\n", 0, i)
        if i < 0:
            return 0
    return i + 1


def readable(body: bytes) -> list[str]:
    """Newline-separated complete lines -> display() of each. The common case (valid
    UTF-8, no control characters, no line too long) is one decode and one split in C
    for the whole batch: no Python call per line; the rest goes line by line."""
    try:
        text = None if body.translate(None, NOT_CONTROL) else body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if "\t" in text:
            text = text.expandtabs()  # columns restart at each newline, as line by line
        lines = text.split("\n")
        if len(text) <= MAX_CHARS or max(map(len, lines)) <= MAX_CHARS:
            return lines
    return [display(line) for line in body.split(b"\n")]


class Splitter:
    """Contiguous bytes of one stream -> complete display lines, plus the unterminated rest."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.partial = b""

    def split(self, data: bytes) -> tuple[list[str], int]:
        """The new complete lines (only the last `keep` made readable: the pane keeps
        no more) and how many there were."""
        buf = self.partial + data if self.partial else data
        cut = buf.rfind(b"\n") + 1
        n = buf.count(b"\n", 0, cut)
        if len(buf) - cut > HOLD_PARTIAL:
            self.partial = b""
            return [display(line) for line in buf.split(b"\n")[-self.keep:]], n + 1
        self.partial = buf[cut:]
        if not n:
            return [], 0
        body = buf[:cut - 1]
        if n > self.keep:
            body = body[body_start(body, self.keep):]
        return readable(body), n

    def rest(self) -> str:
        """The unterminated line as shown (an agent's prompt, a bar), "" if none."""
        return display(self.partial) if self.partial else ""

    def reset(self) -> None:
        self.partial = b""


class PaneLog:
    """One run's output not yet shown (the last `keep` lines), plus the line being written."""

    def __init__(self, keep: int) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self.splitter = Splitter(keep)  # bytes fed on the app's thread (scripted feeds, tests)
        self.rest = ""  # the unterminated line, shown when the run ends
        self.version = 0
        self.total_lines = 0  # complete lines ever added (the pane keeps the last `keep`)
        self.generation = 0  # bumped by reset: a widget showing an older one starts over
        self.unseen = 0  # lines that came while its tab was hidden (not held: fetched when shown)

    @property
    def partial(self) -> bytes:
        return self.splitter.partial or self.rest.encode()

    def add(self, lines: list[str], count: int, rest: str) -> None:
        """Lines split elsewhere (the feed's thread): `count` complete ones came, `lines`
        are the last of them; `rest` is the unterminated line now."""
        self.lines.extend(lines)
        self.total_lines += count
        self.rest = rest
        self.version += 1

    def feed(self, data: bytes) -> None:
        if data:
            lines, count = self.splitter.split(data)
            self.add(lines, count, self.splitter.rest())

    def notice(self, text: str) -> None:
        self.lines.append(f"-- {text}")
        self.total_lines += 1
        self.version += 1

    def flush(self) -> None:
        """The run ended: its last line counts even without a newline."""
        if self.rest:
            self.lines.append(self.rest)
            self.total_lines += 1
            self.rest = ""
            self.splitter.reset()
            self.version += 1

    def reset(self) -> None:
        self.lines.clear()
        self.splitter.reset()
        self.rest = ""
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
        return [*self.lines, self.rest] if self.rest else list(self.lines)
