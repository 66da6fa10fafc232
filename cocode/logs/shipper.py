"""The worker's half of the log pipeline: redact each run's output, spool it, and
ship it to the collector until the collector confirms it is stored.

One Shipper per worker process (one DEALER to paths.endpoint("logs"), driven by
the worker's loop); one RunShipper per run. Offsets are those of the redacted
stream, both of a run's streams counted together, from attempt_base(attempt).

Never blocking the worker: output() does a redaction, one pwrite to the spool and
at most a few non-blocking sends. Everything the collector has not acked is in the
spool (logs/spool.py, under .cocode/spool/), so nothing depends on ZeroMQ
delivering: sends that fail (EAGAIN), chunks lost with a restarting collector, or
more than WINDOW bytes ahead of the acks are (re)sent from the spool by tick(),
from the last acked offset (go-back-N; the collector drops what it already has). A
run that ended stays until its last byte is acked, then its spool is deleted. A
spool left by a dead worker (the collector was down) is resent by the next Shipper
that starts on this host; one locked by a live process is not touched.

An agent with a structured `format` (logs/formats.py) has its stdout made readable
here, after redaction and before the spool, so the collector, tail and logs all carry
the readable lines; the original bytes, redacted the same once, go to a `.raw` file
beside the collector's logs (`cocode logs --raw`), and the facts the lines carry
become events (logs/structured.py).
"""

from __future__ import annotations

import bisect
import os
import time

import msgspec
import zmq

from cocode.core.loop import drain
from cocode.core.sockets import dealer
from cocode.logs import redact
from cocode.logs.structured import RawFile, Structured, raw_path
from cocode.core import wire
from cocode.logs.files import attempt_base
from cocode.logs.spool import Spool
from cocode.runkey import RunKey

CHUNK = 4096  # ADR-005: 4 KB streaming chunks
WINDOW = 4 * 1024 * 1024  # bytes sent ahead of the collector's acks
RESEND_AFTER_S = 1.0  # no ack progress this long: go back to the last acked offset
RESEND_MAX_S = 5.0  # ... backing off up to this while the collector is away
GAP_RESEND_S = 0.25  # at most one resend per run this often on "you skipped" acks
IDLE_FLUSH_S = 0.05  # a stream quiet this long has its held tail released
TICK_S = 0.02


