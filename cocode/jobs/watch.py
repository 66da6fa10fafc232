"""Watching a job live: its events and its agents' output until every run is final.

Used by `submit --wait` and `demo`. Events come through the Follower (nothing
missed); output comes from the bus's `log.<job>.` topic for display.
"""

from __future__ import annotations

import time
from typing import Callable

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.core.loop import Loop, drain
from cocode.paths import Paths

COLOURS = (36, 33, 35, 32, 34, 31)


class LinePrinter:
    """`agent | line` prefixes, like docker compose logs; colour only on a terminal."""

    def __init__(self, echo: Callable[[str], None], colour: bool, agents: list[str]) -> None:
        self.echo, self.colour = echo, colour
        self.width = max((len(a) for a in agents), default=5)
        self.partial: dict[str, bytes] = {}
        self.colours = {a: COLOURS[i % len(COLOURS)] for i, a in enumerate(agents)}

    def prefix(self, agent: str) -> str:
        label = f"{agent:<{self.width}} |"
        return f"\x1b[{self.colours.get(agent, 37)}m{label}\x1b[0m" if self.colour else label

    def chunk(self, agent: str, data: bytes) -> None:
        buf = self.partial.get(agent, b"") + data
        *lines, rest = buf.split(b"\n")
        self.partial[agent] = rest[-65536:]
        for line in lines:
            self.echo(f"{self.prefix(agent)} {safe_text(line)}")

    def flush(self) -> None:
        for agent, rest in self.partial.items():
            if rest:
                self.echo(f"{self.prefix(agent)} {safe_text(rest)}")
        self.partial.clear()


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


def watch_job(
    paths: Paths, job_id: str, state: st.State, on_event: Callable[[ev.Event], None],
    printer: LinePrinter | None, timeout: float | None = None,
) -> st.State:
    """Fold events into `state` until every run of `job_id` is final."""
    ctx = zmq.Context.instance()
    loop = Loop()
    sub = None
    if printer is not None:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(paths.endpoint("bus"))
        sub.setsockopt(zmq.SUBSCRIBE, f"log.{job_id}.".encode())

        def on_log() -> None:
            for frames in drain(sub, multipart=True):
                try:
                    chunk = wire.log_chunk_decoder.decode(frames[-1])
                except msgspec.MsgspecError:
                    continue
                printer.chunk(chunk.agent, chunk.data)

        loop.add(sub, on_log)

    def apply(event: ev.Event) -> None:
        st.apply(state, event)
        if event.job == job_id:
            on_event(event)

    follower = Follower(ctx, paths.endpoint("bus"), paths.endpoint("store"), apply, after=state.seq)
    follower.attach(loop)

    def done() -> bool:
        job = state.jobs.get(job_id)
        return job is not None and job.state == "done" and follower.caught_up

    try:
        loop.run(until=done, timeout=timeout)
        if printer is not None:
            end = time.monotonic() + 0.2  # output published just before the end
            while time.monotonic() < end:
                loop.run_once(0.05)
            printer.flush()
    finally:
        follower.close()
        if sub is not None:
            sub.close(0)
        loop.close()
    return state
