"""The one line printer for agents' output: bytes in, safe `agent | line` text out.

Used by `cocode tail`, `cocode logs` on a terminal, and job watching (`submit
--wait`, `demo`), like honcho's one printer. Complete lines only (a line's
start waits for its end, up to 64 KiB), prefixed like docker compose logs when
asked to, coloured (through cocode.style, once per agent) only when the caller
says so.
"""

from __future__ import annotations

from typing import Callable

from cocode import style

LONG_LINE = 65536  # a line without its end beyond this is shown in pieces, not held


class Printer:
    """`agent | line` prefixes (by default only when there are several agents)."""

    def __init__(self, echo: Callable[[str], None], colour: bool, agents: list[str],
                 prefixed: bool | None = None) -> None:
        self.echo, self.colour = echo, colour
        self.width = max((len(a) for a in agents), default=5)
        self.colours = {a: style.AGENT_STYLES[i % len(style.AGENT_STYLES)] for i, a in enumerate(agents)}
        self.prefixed = len(agents) > 1 if prefixed is None else prefixed
        self.heads = {a: self.prefix(a) + " " for a in agents} if self.prefixed else {}
        self.partial: dict[str, bytes] = {}

    def prefix(self, agent: str) -> str:
        label = f"{agent:<{self.width}} |"
        return style.paint(label, self.colours.get(agent, "white"), self.colour)

    def head(self, agent: str) -> str:
        if not self.prefixed:
            return ""
        head = self.heads.get(agent)
        if head is None:  # an agent not named at the start still gets its prefix
            head = self.heads[agent] = self.prefix(agent) + " "
        return head

    def chunk(self, agent: str, data: bytes) -> None:
        buf = self.partial.get(agent, b"") + data if agent in self.partial else data
        *lines, rest = buf.split(b"\n")
        head = self.heads.get(agent) or self.head(agent)  # the common case without a call
        for line in lines:
            self.echo(head + safe_text(line))
        if len(rest) > LONG_LINE:
            self.echo(head + safe_text(rest))
            rest = b""
        self.partial[agent] = rest

    def line(self, agent: str, text: str) -> None:
        self.echo(self.head(agent) + text)

    def flush(self, agent: str | None = None) -> None:
        """Print the last line even without its newline (the output ended)."""
        for name in [agent] if agent is not None else list(self.partial):
            rest = self.partial.pop(name, b"")
            if rest:
                self.line(name, safe_text(rest))


def safe_text(line: bytes) -> str:
    """Shown safely: invalid UTF-8 replaced, control characters (but tab) made visible.

    Most lines are printable UTF-8 already, which str.isprintable() tells in C; only
    the others take the character-by-character walk (~100 µs for a 1 KB line)."""
    try:
        text = line.decode("utf-8")
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    text = line.decode("utf-8", errors="replace").rstrip("\r")
    if "\r" in text:
        text = text.rsplit("\r", 1)[-1]  # a progress bar: show its last state
    return "".join(c if c >= " " or c == "\t" else f"\\x{ord(c):02x}" for c in text)