class RunShipper:
    structured: Structured | None = None  # stdout in a JSON format, made readable here

    def __init__(self, shipper: "Shipper", spool: Spool, recovered: bool = False) -> None:
        self.shipper = shipper
        self.spool = spool
        self.job, self.agent = spool.job, spool.agent
        self.topic_key = RunKey(spool.job, spool.agent)
        self.acked = spool.base
        self.sent = spool.base
        self.redactors: dict[str, redact.Redactor] = {}
        self.fed_at: dict[str, float] = {}
        # Offsets where the stream (stdout/stderr) changes, to label chunks read
        # back from the spool; pruned below the acked offset.
        self.label_at: list[int] = []
        self.label: list[str] = []
        self.closing = recovered  # a recovered spool has no more output coming
        self.done = False
        self.last_progress = time.monotonic()
        self.backoff = RESEND_AFTER_S
        self.last_gap_resend = 0.0

    @property
    def end(self) -> int:
        return self.spool.end

    # -- from the runner ----------------------------------------------------------------

    def output(self, stream: str, _raw_offset: int, data: bytes) -> None:
        """RunProcess's output callback: every chunk the agent wrote, in order."""
        r = self.redactors.get(stream)
        if r is None:
            r = self.redactors[stream] = redact.Redactor(self.shipper.patterns)
        self.fed_at[stream] = time.monotonic()
        out = r.feed(data)
        if out:
            self._emit(stream, out)

    def _emit(self, stream: str, redacted: bytes) -> None:
        """Redacted output to the spool; a structured stdout made readable first (one
        redaction serves both the raw file and the readable lines)."""
        if self.structured is not None and stream == "stdout":
            redacted = self.structured.feed(redacted)
        if redacted:
            self._append(stream, redacted)

    def scrub(self, text: str) -> str:
        return redact.scrub(text, self.shipper.patterns)

    def summary(self) -> str:
        """The agent's own last words (its error or final message), redacted; '' for text."""
        return self.scrub(self.structured.summary()) if self.structured else ""

    def finishing(self) -> None:
        """The run is about to be recorded finished: its last lines and facts go first."""
        if self.structured is not None and not self.structured.finished:
            r = self.redactors.get("stdout")
            if r is not None:
                self._emit("stdout", r.close())
            tail = self.structured.finish()
            if tail:
                self._append("stdout", tail)

    def close(self) -> None:
        """The run is over: release every held byte; the spool goes once all is acked."""
        if self.closing:
            return
        for stream, r in self.redactors.items():
            out = r.close()
            if out:
                self._emit(stream, out)
        if self.structured is not None:
            self.finishing()
            self.structured.close()
        self.closing = True
        self.check_done()

    # -- sending -----------------------------------------------------------------------------

    def _append(self, stream: str, data: bytes) -> None:
        offset = self.spool.end
        self.spool.append(data)
        if not self.label or self.label[-1] != stream:
            self.label_at.append(offset)
            self.label.append(stream)
        # The common case, caught up and within the window: send from memory now.
        if self.sent == offset and self.shipper.may_send(self) and offset + len(data) - self.acked <= WINDOW:
            for i in range(0, len(data), CHUNK):
                if not self._send(stream, offset + i, data[i : i + CHUNK]):
                    return
                self.sent = offset + min(i + CHUNK, len(data))

    def _send(self, stream: str, offset: int, data: bytes) -> bool:
        chunk = wire.LogChunk(job=self.job, agent=self.agent, stream=stream, offset=offset,
                              data=data, ts=time.time())
        try:
            self.shipper.sock.send(wire.encoder.encode(chunk), zmq.NOBLOCK)
        except zmq.Again:
            return False
        if offset <= self.acked:
            self.last_progress = time.monotonic()  # the resend clock starts with the oldest unacked byte
        self.shipper.arm()
        return True

    def _stream_at(self, offset: int) -> str:
        i = bisect.bisect_right(self.label_at, offset) - 1
        return self.label[i] if i >= 0 else "stdout"

    def pump(self) -> None:
        """Send from the spool what is due: from `sent`, up to the window."""
        if not self.shipper.may_send(self):
            return
        while self.sent < self.end and self.sent - self.acked < WINDOW:
            data = self.spool.read(self.sent, CHUNK)
            if not data or not self._send(self._stream_at(self.sent), self.sent, data):
                return
            self.sent += len(data)

    def on_ack(self, offset: int) -> None:
        now = time.monotonic()
        if offset > self.acked:
            self.acked = min(offset, self.end)
            self.sent = max(self.sent, self.acked)
            self.last_progress = now
            self.backoff = RESEND_AFTER_S
            self._prune_labels()
            self.spool.release(self.acked)
            self.check_done()
            if not self.done:
                self.pump()
        elif self.sent > self.acked or offset < self.acked:
            # The collector ends before what we sent: a chunk was lost (or it lost
            # bytes we may still have). Go back to where it ends.
            if now - self.last_gap_resend > GAP_RESEND_S:
                self.last_gap_resend = now
                self.acked = max(min(offset, self.acked), self.spool.base)
                self.sent = self.acked
                self.pump()

    def tick(self, now: float) -> None:
        for stream, r in self.redactors.items():
            if r.pending and now - self.fed_at.get(stream, 0.0) >= IDLE_FLUSH_S:
                out = r.flush()
                self.fed_at[stream] = float("inf")  # once per quiet spell; output() resets it
                if out:
                    self._emit(stream, out)
        if self.acked < self.sent and now - self.last_progress > self.backoff:
            self.sent = self.acked  # nothing acked for a while: go back and resend
            self.last_progress = now
            self.backoff = min(self.backoff * 2, RESEND_MAX_S)
        if self.sent < self.end:
            self.pump()

    def _prune_labels(self) -> None:
        i = bisect.bisect_right(self.label_at, self.acked) - 1
        if i > 0:
            del self.label_at[:i]
            del self.label[:i]

    def check_done(self) -> None:
        if self.closing and self.acked >= self.end and not any(r.pending for r in self.redactors.values()):
            self.done = True
            self.spool.close(delete=True)


