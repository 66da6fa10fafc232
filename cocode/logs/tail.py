"""`cocode tail` and `cocode logs`: a run's output for a person (or a program).

tail: the clone pattern applied to bytes. Subscribe to `log.<job>.<agent>` first,
then ask the collector for the backlog (the last N lines, and `end`, the offset
to follow live from); live chunks that arrive meanwhile wait, and those below
`end` are dropped, so the switch from backlog to live has no gap and no
duplicate. Live, a chunk past the expected offset means chunks were lost (the
bus drops for a reader behind its high-water mark, or the collector restarted):
the collector is asked again, for everything it holds, and the missing part is
printed from that. With -f it also follows the runs' events and ends once every
run it shows is final and its output is all printed, with the run's final state.

logs: every retained byte of one run (rotated lz4 files, then the live file),
read from .cocode/logs directly, so it works with cocode down too.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from dataclasses import dataclass, field

import msgspec
import zmq

from cocode.core import events as ev
from cocode import render
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.errors import CocodeError
from cocode.logs.files import ATTEMPT_SPAN, RunFiles
from cocode.logs.printer import LONG_LINE, Printer
from cocode.core.loop import Loop, drain
from cocode.paths import Paths
from cocode.runkey import RunKey

ASK_AGAIN_S = 2.0  # a backlog request not answered by then is sent again
SETTLE_S = 0.3  # after run_finished: quiet this long, then a last check with the collector
GIVE_UP_S = 10.0  # the collector never answered: stop waiting for a finished run's output


# -- output ------------------------------------------------------------------------------


class Output:
    """Text (prefixed when several agents, coloured on a terminal) or JSON lines."""

    def __init__(self, job: str, agents: list[str], as_json: bool, colour: bool) -> None:
        self.job, self.as_json = job, as_json
        self.lines: list[str] = []
        echo = self.lines.append
        self.text = Printer(echo, colour, agents)
        self.partial: dict[str, tuple[int, bytes]] = {}

    def chunk(self, agent: str, offset: int, data: bytes) -> None:
        if not self.as_json:
            self.text.chunk(agent, data)
            return
        start, buf = self.partial.get(agent, (offset, b""))
        buf += data
        pos = 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            self._json_line(agent, start + pos, buf[pos:nl])
            pos = nl + 1
        rest = buf[pos:]
        if len(rest) > LONG_LINE:  # show a very long line in pieces rather than hold it all
            self._json_line(agent, start + pos, rest)
            start, pos, rest = start + len(buf), 0, b""
        self.partial[agent] = (start + pos, rest)

    def _json_line(self, agent: str, offset: int, line: bytes) -> None:
        self.lines.append(json.dumps({"job": self.job, "agent": agent, "offset": offset,
                                      "line": line.decode("utf-8", "replace")}))

    def notice(self, agent: str, text: str) -> None:
        if self.as_json:
            self.lines.append(json.dumps({"job": self.job, "agent": agent, "notice": text}))
        else:
            self.text.line(agent, f"-- {text}")

    def final(self, event: ev.RunFinished | ev.CheckFinished) -> None:
        self.flush_agent(event.agent)
        if self.as_json and isinstance(event, ev.CheckFinished):
            self.lines.append(json.dumps({
                "job": self.job, "agent": event.agent, "event": "check_finished", "status": event.status,
                "summary": event.summary, "exit_code": event.exit_code, "reason": event.reason}))
        elif self.as_json:
            self.lines.append(json.dumps({
                "job": self.job, "agent": event.agent, "event": "run_finished", "state": event.state,
                "reason": event.reason, "exit_code": event.exit_code, "detail": event.detail}))
        else:
            self.notice(event.agent, render.run_event_summary(event) or event.state)

    def flush_agent(self, agent: str) -> None:
        """Print the agent's last line even without its newline (its output ended)."""
        if self.as_json:
            start, rest = self.partial.pop(agent, (0, b""))
            if rest:
                self._json_line(agent, start, rest)
            return
        self.text.flush(agent)

    def flush_all(self) -> None:
        for agent in list(self.partial) + list(self.text.partial):
            self.flush_agent(agent)

    def emit(self) -> None:
        """Write what is pending to stdout, at once (a pipe reader sees it now)."""
        if self.lines:
            text = "\n".join(self.lines) + "\n"
            self.lines.clear()
            sys.stdout.write(text)
            sys.stdout.flush()


