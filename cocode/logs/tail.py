"""Following runs' output live: the reading and resuming half of `cocode tail`.

The clone pattern applied to bytes. Subscribe to `log.<job>.<agent>` first, then
ask the collector for the backlog (the last N lines, and `end`, the offset to
follow live from); live chunks that arrive meanwhile wait, and those below `end`
are dropped, so the switch from backlog to live has no gap and no duplicate. The
collector holds only the current attempt in memory: when its backlog starts at an
attempt's first byte and has fewer than N lines, the rest comes from the earlier
attempts' files (.cocode/logs, logs/files.py), so a requeued or followed-up run
shows every attempt, in order. Live, a chunk past the expected offset means chunks
were lost (the bus drops for a reader behind its high-water mark, or the collector
restarted) or a new attempt began: the collector is asked again, for everything it
holds, and the missing part is printed from that. With -f it also follows the
runs' events and ends once every run it shows is final and its output is all
printed, with the run's final state.

What is printed, and how, is the `out` object's (logs/show.py's Output): this
module hands it (offset, bytes) in order and never formats anything itself.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.core.loop import Loop, drain
from cocode.core.sockets import backlog_asker, subscriber
from cocode.errors import CocodeError
from cocode.logs.files import ATTEMPT_SPAN, RunFiles, attempt_base, attempt_of, count_lines
from cocode.paths import Paths
from cocode.runkey import RunKey

ASK_AGAIN_S = 2.0  # a backlog request not answered by then is sent again
SETTLE_S = 0.3  # after run_finished: quiet this long, then a last check with the collector
GIVE_UP_S = 10.0  # the collector never answered: stop waiting for a finished run's output


@dataclass
class Stream:
    agent: str
    expected: int | None = None  # the next offset to print; None until the backlog came
    asked_at: float = 0.0  # a backlog request is outstanding since then (0: none)
    waiting: list = field(default_factory=list)  # live chunks held while asking
    final: ev.RunFinished | ev.CheckFinished | None = None
    final_seen_at: float = 0.0
    last_chunk_at: float = 0.0
    checked: bool = False  # after the run ended: the collector confirmed we have it all
    done: bool = False


class Tail:
    def __init__(self, paths: Paths, job: str, agents: list[str], lines: int, follow: bool,
                 out, state) -> None:
        self.paths, self.job, self.lines, self.follow, self.out = paths, job, lines, follow, out
        self.ctx = zmq.Context.instance()
        self.loop = Loop()
        self.streams = {a: Stream(a) for a in agents}
        self.topics = {wire.log_topic(job, a): a for a in agents}
        self.sub = subscriber(self.ctx, paths.endpoint("bus"), self.topics)
        self.req = backlog_asker(self.ctx, paths.endpoint("logs"))
        self.loop.add(self.sub, self.on_live)
        self.loop.add(self.req, self.on_reply)
        self.loop.every(0.1, self.tick)
        self.follower = None
        if follow:
            job_view = state.jobs[job]
            for a in agents:
                base, check = RunKey.split_check(a)
                run = job_view.runs[base]
                c = run.checks.get(check)
                if check and c is not None and c.status != "running":
                    self.streams[a].final = ev.CheckFinished(
                        job=job, agent=a, name=check, commit=c.commit, status=c.status,
                        exit_code=c.exit_code, duration_s=c.duration_s, summary=c.summary, reason=c.reason)
                elif not check and run.final:
                    self.streams[a].final = ev.RunFinished(
                        job=job, agent=a, state=run.state, reason=run.reason, exit_code=run.exit_code,
                        commits=run.commits, ready_commit=run.ready_commit, detail=run.detail)
            self.follower = Follower(self.ctx, paths.endpoint("bus"), paths.endpoint("store"),
                                     self.on_event, after=state.seq,
                                     types={"run_finished", "run_requeued", "run_interrupted",
                                            "follow_up_requested", "check_started", "check_finished"})
            self.interrupted_by: dict[str, str] = {}
            self.follower.attach(self.loop)

    # -- the collector ------------------------------------------------------------------------

    def ask(self, s: Stream, lines: int) -> None:
        s.asked_at = time.monotonic()
        req = wire.BacklogRequest(job=self.job, agent=s.agent, lines=lines)
        try:
            self.req.send(wire.encoder.encode(req), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def start(self) -> None:
        # The subscriptions must reach the bus before the backlog is cut, or chunks
        # published in between would be missed: wait for them to propagate.
        time.sleep(0.05)
        for s in self.streams.values():
            self.ask(s, max(self.lines, 1))

    def on_reply(self) -> None:
        for raw in drain(self.req):
            try:
                msg = wire.logs_decoder.decode(raw)
            except msgspec.MsgspecError:
                continue
            if isinstance(msg, wire.Backlog) and msg.agent in self.streams:
                self.on_backlog(self.streams[msg.agent], msg)

    def on_backlog(self, s: Stream, b: wire.Backlog) -> None:
        if not s.asked_at:
            return  # an answer to a request already answered (it was sent twice)
        s.asked_at = 0.0
        if s.expected is None:  # the first answer: the last N lines
            pieces = [*self.earlier_attempts(s.agent, b), (b.start, b.data)] if self.lines > 0 else []
            # Where showing starts: a later attempt than this one gets its separator.
            self.out.begin(s.agent, pieces[0][0] if pieces and pieces[0][1] else b.end)
            for offset, data in pieces:
                self.out.chunk(s.agent, offset, data)
            s.expected = b.end
        elif b.end > s.expected:  # a gap: print what was missed, from the collector's copy
            frm = max(s.expected, b.start)
            self.out.begin(s.agent, frm)
            lost_from = max(s.expected, attempt_base(attempt_of(b.start)))  # a new attempt loses nothing before it
            if b.start > lost_from:
                self.out.notice(s.agent, f"{b.start - lost_from} bytes of output are no longer held; skipped")
            self.out.chunk(s.agent, frm, b.data[frm - b.start :])
            s.expected = b.end
        elif s.final is not None:
            s.checked = True  # after the end: nothing more than what we printed
        queued, s.waiting = s.waiting, []
        for chunk in sorted(queued, key=lambda c: c.offset):
            self.on_chunk(s, chunk)

    def earlier_attempts(self, agent: str, b: wire.Backlog) -> list[tuple[int, bytes]]:
        """The collector holds one attempt: when its backlog is the whole of a later
        attempt and has fewer lines than asked for, the rest from the files."""
        if not b.start or b.start % ATTEMPT_SPAN:
            return []
        short = self.lines - count_lines(b.data)
        if short <= 0:
            return []
        return RunFiles(self.paths.logs, self.job, agent).last_lines(short, before=b.start)

    # -- live ----------------------------------------------------------------------------------

    def on_live(self) -> None:
        for frames in drain(self.sub, multipart=True):
            if len(frames) != 2:
                continue
            topic, payload = frames
            agent = self.topics.get(topic)  # exact: log.j.a also prefixes log.j.ab
            if agent is None:
                continue
            try:
                chunk = wire.log_chunk_decoder.decode(payload)
            except msgspec.MsgspecError:
                continue
            s = self.streams[agent]
            s.last_chunk_at = time.monotonic()
            self.on_chunk(s, chunk)

    def on_chunk(self, s: Stream, c: wire.LogChunk) -> None:
        if s.expected is None or s.asked_at:
            s.waiting.append(c)
            return
        end = c.offset + len(c.data)
        if end <= s.expected:
            return  # already printed (from the backlog, or a resend after a restart)
        if c.offset > s.expected:
            s.waiting.append(c)  # something between was lost, or a new attempt began: ask
            self.ask(s, 0)
            return
        self.out.chunk(s.agent, s.expected, c.data[s.expected - c.offset :])
        s.expected = end

    # -- the end of the runs ---------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, (ev.CheckStarted, ev.CheckFinished)):
            key = RunKey(event.job, event.agent).check_log(event.name).agent
            if event.job != self.job or key not in self.streams:
                return
            s = self.streams[key]
            if isinstance(event, ev.CheckStarted):  # a rerun: follow it to its end too
                s.final, s.checked, s.done = None, False, False
            else:
                s.final = msgspec.structs.replace(event, agent=key)
                s.final_seen_at, s.checked = time.monotonic(), False
            return
        if event.job != self.job or event.agent not in self.streams:
            return
        s = self.streams[event.agent]
        if isinstance(event, ev.RunFinished):
            s.final, s.final_seen_at, s.checked = event, time.monotonic(), False
        elif isinstance(event, ev.RunInterrupted):
            self.interrupted_by[event.agent] = event.reason
        elif isinstance(event, ev.RunRequeued):
            s.final, s.checked, s.done = None, False, False
            self.out.set_cause(event.agent, event.attempt, st.requeue_cause(self.interrupted_by.pop(event.agent, None)))
        elif isinstance(event, ev.FollowUpRequested):
            self.out.set_cause(event.agent, event.attempt, st.follow_up_cause(event.message))

    def tick(self) -> None:
        now = time.monotonic()
        for s in self.streams.values():
            if s.asked_at and now - s.asked_at > ASK_AGAIN_S:
                self.ask(s, max(self.lines, 1) if s.expected is None else 0)
            if not self.follow or s.final is None or s.done or s.expected is None or s.asked_at:
                continue
            quiet = now - max(s.final_seen_at, s.last_chunk_at)
            if not s.checked and quiet >= SETTLE_S:
                self.ask(s, 1)  # the collector's `end`: anything after ours comes back as a gap
            elif s.checked or now - s.final_seen_at > GIVE_UP_S:
                s.done = True
                self.out.final(s.final)

    def finished(self) -> bool:
        if not self.follow:
            return all(s.expected is not None and not s.asked_at for s in self.streams.values())
        caught_up = self.follower is None or self.follower.synced_once
        return caught_up and all(s.done for s in self.streams.values())

    def run(self, timeout: float = 15.0) -> int:
        gc.freeze()  # start-up's objects are permanent: no full-collection pauses over them
        self.loop.stop_on_signals()  # Ctrl-C ends the loop, not the process: a clean exit
        self.loop.running = True
        self.start()
        deadline = None if self.follow else time.monotonic() + timeout
        try:
            while self.loop.running:
                self.loop.run_once(0.05)
                self.out.emit()
                if self.finished():
                    break
                if deadline and time.monotonic() > deadline:
                    raise CocodeError("the logs collector did not answer; `cocode ps` shows the services")
        finally:
            self.out.flush_all()
            self.out.emit()
            self.close()
        return 0

    def close(self) -> None:
        if self.follower is not None:
            self.follower.close()
        self.sub.close(0)
        self.req.close(0)
        self.loop.close()
