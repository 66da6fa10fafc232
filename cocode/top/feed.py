"""The only I/O of `cocode top`: a thread that reads cocode the way any external
dashboard can, and hands the app batches.

- events: the store's sync (core.follower.Follower, from the snapshot's seq), so a
  restart of cocode resumes at the next seq: nothing lost, nothing twice;
- liveness: `hb.*` heartbeats on the bus; `metric.*`: the monitor's samples;
- output: `log.<job>.<agent>` chunks of the watched job's shown agents (a hidden
  tab's lines are only counted, by asking the collector), checked against offsets
  by cocode/top/streams.py (what to ask the collector for, what to hand the app);
  this module owns the sockets, the timers and the batches. The bytes are decoded
  and split into lines here, not on the app's thread;
- diff sizes: measured in git by cocode/top/runstats.py's thread as heads move,
  handed back here and out with the next batch.

Batches go out at most every FLUSH_S, and not before the app painted the last one
(one repaint each, however many lines came; a slow screen gets fewer, bigger ones);
the app's commands (watch this job) come in over an inproc PAIR socket.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import msgspec
import zmq

from cocode import envnames, lock, osutil
from cocode.core import eventlog
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.core.loop import Loop, drain
from cocode.core.sockets import backlog_asker, subscriber
from cocode.core.unreadable import Unreadable
from cocode.errors import CocodeError
from cocode.paths import Paths
from cocode.top.runstats import RunStats
from cocode.top.streams import SETTLE_S, Ask, Chunk, Stream

__all__ = ["Batch", "Chunk", "Feed", "initial_state"]

FPS = 30  # output frames a second at most: against 25, visible p99 44-46 -> 35-37 ms for ~1% of a core (docs/benchmarks.md)


def _flush_s() -> float:
    try:
        fps = float(os.environ.get(envnames.TOP_FPS) or FPS)
    except ValueError:  # a bad COCODE_TOP_FPS: the default, not a view that will not start
        fps = FPS
    return 1.0 / min(max(fps, 1.0), 100.0)


FLUSH_S = _flush_s()  # redraws are batched, not per line
PAINT_WAIT_S = 1.0  # the next batch waits for the last one's repaint, at most this long
SUB_SETTLE_S = 0.05  # new subscriptions reach the bus before the backlog is cut
TRIM_EVERY_S = 2.0  # heap freed after a burst of output handed back to the OS at most this often
BEAT_EVERY_S = 1.0  # liveness handed to the app at most this often


@dataclass
class Batch:
    state: State | None = None  # a whole state (the first batch)
    events: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    stats: list = field(default_factory=list)  # (job, agent, head, diffstat or None), runstats.py's
    beat: float = 0.0  # monotonic time of the last heartbeat in this batch
    started: bool | None = None  # a supervisor holds the lock (checked while no beats)
    error: str | None = None
    dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.state is not None or self.events or self.metrics or self.chunks or self.stats
                    or self.beat or self.started is not None or self.error is not None or self.dropped)


def initial_state(paths: Paths) -> tuple[State, str]:
    """The snapshot plus the events stored after it, read from the file, so the view
    shows the jobs at once, even with cocode down; the follower resumes from its seq.
    The text, if any, is why the view is partial (the header's warning): the file
    cannot be read, or events in it could not (another cocode version wrote them)."""
    if not paths.db.exists():
        return State(), ""
    try:
        conn = eventlog.open_for_reading(paths.db)
        try:
            unreadable = Unreadable()
            state = eventlog.start_state(conn, unreadable)
            state = st.replay(eventlog.iter_events(conn, after=state.seq, unreadable=unreadable), state)
            return state, unreadable.message()
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
        self.output_in = 0  # output chunks since the last trim
        self.counts: dict[str, Chunk] = {}  # this batch's count chunk of each hidden stream

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
        # Log topics are added and dropped as the watched job changes (set_watch).
        self.sub = subscriber(self.ctx, self.paths.endpoint("bus"), [wire.HEARTBEAT_TOPIC, b"metric."])
        self.req = backlog_asker(self.ctx, self.paths.endpoint("logs"))
        self.metric_decoder = msgspec.msgpack.Decoder(dict)
        self.follower.attach(self.loop)
        self.loop.add(self.sub, self.on_sub)
        self.loop.add(self.req, self.on_reply)
        self.loop.add(self.cmd_in, self.on_cmd)
        self.loop.every(0.2, self.tick)
        self.loop.every(1.0, self.check_started)
        self.loop.every(TRIM_EVERY_S, self.trim)
        call = self.loop.threadsafe_caller()
        self.runstats = RunStats(self.paths.root, lambda got: call(lambda: self.batch.stats.extend(got)))
        self.runstats.start(state)
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
                    self.counts = {}
                    last_flush = time.monotonic()
                    if self.running:
                        self.on_batch(batch)
        finally:
            self.runstats.stop()
            self.follower.close()
            for s in (self.sub, self.req, self.cmd_in):
                s.close(0)
            self.loop.close()

    def on_event(self, e: ev.Event) -> None:
        self.batch.events.append(e)
        self.runstats.on_event(e)
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
        now = time.monotonic()
        for a, s in self.streams.items():
            if a in agents and not s.shown:
                s.shown = True
                # Chunks sent before the subscription reaches the bus come with the
                # backlog, or as a gap the next chunk's offset shows (asked for then).
                self.sub.setsockopt(zmq.SUBSCRIBE, s.topic)
                self.send(s, s.begin(now))  # as at watch: the backlog first
            elif a not in agents and s.shown:
                s.hide()
                self.sub.setsockopt(zmq.UNSUBSCRIBE, s.topic)

    def set_watch(self, job: str | None, agents: list[str], shown: list[str]) -> None:
        for s in self.streams.values():
            if s.shown:
                self.sub.setsockopt(zmq.UNSUBSCRIBE, s.topic)
        self.job, self.streams = job, {}
        self.runstats.watch(job)
        if job is None:
            return
        for a in agents:
            s = self.streams[a] = Stream(job, a, self.keep_lines, a in shown)
            if s.shown:
                self.sub.setsockopt(zmq.SUBSCRIBE, s.topic)
        self.loop.call_later(SUB_SETTLE_S, self.ask_backlogs)

    def ask_backlogs(self) -> None:
        now = time.monotonic()
        for s in self.streams.values():
            self.send(s, s.begin(now))

    def send(self, s: Stream, ask: Ask | None) -> None:
        if ask is None:
            return
        req = wire.BacklogRequest(job=self.job or "", agent=s.agent, lines=ask.lines, after=ask.after,
                                  count=ask.count, id=ask.id)
        try:
            self.req.send(wire.encoder.encode(req), zmq.NOBLOCK)
        except zmq.Again:
            pass  # sent again by the timer (Stream.due)

    def check_all(self) -> None:
        """cocode came back (or was asked): anything written past what we hold?"""
        now = time.monotonic()
        for s in self.streams.values():
            self.send(s, s.lacks(now))

    def handle(self, s: Stream, out: list) -> None:
        """What a stream made of an arrival: chunks for the app, a request to send."""
        for x in out:
            if isinstance(x, Ask):
                self.send(s, x)
            elif x.kind == "count":  # a hidden tab's: one per stream and batch, however many came
                self.output_in += 1
                held = self.counts.get(s.agent)
                if held is not None and held.job == x.job:
                    held.n += x.n
                else:
                    self.counts[s.agent] = x
                    self.batch.chunks.append(x)
            else:
                self.output_in += x.kind == "lines"
                self.batch.chunks.append(x)

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
        if s is None or c.job != self.job or topic != s.topic:
            return  # a stale subscription's last frames, or log.j.ab matching log.j.a
        out = s.chunk(c, now, time.monotonic())
        if out:
            self.handle(s, out)

    def on_reply(self) -> None:
        now = time.time()
        for raw in drain(self.req):
            try:
                msg = wire.logs_decoder.decode(raw)
            except msgspec.MsgspecError:
                self.batch.dropped += 1
                continue
            if isinstance(msg, wire.Backlog) and msg.job == self.job and msg.agent in self.streams:
                s = self.streams[msg.agent]
                self.handle(s, s.backlog(msg, now, time.monotonic()))

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        if self.was_up and now - self.last_beat > 3.5:
            self.was_up = False
        for s in self.streams.values():
            self.send(s, s.due(now))

    def trim(self) -> None:
        if self.output_in:
            self.output_in = 0
            osutil.release_memory()

    def check_started(self) -> None:
        if not self.was_up:
            self.batch.started = bool(lock.running_pid(self.paths))
