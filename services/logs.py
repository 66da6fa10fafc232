"""The log collector: takes every run's output from the workers' shippers, stores
each byte exactly once, acknowledges what is durable, publishes it live, and
answers backlog requests from late joiners.

Protocol (ROUTER bound at paths.endpoint("logs"); one msgpack frame per message):
  LogChunk (shipper)        -> stored if it continues the run; LogAck(offset) once
                               everything before offset is written and fdatasync'ed
                               (batched, at most every SYNC_EVERY_S, in a thread:
                               cocode/logs/fsyncer.py).
  BacklogRequest (reader)   -> Backlog: the last N lines held in memory, none
                               before `after` when given (what a reader lacks), or
                               with `count` only how many newlines they hold; and
                               `end`, the offset to follow live from.
Dedupe and gaps: a chunk wholly before the run's end is a resend (re-acked, not
stored); one overlapping the end is trimmed; one after the end is a lost chunk, so
the shipper is told where the run ends (an ack that does not move) and resends.
Two jumps are accepted: to an attempt boundary (cocode/logs/files.py ATTEMPT_SPAN),
and, after GAP_GIVE_UP_S of the same hole, to whatever the shipper still has.
Stored bytes go out on `log.<job>.<agent>` at once (before the fsync: a reader
dedupes by offset, so a crash's resend is harmless to it). Per-run storage is
cocode/logs/runlog.py; on-disk layout cocode/logs/files.py.
Also: metrics on `metric.logs` every second while busy, and a `disk_low` warning
when free space under .cocode/logs falls below the disk line (resources/policy.py;
once per crossing) if .cocode/logs is on another filesystem than .cocode, which
the monitor watches.
"""

from __future__ import annotations

import gc
import os
import shutil
import time

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.sockets import router
from cocode.config import Config
from cocode.logs.fsyncer import Fsyncer
from cocode.logs.files import ATTEMPT_SPAN, RunFiles
from cocode.logs.runlog import MB, RunLog
from cocode.paths import Paths
from cocode.resources import policy
from cocode.runkey import RunKey
from cocode.core.service import Service
from cocode.osutil import release_memory

