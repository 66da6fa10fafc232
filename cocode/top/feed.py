"""The only I/O of `cocode top`: a thread that reads cocode the way any external
dashboard can, and hands the app batches.

- events: the store's sync (core.follower.Follower, from the snapshot's seq), so a
  restart of cocode resumes at the next seq: nothing lost, nothing twice;
- liveness: `hb.*` heartbeats on the bus; `metric.*`: the monitor's samples;
- output: `log.<job>.<agent>` chunks of the watched job, with the collector's
  backlog first and offsets checked like `cocode tail` does (logs/tail.py): a
  chunk past the expected offset, or cocode coming back up, asks the collector
  for what was missed, and bytes below the expected offset are dropped. The
  bytes are decoded and split into lines here (panes.Splitter), not on the app's
  thread; a stream the app does not show (a hidden tab) is only counted.

Batches go out at most every FLUSH_S, and not before the app painted the last one
(one repaint each, however many lines came; a slow screen gets fewer, bigger ones);
the app's commands (watch this job) come in over an inproc PAIR socket.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import msgspec
import zmq

from cocode import lock, osutil
from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.core.loop import Loop, drain
from cocode.errors import CocodeError
from cocode.logs.files import ATTEMPT_SPAN
from cocode.paths import Paths
from cocode.top.panes import Splitter

FLUSH_S = 0.04  # at most 25 batches a second: redraws are batched, not per line
PAINT_WAIT_S = 1.0  # the next batch waits for the last one's repaint, at most this long
ASK_AGAIN_S = 2.0
SETTLE_S = 0.3  # a watched run finished: check with the collector that we hold its end
SUB_SETTLE_S = 0.05
TRIM_EVERY_S = 2.0  # heap freed after a burst of output handed back to the OS at most this often
BEAT_EVERY_S = 1.0  # liveness handed to the app at most this often  # new subscriptions reach the bus before the backlog is cut


@dataclass
class Chunk:
    job: str
    agent: str
    kind: str  # "reset" (backlog start: drop what the pane holds), "lines", "count", "notice", "data"
    data: bytes = b""  # "data": raw bytes, split by the app (scripted feeds)
    text: str = ""  # "notice": its words; "lines": the unterminated line now
    lines: list = field(default_factory=list)  # "lines": the newest complete lines, made readable
    n: int = 0  # "lines", "count": how many complete lines came (a hidden stream is only counted)
    at: float = 0.0  # wall-clock time the chunk reached this process (the bench's baseline)
    ts: float = 0.0  # when the shipper read it from the agent (wall clock)


@dataclass
class Batch:
    state: State | None = None  # a whole state (the first batch)
    events: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    beat: float = 0.0  # monotonic time of the last heartbeat in this batch
    started: bool | None = None  # a supervisor holds the lock (checked while no beats)
    error: str | None = None
    dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.state is not None or self.events or self.metrics or self.chunks
                    or self.beat or self.started is not None or self.error is not None or self.dropped)


@dataclass
class Stream:
    agent: str
    keep: int = 2000
    shown: bool = True  # the app shows it: split into lines, else only counted
    expected: int | None = None
    asked_at: float = 0.0
    lines: int = 0
    waiting: list = field(default_factory=list)
    check_at: float = 0.0  # ask the collector for anything past `expected` at this time
    splitter: Splitter = field(init=False)

    def __post_init__(self) -> None:
        self.splitter = Splitter(self.keep)


def initial_state(paths: Paths) -> tuple[State, str]:
    """The snapshot plus the events stored after it, read from the file, so the view
    shows the jobs at once, even with cocode down; the follower resumes from its seq."""
    if not paths.db.exists():
        return State(), ""
    try:
        conn = eventlog.open_for_reading(paths.db)
        try:
            state = eventlog.start_state(conn)
            return st.replay(eventlog.iter_events(conn, after=state.seq), state), ""
        finally:
            conn.close()
    except (CocodeError, Exception) as err:  # an older or damaged events.db: say so, keep going
        msg = err.message if isinstance(err, CocodeError) else f"{type(err).__name__}: {err}"
        return State(), f"cannot read {paths.db} ({msg}); showing live events only"


class Feed:
    def __init__(self, paths: Paths, on_batch: Callable[[Batch], None], keep_lines: int = 2000) -> None:
        self.paths, self.on_batch, self.keep_lines = paths, on_batch, keep_lines
        self.ctx = zmq.Context.instance()
        self.cmd_addr = f"inproc://cocode-top-{id(self)}"
        self.cmd_in = self.ctx.socket(zmq.PAIR)
        self.cmd_in.bind(self.cmd_addr)
        self.cmd_out = self.ctx.socket(zmq.PAIR)  # the app's end; used from its thread only
        self.cmd_out.connect(self.cmd_addr)
        self.thread = threading.Thread(target=self._run, name="cocode-top-feed", daemon=True)
        self.running = False
        self.painted = threading.Event()  # the app drew the last batch: a slow screen gets bigger batches
        self.painted.set()
        self.batch = Batch()
        self.job: str | None = None
        self.streams: dict[str, Stream] = {}
        self.was_up = False
        self.last_beat = 0.0
        self.batch_beat = 0.0
        self.bytes_in = 0  # output bytes since the last trim

    # -- the app's side ------------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def watch(self, job: str | None, agents: list[str], shown: list[str] | None = None) -> None:
        """Follow this job's agents from now on (their backlog first); only those in
        `shown` (default all) are split into lines, the others counted."""
        self.cmd_out.send(msgspec.msgpack.encode(["watch", job or "", agents, agents if shown is None else shown]))

    def show(self, job: str, agents: list[str]) -> None:
        """Now these agents are shown, the others hidden: one newly shown gets its
        backlog again (a reset first), then live."""
        self.cmd_out.send(msgspec.msgpack.encode(["show", job, agents, []]))

    def on_painted(self) -> None:
        """The app's thread: the last batch is on the screen."""
        self.painted.set()

    def recheck(self) -> None:
        self.cmd_out.send(msgspec.msgpack.encode(["recheck", "", [], []]))

    def stop(self) -> None:
        if self.running:
            self.running = False
            try:
                self.cmd_out.send(msgspec.msgpack.encode(["stop", "", [], []]), zmq.NOBLOCK)
            except zmq.ZMQError:
                pass
            self.thread.join(timeout=3)
        self.cmd_out.close(0)

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as err:  # the view stays up and says why it went stale
            if self.running:
                self.on_batch(Batch(error=f"the live feed stopped: {type(err).__name__}: {err}; restart `cocode top`"))

    def _serve(self) -> None:
        state, error = initial_state(self.paths)
        self.batch.state, self.batch.error = state, error or None
        self.batch.started = bool(lock.running_pid(self.paths))
        self.loop = Loop()
        self.follower = Follower(self.ctx, self.paths.endpoint("bus"), self.paths.endpoint("store"),
                                 self.on_event, after=state.seq)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.connect(self.paths.endpoint("bus"))
        self.sub.setsockopt(zmq.SUBSCRIBE, wire.HEARTBEAT_TOPIC)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"metric.")
        self.req = self.ctx.socket(zmq.DEALER)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.RCVHWM, 0)
        self.req.connect(self.paths.endpoint("logs"))
        self.metric_decoder = msgspec.msgpack.Decoder(dict)
        self.follower.attach(self.loop)
        self.loop.add(self.sub, self.on_sub)
        self.loop.add(self.req, self.on_reply)
        self.loop.add(self.cmd_in, self.on_cmd)
        self.loop.every(0.2, self.tick)
        self.loop.every(1.0, self.check_started)
        self.loop.every(TRIM_EVERY_S, self.trim)
        last_flush = 0.0
        try:
            while self.running:
                wait = 0.25 if not self.batch else max(0.002, FLUSH_S - (time.monotonic() - last_flush))
                self.loop.run_once(wait)
                since = time.monotonic() - last_flush
                if self.batch and since >= FLUSH_S and (self.painted.is_set() or since > PAINT_WAIT_S):
                    self.painted.clear()
                    self.follower_dropped_into_batch()
                    batch, self.batch = self.batch, Batch()
                    last_flush = time.monotonic()
                    if self.running:
                        self.on_batch(batch)
        finally:
            self.follower.close()
            for s in (self.sub, self.req, self.cmd_in):
                s.close(0)
            self.loop.close()

    def on_event(self, e: ev.Event) -> None:
        self.batch.events.append(e)
        if isinstance(e, (ev.RunFinished, ev.RunStarted)) and e.job == self.job and e.agent in self.streams:
            self.streams[e.agent].check_at = time.monotonic() + SETTLE_S

    def follower_dropped_into_batch(self) -> None:
        if self.follower.dropped:
            self.batch.dropped += self.follower.dropped
            self.follower.dropped = 0

    def on_cmd(self) -> None:
        for raw in drain(self.cmd_in):
            cmd, job, agents, shown = msgspec.msgpack.decode(raw)
            if cmd == "stop":
                self.running = False
            elif cmd == "watch":
                self.set_watch(job or None, agents, shown)
            elif cmd == "recheck":
                self.check_all()
            elif cmd == "show" and job == self.job:
                self.set_shown(agents)

    def set_shown(self, agents: list[str]) -> None:
        for a, s in self.streams.items():
            if a in agents and not s.shown:
                s.shown, s.expected, s.waiting = True, None, []  # as at watch: the backlog first
                s.splitter.reset()
                self.ask(s, self.keep_lines)
            elif a not in agents:
                s.shown = False
                s.splitter.reset()

    def set_watch(self, job: str | None, agents: list[str], shown: list[str]) -> None:
        for a in self.streams:
            self.sub.setsockopt(zmq.UNSUBSCRIBE, wire.log_topic(self.job or "", a))
        self.job, self.streams = job, {}
        if job is None:
            return
        for a in agents:
            self.streams[a] = Stream(a, self.keep_lines, a in shown)
            self.sub.setsockopt(zmq.SUBSCRIBE, wire.log_topic(job, a))
        self.loop.call_later(SUB_SETTLE_S, self.ask_backlogs)

    def ask_backlogs(self) -> None:
        for s in self.streams.values():
            self.ask(s, self.keep_lines)

    def ask(self, s: Stream, lines: int) -> None:
        s.asked_at, s.lines = time.monotonic(), lines
        try:
            self.req.send(wire.encoder.encode(wire.BacklogRequest(job=self.job or "", agent=s.agent, lines=lines)),
                          zmq.NOBLOCK)
        except zmq.Again:
            pass

    def check_all(self) -> None:
        """cocode came back (or was asked): anything written past what we hold?"""
        for s in self.streams.values():
            if s.expected is not None and not s.asked_at:
                self.ask(s, 0)

    # -- input ----------------------------------------------------------------------------------

    def on_sub(self) -> None:
        for frames in drain(self.sub, multipart=True):
            now = time.time()  # per frame: a long drain reads frames sent after it began
            if len(frames) != 2:
                self.batch.dropped += 1
                continue
            topic, payload = frames
            if topic.startswith(wire.HEARTBEAT_TOPIC):
                self.beat(time.monotonic())
            elif topic.startswith(b"metric."):
                try:
                    self.batch.metrics.append((topic, self.metric_decoder.decode(payload)))
                except msgspec.MsgspecError:
                    self.batch.dropped += 1
            elif topic.startswith(b"log."):
                self.on_log(topic, payload, now)

    def beat(self, now: float) -> None:
        if not self.was_up:
            self.was_up = True
            self.check_all()  # back up: fetch what was written while we could not hear
        self.last_beat = now
        if now - self.batch_beat >= BEAT_EVERY_S:  # six services beat each second: one repaint will do
            self.batch.beat = self.batch_beat = now

    def on_log(self, topic: bytes, payload: bytes, now: float) -> None:
        try:
            c = wire.log_chunk_decoder.decode(payload)
        except msgspec.MsgspecError:
            self.batch.dropped += 1
            return
        s = self.streams.get(c.agent)
        if s is None or c.job != self.job or topic != wire.log_topic(c.job, c.agent):
            return  # a stale subscription's last frames, or log.j.ab matching log.j.a
        self.on_chunk(s, c, now)

    def on_chunk(self, s: Stream, c: wire.LogChunk, now: float) -> None:
        if s.expected is None or s.asked_at:
            s.waiting.append(c)
            return
        end = c.offset + len(c.data)
        if end <= s.expected:
            return  # held already (from the backlog, or a resend)
        if c.offset > s.expected:
            s.waiting.append(c)  # something between was lost: ask for it
            self.ask(s, 0)
            return
        self.emit(s, c.data[s.expected - c.offset:], now, c.ts)
        s.expected = end

    def emit(self, s: Stream, data: bytes, now: float, ts: float = 0.0) -> None:
        if not data:
            return
        self.bytes_in += len(data)
        if not s.shown:
            self.batch.chunks.append(Chunk(self.job or "", s.agent, "count", n=data.count(b"\n"), at=now, ts=ts))
            return
        lines, n = s.splitter.split(data)
        self.batch.chunks.append(Chunk(self.job or "", s.agent, "lines", text=s.splitter.rest(), lines=lines, n=n,
                                       at=now, ts=ts))

    def on_reply(self) -> None:
        now = time.time()
        for raw in drain(self.req):
            try:
                msg = wire.logs_decoder.decode(raw)
            except msgspec.MsgspecError:
                self.batch.dropped += 1
                continue
            if isinstance(msg, wire.Backlog) and msg.job == self.job and msg.agent in self.streams:
                self.on_backlog(self.streams[msg.agent], msg, now)

    def on_backlog(self, s: Stream, b: wire.Backlog, now: float) -> None:
        if not s.asked_at:
            return  # the answer to a request sent twice
        s.asked_at = 0.0
        if s.expected is None:
            s.splitter.reset()
            self.batch.chunks.append(Chunk(self.job or "", s.agent, "reset"))
            self.emit(s, b.data, now)
            s.expected = b.end
        elif b.end > s.expected:
            if b.start > s.expected:
                s.splitter.reset()  # the bytes between are gone: a line cut there is not joined
                if b.start % ATTEMPT_SPAN == 0:
                    self.batch.chunks.append(Chunk(self.job or "", s.agent, "notice",
                                                   text=f"attempt {b.start // ATTEMPT_SPAN + 1}"))
                else:
                    self.batch.chunks.append(Chunk(self.job or "", s.agent, "notice",
                                                   text=f"{b.start - s.expected:,} bytes no longer held; skipped"))
            frm = max(s.expected, b.start)
            self.emit(s, b.data[frm - b.start:], now)
            s.expected = b.end
        queued, s.waiting = s.waiting, []
        for c in sorted(queued, key=lambda c: c.offset):
            self.on_chunk(s, c, now)

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        if self.was_up and now - self.last_beat > 3.5:
            self.was_up = False
        for s in self.streams.values():
            if s.asked_at and now - s.asked_at > ASK_AGAIN_S:
                self.ask(s, s.lines)
            elif s.check_at and now >= s.check_at and not s.asked_at and s.expected is not None:
                s.check_at = 0.0
                self.ask(s, 0)

    def trim(self) -> None:
        if self.bytes_in:
            self.bytes_in = 0
            osutil.release_memory()

    def check_started(self) -> None:
        if not self.was_up:
            self.batch.started = bool(lock.running_pid(self.paths))