# -- following ---------------------------------------------------------------------------------


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
                 out: Output, state) -> None:
        self.paths, self.job, self.lines, self.follow, self.out = paths, job, lines, follow, out
        self.ctx = zmq.Context.instance()
        self.loop = Loop()
        self.streams = {a: Stream(a) for a in agents}
        self.topics = {wire.log_topic(job, a): a for a in agents}
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.connect(paths.endpoint("bus"))
        for topic in self.topics:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.req = self.ctx.socket(zmq.DEALER)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.setsockopt(zmq.RCVHWM, 0)
        self.req.connect(paths.endpoint("logs"))
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
                                     types={"run_finished", "run_requeued", "check_started", "check_finished"})
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
            if self.lines > 0:
                self.out.chunk(s.agent, b.start, b.data)
            s.expected = b.end
        elif b.end > s.expected:  # a gap: print what was missed, from the collector's copy
            if b.start > s.expected and b.start % ATTEMPT_SPAN:
                self.out.notice(s.agent, f"{b.start - s.expected} bytes of output are no longer held; skipped")
            frm = max(s.expected, b.start)
            self.out.chunk(s.agent, frm, b.data[frm - b.start :])
            s.expected = b.end
        elif s.final is not None:
            s.checked = True  # after the end: nothing more than what we printed
        queued, s.waiting = s.waiting, []
        for chunk in sorted(queued, key=lambda c: c.offset):
            self.on_chunk(s, chunk)

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
            s.waiting.append(c)  # something between was lost: ask for it
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
        elif isinstance(event, ev.RunRequeued):
            s.final, s.checked, s.done = None, False, False

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


# -- entry points --------------------------------------------------------------------------------


def resolve(paths: Paths, job_id: str, agents: tuple[str, ...]):
    from cocode import client

    state = client.current_state(paths)
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    for a in agents:
        if RunKey.split_check(a)[0] not in job.runs:
            raise CocodeError(f"job {job_id} has no agent {a!r} (it has {', '.join(job.agents)})")
    # Unnamed: every run, and the checks that ran on it (their own logs, `AGENT/check:NAME`).
    checks = [RunKey(job_id, a).check_log(n).agent for a in job.agents for n in job.runs[a].checks]
    return state, list(agents) or list(job.agents) + checks


def tail(paths: Paths, job_id: str, agents: tuple[str, ...], lines: int, follow: bool,
         as_json: bool, colour: bool = False) -> int:
    """Print to stdout; `colour` colours the text prefixes."""
    from cocode import client

    state, names = resolve(paths, job_id, agents)
    out = Output(job_id, names, as_json, colour=colour and not as_json)
    try:
        if not client.is_running(paths):
            if follow:
                raise client.not_running(paths)
            for a in names:  # cocode is down: what the files hold
                data = b"".join(RunFiles(paths.logs, job_id, a).iter_all())
                start = _line_start(data, lines)
                out.chunk(a, start, data[start:])
                out.flush_agent(a)
            out.emit()
            return 0
        return Tail(paths, job_id, names, lines, follow, out, state).run()
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def _line_start(data: bytes, lines: int) -> int:
    if lines <= 0:
        return len(data)
    pos = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def print_logs(paths: Paths, job_id: str, agent: str, terminal: bool = False,
               as_json: bool = False) -> int:
    """Every retained byte of the run to stdout: raw into a pipe or file, made safe
    when `terminal` says stdout is one, or (as_json) a JSON object per line as
    `tail --json` prints them."""
    files = RunFiles(paths.logs, job_id, agent)
    if files.read_manifest() is None:
        resolve(paths, job_id, (agent,))  # a clear error for a wrong job or agent
        return 0  # a run that wrote nothing (yet)
    try:
        if as_json:
            out = Output(job_id, [agent], True, colour=False)
            expected = None
            for offset, block in files.iter_at():
                if expected is not None and offset != expected:
                    out.flush_agent(agent)  # a jump (new attempt, pruned file): a line ends here
                out.chunk(agent, offset, block)
                expected = offset + len(block)
                out.emit()  # a block at a time: a long log is never held whole
            out.flush_agent(agent)
            out.emit()
        elif terminal:
            printer = Printer(lambda line: sys.stdout.write(line + "\n"), False, [agent])
            for block in files.iter_all():
                printer.chunk(agent, block)
            printer.flush(agent)
            sys.stdout.flush()
        else:
            out = sys.stdout.buffer
            for block in files.iter_all():
                out.write(block)
            out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def print_raw(paths: Paths, job_id: str, agent: str) -> int:
    """A formatted run's original stdout (redacted), every attempt's, oldest first."""
    from cocode.logs.structured import raw_files

    found = raw_files(paths.logs / "raw", job_id, agent)
    if not found:
        resolve(paths, job_id, (agent,))  # a clear error for a wrong job or agent
        raise CocodeError(f"{job_id}/{agent} has no raw output: only agents with a format "
                          f"other than text keep one (`cocode logs {job_id} {agent}` shows its output)")
    try:
        out = sys.stdout.buffer
        for path in found:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    out.write(block)
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    """The reader went away (`| head`): exit without a BrokenPipeError at shutdown."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