SYNC_EVERY_S = 0.03  # fsync rounds (and so acks) at most this often
DRAIN_MAX = 500  # messages per wake-up before timers (fsync and acks) get a turn
GAP_REPLY_S = 0.1  # at most one "resend from" ack per run this often
GAP_GIVE_UP_S = 5.0
TRIM_S = 2.0
TRIM_AFTER_BYTES = 32 * 1024 * 1024
IDLE_EVICT_S = 120.0  # a run silent this long leaves memory (reloaded on demand)
METRIC_TOPIC = b"metric.logs"
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.NOBLOCK | zmq.SNDMORE)
class Logs(Service):
    name = "logs"

    def setup(self) -> None:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        # No run's log is open yet: an unfinished lz4 frame here is a killed
        # collector's (its bytes are in the live file) and would stay forever.
        for stale in self.paths.logs.glob(".*.lz4.partial"):
            stale.unlink(missing_ok=True)
        # A finished run's open lz4 frame is given up once its bytes are stored,
        # not kept (with its file) until the run is evicted after IDLE_EVICT_S.
        self.finished: set[tuple[str, str]] = set()
        self.follow(self.on_run_finished, types={"run_finished"})
        # A modest queue: a shipper that outruns us gets EAGAIN and keeps its spool,
        # instead of libzmq holding hundreds of MB here.
        self.router = router(self.ctx, self.paths.endpoint("logs"), rcvhwm=4000, sndhwm=10_000)
        self.loop.add(self.router, self.on_message)
        self.runs: dict[RunKey, RunLog] = {}
        self.fsyncer = Fsyncer(self.ctx, self.loop, self.on_synced)
        self.last_round = 0.0
        self.sync_timer = False
        self.disk_low = False
        self.totals = {"bytes": 0, "expansions": 0, "overflows": 0, "rotations": 0}
        self.last_metric_bytes = -1
        self.loop.every(1.0, self.publish_metrics)
        self.loop.every(5.0, self.check_disk, first=0.5)
        self.loop.every(IDLE_EVICT_S / 4, self.evict_idle)
        self.trimmed_at_bytes = 0
        self.loop.every(TRIM_S, self.trim_memory)
        # What start-up made (modules, config) lives forever: keep the cyclic GC from
        # walking it on every full collection, a pause of ~5 ms in the live path.
        gc.freeze()

    def heartbeat_info(self) -> dict:
        return {"runs": len(self.runs)}

    # -- messages --------------------------------------------------------------------------

    def on_message(self) -> None:
        events: list[ev.Event] = []
        recv = self.router.recv
        for _ in range(DRAIN_MAX):
            # Two plain recv()s: recv_multipart costs ~3x as much here, most of it
            # asking libzmq whether more frames follow. Every client is a DEALER
            # sending one frame, so a message is [identity, payload]; anything else
            # fails to decode and the rest of it is skipped.
            try:
                ident = recv(zmq.NOBLOCK)
                raw = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                msg = wire.logs_decoder.decode(raw)
            except msgspec.MsgspecError:
                while self.router.get(zmq.RCVMORE):
                    recv()
                continue
            try:
                if isinstance(msg, wire.LogChunk):
                    self.ingest(ident, msg, raw, events)
                elif isinstance(msg, wire.BacklogRequest):
                    self.answer_backlog(ident, msg)
            except OSError as err:  # disk full, say: not acked, so the shipper retries
                self.log.error("cannot store %s: %s", RunKey(msg.job, msg.agent), err)
        for event in events:
            self.append(event)
        self.request_sync()

    def get_run(self, job: str, agent: str, create: bool = True) -> RunLog | None:
        key = RunKey(job, agent)
        run = self.runs.get(key)
        if run is None:
            if not create and not RunFiles(self.paths.logs, job, agent).meta.exists():
                return None
            if not _safe_name(job) or not _safe_name(agent):
                return None
            run = self.runs[key] = RunLog(self.paths.logs, job, agent, self.config.limits)
        return run

    def ingest(self, ident: bytes, c: wire.LogChunk, raw: bytes, events: list) -> None:
        run = self.get_run(c.job, c.agent)
        if run is None:
            return
        run.sender = ident
        end, n = run.end, len(c.data)
        if c.offset + n <= end:  # a resend of what is stored: say so again (now and then)
            self.ack_gap(run)
            return
        if c.offset > end:
            if not self.accept_jump(run, c.offset, events):
                return
            end = run.end
        data = c.data if c.offset == end else c.data[end - c.offset :]
        run.gap_since = 0.0
        run.store(data, events)
        if data is c.data:
            payload = raw  # unchanged: publish the shipper's own encoding
        else:
            payload = wire.encoder.encode(wire.LogChunk(
                job=c.job, agent=c.agent, stream=c.stream, offset=end, data=data, ts=c.ts))
        try:  # two send()s: send_multipart's flag arithmetic costs more than the sends
            self.pub.send(run.topic, _MORE_NOBLOCK)
            self.pub.send(payload, _NOBLOCK)
        except zmq.Again:
            pass  # a reader sees the gap by offset and asks for the backlog

    def accept_jump(self, run: RunLog, offset: int, events: list) -> bool:
        now = time.monotonic()
        if offset % ATTEMPT_SPAN == 0:
            run.jump(offset, events)
            return True
        if run.gap_since and now - run.gap_since > GAP_GIVE_UP_S:
            lost = offset - run.end
            self.log.warning("%s: %d bytes before offset %d never came; going on", run.key, lost, offset)
            events.append(ev.WarningEvent(job=run.job, agent=run.agent, code="log_gap",
                                          message=f"{lost} bytes of output were lost before offset {offset}"))
            run.jump(offset, events)
            return True
        if not run.gap_since:
            run.gap_since = now
        self.ack_gap(run)
        return False

    def ack_gap(self, run: RunLog) -> None:
        """Tell a shipper where the run ends, at most every GAP_REPLY_S: a resent
        window draws hundreds of duplicates, one answer is enough."""
        now = time.monotonic()
        if now - run.gap_replied > GAP_REPLY_S:
            run.gap_replied = now
            self.ack(run)

    def ack(self, run: RunLog) -> None:
        if run.sender is None:
            return
        msg = wire.LogAck(job=run.job, agent=run.agent, offset=run.synced)
        try:
            self.router.send_multipart([run.sender, wire.encoder.encode(msg)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # gone or full: the shipper's resend timer covers it

    def request_sync(self) -> None:
        """Hand every run with unsynced bytes to the fsync thread (if it is idle;
        otherwise the round in flight calls back here when it is done), at most
        every SYNC_EVERY_S: acks, and a worker's work on them, follow the rounds,
        and one round per chunk made both cost more than the chunks themselves."""
        if self.fsyncer.busy or self.sync_timer:
            return
        wait = self.last_round + SYNC_EVERY_S - time.monotonic()
        if wait > 0:
            self.sync_timer = True
            self.loop.call_later(wait, self._sync_due)
            return
        items = []
        for key, run in self.runs.items():
            try:
                req = run.sync_request()
            except OSError as err:
                self.log.error("cannot write %s: %s", run.key, err)
                continue
            if req is not None:
                items.append((key, *req))
        if items:
            self.last_round = time.monotonic()
            self.fsyncer.submit(items)

    def _sync_due(self) -> None:
        self.sync_timer = False
        self.request_sync()

    def on_synced(self, done: list) -> None:
        for key, offset in done:
            run = self.runs.get(key)
            if run is not None and run.mark_synced(offset):
                self.ack(run)
        self.request_sync()

    def answer_backlog(self, ident: bytes, req: wire.BacklogRequest) -> None:
        run = self.get_run(req.job, req.agent, create=False)
        if run is None:
            reply = wire.Backlog(job=req.job, agent=req.agent, start=0, end=0, data=b"", id=req.id)
        elif req.count:
            start, n = run.backlog_newlines(req.lines, req.after)
            reply = wire.Backlog(job=req.job, agent=req.agent, start=start, end=run.end, data=b"", newlines=n, id=req.id)
        else:
            start, data = run.backlog(req.lines, req.after)
            reply = wire.Backlog(job=req.job, agent=req.agent, start=start, end=run.end, data=data, id=req.id)
        try:
            self.router.send_multipart([ident, wire.encoder.encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    # -- housekeeping --------------------------------------------------------------------------

    def publish_metrics(self) -> None:
        now = time.monotonic()
        runs = {}
        totals = dict(self.totals)
        for run in self.runs.values():
            for k, v in run.stats.items():
                totals[k] += v
            if now - run.last_write < 5.0:
                runs[run.key] = {
                    "mb_per_min": round(run.rate_mb_per_min(now), 3),
                    "buffer_mb": round(run.capacity / MB, 1),
                    "bytes": run.stats["bytes"],
                }
        if totals["bytes"] == self.last_metric_bytes and not runs:
            return  # idle: nothing new to say
        self.last_metric_bytes = totals["bytes"]
        sample = {"ts": time.time(), "runs": runs, **totals}
        try:
            self.pub.send_multipart([METRIC_TOPIC, wire.encoder.encode(sample)], zmq.NOBLOCK)
        except zmq.Again:
            pass

    def check_disk(self) -> None:
        try:
            if os.stat(self.paths.logs).st_dev == os.stat(self.paths.home).st_dev:
                return  # the monitor already warns for .cocode's filesystem: one warning, not two
            free = shutil.disk_usage(self.paths.logs).free
        except OSError:
            return
        low = policy.disk_low_next(self.disk_low, free)
        if low and not self.disk_low:
            self.append(ev.WarningEvent(
                code="disk_low",
                message=f"only {free / MB:.0f} MB free for {self.paths.logs}; agent output may stop being kept",
            ))
        self.disk_low = low

    def trim_memory(self) -> None:
        """After a burst, hand freed heap back to the OS. Chunks pass through libzmq
        and Python as 4 KB mallocs; glibc keeps what a burst freed unless asked,
        and that alone held ~10 MiB of RSS after 200 MB went through."""
        total = self.totals["bytes"] + sum(r.stats["bytes"] for r in self.runs.values())
        if total - self.trimmed_at_bytes >= TRIM_AFTER_BYTES:
            self.trimmed_at_bytes = total
            release_memory()

    def on_run_finished(self, event: ev.Event) -> None:
        key = (event.job, event.agent)
        if key in self.runs and key not in self.finished:
            self.finished.add(key)
            self.loop.call_later(0.5, self.retire_finished)

    def retire_finished(self) -> None:
        for key in list(self.finished):
            run = self.runs.get(key)
            if run is None:
                self.finished.discard(key)
            elif run.synced == run.end and not self.fsyncer.busy:
                run.drop_frame()  # its ring stays for late readers, until idle eviction
                self.finished.discard(key)
        if self.finished:
            self.loop.call_later(1.0, self.retire_finished)

    def evict_idle(self) -> None:
        now = time.monotonic()
        for key, run in list(self.runs.items()):
            if now - run.last_write > IDLE_EVICT_S and run.synced == run.end and not self.fsyncer.busy:
                self._retire(key, run)

    def _retire(self, key, run: RunLog) -> None:
        for k, v in run.stats.items():
            self.totals[k] += v
        run.close()
        del self.runs[key]
        self.finished.discard(key)

    def teardown(self) -> None:
        self.fsyncer.close()
        for run in self.runs.values():
            try:
                if run.sync():
                    self.ack(run)
            except OSError as err:
                self.log.error("cannot sync %s: %s", run.key, err)
        for key, run in list(self.runs.items()):
            self._retire(key, run)
        self.router.close(0)


def _safe_name(name: str) -> bool:
    """Names become (escaped) file names: none empty, none absurdly long."""
    return 0 < len(name) < 200


def main(paths: Paths, config: Config) -> int:
    return Logs(paths, config).run()