class Shipper:
    def __init__(self, ctx: zmq.Context, paths, config) -> None:
        # A low send HWM: past it sends fail (EAGAIN) and the spool holds the bytes.
        self.sock = dealer(ctx, paths.endpoint("logs"), sndhwm=2000)
        self.spool_dir = paths.home / "spool"
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.patterns = redact.compile_patterns(config.redact_patterns)
        self.prices = dict(getattr(config, "prices", {}) or {})
        self.raw_dir = paths.logs / "raw"
        self.raw_limit = config.limits.log_rotation_size_mb * 1024 * 1024 * (config.limits.rotated_logs_keep + 1)
        self.runs: list[RunShipper] = []  # oldest first
        self.loop = None
        self.armed = False

    def attach(self, loop) -> None:
        self.loop = loop
        loop.add(self.sock, self.on_readable)
        self.recover()
        self.arm()

    def arm(self) -> None:
        """Tick only while some run has something to do: an idle worker sleeps."""
        if not self.armed and self.runs and self.loop is not None:
            self.armed = True
            self.loop.call_on_grid(TICK_S, self._tick_timer)  # shared with the worker's tick

    def _tick_timer(self) -> None:
        self.armed = False
        self.tick()
        self.arm()

    # -- runs --------------------------------------------------------------------------------

    def open(self, job: str, agent: str, attempt: int = 1, fmt: str = "text") -> RunShipper:
        # Unique to this process and open: never an older spool's name.
        stem = f"{RunKey(job, agent).file_stem}.a{attempt}.p{os.getpid()}-{os.urandom(3).hex()}"
        run = RunShipper(self, Spool.create(self.spool_dir, stem, job, agent, attempt_base(attempt)))
        if fmt != "text":
            raw = RawFile(raw_path(self.raw_dir, job, agent, attempt), self.raw_limit)
            run.structured = Structured(fmt, raw, job, agent, attempt, self.prices, self.patterns)
        self.runs.append(run)
        self.arm()
        return run

    def may_send(self, run: RunShipper) -> bool:
        """Only the oldest shipper of a run sends: an older attempt's spool must be
        stored before a newer attempt's bytes move the collector's end past it."""
        for r in self.runs:
            if r.topic_key == run.topic_key and not r.done:
                return r is run
        return True

    def recover(self) -> None:
        """Resend spools that dead workers on this host left behind."""
        for spool in Spool.recover(self.spool_dir):
            run = RunShipper(self, spool, recovered=True)
            self.runs.append(run)
            run.check_done()
            run.pump()

    # -- the loop ------------------------------------------------------------------------------

    def on_readable(self) -> None:
        for raw in drain(self.sock):
            try:
                msg = wire.logs_decoder.decode(raw)
            except msgspec.MsgspecError:
                continue
            if isinstance(msg, wire.LogAck):
                for run in self.runs:
                    if run.topic_key == RunKey(msg.job, msg.agent) and not run.done:
                        run.on_ack(msg.offset)
                        break
        self._forget_done()

    def tick(self) -> None:
        now = time.monotonic()
        for run in list(self.runs):
            if not run.done:
                run.tick(now)
        self._forget_done()

    def _forget_done(self) -> None:
        if any(r.done for r in self.runs):
            self.runs = [r for r in self.runs if not r.done]

    def close(self, timeout: float = 1.0) -> None:
        """Worker stopping: wait briefly for the last acks; spools not fully acked
        stay on disk for the next worker to resend."""
        for run in self.runs:
            run.close()
        deadline = time.monotonic() + timeout
        while self.runs and time.monotonic() < deadline:
            if self.sock.poll(20):
                self.on_readable()
            self.tick()
        for run in self.runs:
            run.spool.close(delete=False)
        self.runs = []
        self.sock.close(0)
