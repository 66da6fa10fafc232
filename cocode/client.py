"""The two ways any process talks to the event log: Appender and Follower.

Appender: append-until-acked. Events are numbered per producer, sent in batches,
kept until the store's cumulative Ack covers them, and resent (go-back-N) after a
timeout or a Nack. A store crash or restart therefore loses and duplicates nothing.

Follower: the ZeroMQ Guide's Clone pattern. Subscribe first, ask the store for
everything after the checkpoint, queue live events meanwhile, drop what the sync
already covered, then go live. A gap in seq, or a store heartbeat announcing a
head we have not seen, sends it back to sync the missing range; so does silence
from the bus, so a dead bus delays events but never loses them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Iterable

import msgspec
import zmq

from cocode import events as ev
from cocode import wire
from cocode.loop import Loop, drain

log = logging.getLogger(__name__)

BATCH = 512
RESEND_AFTER = 1.0


def dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(endpoint)
    return sock


class Appender:
    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        producer: str,
        on_ack: Callable[[int, int], None] | None = None,
        resend_after: float = RESEND_AFTER,
    ) -> None:
        self.sock = dealer(ctx, endpoint)
        self.producer = producer
        self.on_ack = on_ack
        self.resend_after = resend_after
        self.next_id = 1
        self.unacked: deque[tuple[int, ev.Event]] = deque()
        self.outbox: list[tuple[int, ev.Event]] = []  # the newest unacked, not yet sent
        self.last_progress = time.monotonic()
        self.last_resend = 0.0
        self.refused: str | None = None
        self.head_seq = 0

    # -- producing -------------------------------------------------------------

    def append(self, event: ev.Event) -> int:
        """Queue an event; it is sent on the next flush(). Returns its msg_id."""
        msg_id = self.next_id
        self.next_id += 1
        item = (msg_id, event)
        self.unacked.append(item)
        self.outbox.append(item)
        return msg_id

    def flush(self) -> None:
        if self.outbox:
            items, self.outbox = self.outbox, []
            self._send(items)

    def _send(self, items) -> None:
        for i in range(0, len(items), BATCH):
            chunk = items[i : i + BATCH]
            msg = wire.Append(self.producer, chunk[0][0], [e for _, e in chunk])
            try:
                self.sock.send(wire.encoder.encode(msg), zmq.NOBLOCK)
            except zmq.Again:
                return  # the resend timer will get it there

    @property
    def pending(self) -> int:
        return len(self.unacked)

    # -- replies -----------------------------------------------------------------

    def on_readable(self) -> None:
        for raw in drain(self.sock):
            try:
                reply = wire.reply_decoder.decode(raw)
            except msgspec.MsgspecError:
                log.warning("appender: undecodable reply dropped")
                continue
            self._handle(reply)

    def _handle(self, reply) -> None:
        if isinstance(reply, wire.Ack):
            first_new = reply.through - reply.count + 1
            while self.unacked and self.unacked[0][0] <= reply.through:
                msg_id, _ = self.unacked.popleft()
                if reply.count and msg_id >= first_new and self.on_ack:
                    self.on_ack(msg_id, reply.first_seq + (msg_id - first_new))
            if reply.count:
                self.head_seq = max(self.head_seq, reply.first_seq + reply.count - 1)
            self.last_progress = time.monotonic()
            self.refused = None
        elif isinstance(reply, wire.Nack):
            # Several in-flight batches draw several Nacks: resend once per window.
            now = time.monotonic()
            if now - self.last_resend > self.resend_after / 4:
                self.last_resend = now
                self.resend()
        elif isinstance(reply, wire.Refused):
            if self.refused != reply.reason:
                log.error("store refused events (will retry): %s", reply.reason)
            self.refused = reply.reason

    def resend(self) -> None:
        self.outbox = []
        self._send(list(self.unacked))
        self.last_progress = time.monotonic()

    def tick(self) -> None:
        """Call periodically: resend what has waited too long for an Ack."""
        self.flush()
        if self.unacked and time.monotonic() - self.last_progress > self.resend_after:
            self.resend()

    def attach(self, loop: Loop, tick: float = 0.2) -> None:
        loop.add(self.sock, self.on_readable)
        loop.every(tick, self.tick)

    def wait(self, timeout: float) -> bool:
        """Block until everything appended is acked; False on timeout."""
        self.flush()
        deadline = time.monotonic() + timeout
        while self.unacked:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.sock.poll(int(min(left, 0.1) * 1000)):
                self.on_readable()
            else:
                self.tick()
        return True

    def close(self) -> None:
        self.sock.close(0)


class Follower:
    """Delivers every stored event after `after`, in seq order, exactly once."""

    def __init__(
        self,
        ctx: zmq.Context,
        subscribe_endpoint: str,
        store_endpoint: str,
        on_event: Callable[[ev.Event], None],
        after: int = 0,
        types: Iterable[str] | None = None,
        liveness: float = 3.0,
    ) -> None:
        self.on_event = on_event
        self.last = after
        self.head = after
        self.liveness = liveness
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.connect(subscribe_endpoint)
        self.sub.setsockopt(zmq.SUBSCRIBE, wire.HEARTBEAT_TOPIC + b"store")
        self.types = sorted(set(types)) if types else None
        if self.types is None:
            # Every evt. frame: seq must stay contiguous for gap detection.
            self.sub.setsockopt(zmq.SUBSCRIBE, wire.EVENT_TOPIC)
        else:
            # Only some types: their seqs have holes by nature, so a live event is
            # only a hint that there is news, and the store's filtered pages deliver.
            # A follower of job events then never decodes a flood of other events.
            for t in self.types:
                self.sub.setsockopt(zmq.SUBSCRIBE, wire.EVENT_TOPIC + t.encode())
            self.again = False
        self.req = dealer(ctx, store_endpoint)
        self.syncing = False
        self.sync_sent = 0.0
        self.live: list[ev.Event] = []
        self.last_heard = time.monotonic()
        self.dropped = 0
        self.synced_once = False

    # -- sync -----------------------------------------------------------------------

    def start(self) -> None:
        self._request_sync()

    def _request_sync(self) -> None:
        self.syncing = True
        self.sync_sent = time.monotonic()
        try:
            self.req.send(wire.encoder.encode(wire.Sync(after=self.last, types=self.types or [])), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def on_reply(self) -> None:
        for raw in drain(self.req):
            try:
                page = wire.reply_decoder.decode(raw)
            except msgspec.MsgspecError:
                self.dropped += 1
                continue
            if not isinstance(page, wire.Page):
                continue
            self.last_heard = time.monotonic()
            self.head = max(self.head, page.head)
            if self.types is not None:
                self._on_filtered_page(page)
                continue
            for raw_event in page.events:
                try:
                    event = ev.decode(raw_event)
                except msgspec.MsgspecError:
                    self.dropped += 1
                    continue
                self._deliver(event)
            if self.last < page.head and page.events and not self._live_continues():
                self._request_sync()
            else:
                self.syncing = False
                self.synced_once = True
                self._drain_live()

    def _on_filtered_page(self, page: wire.Page) -> None:
        for raw_event in page.events:
            try:
                self._deliver(ev.decode(raw_event))
            except msgspec.MsgspecError:
                self.dropped += 1
        self.last = max(self.last, page.upto)  # the other types in between are covered
        if self.last < page.head:
            self._request_sync()
            return
        self.syncing = False
        self.synced_once = True
        if self.again:
            self.again = False
            self._request_sync()

    def _kick(self) -> None:
        """Filtered mode: there is news; fetch it (once more after the current page)."""
        if self.syncing:
            self.again = True
        else:
            self._request_sync()

    def _live_continues(self) -> bool:
        """The queued live events already hold the next seq: the sync has met the live
        stream, so switch to it (a sync alone never catches a head that keeps moving)."""
        nxt = self.last + 1
        return any(e.seq == nxt for e in self.live)

    def _drain_live(self) -> None:
        queued, self.live = sorted(self.live, key=lambda e: e.seq), []
        for event in queued:
            if event.seq <= self.last:
                continue
            if event.seq != self.last + 1:
                rest = [e for e in queued if e.seq > self.last]
                # Past the store's head as the sync just reported it: a real event is
                # re-fetched by the next sync anyway (gap or heartbeat); a bogus one must
                # not keep this follower syncing forever.
                self.live = [e for e in rest if e.seq <= self.head]
                self.dropped += len(rest) - len(self.live)
                if self.live:
                    self._request_sync()
                return
            self._deliver(event)

    def _deliver(self, event: ev.Event) -> None:
        if event.seq <= self.last:
            return
        self.last = event.seq
        self.head = max(self.head, event.seq)
        if self.types is None or event.type in self.types:
            self.on_event(event)

    # -- live -----------------------------------------------------------------------

    def on_live(self) -> None:
        for frames in drain(self.sub, multipart=True):
            if len(frames) != 2:
                self.dropped += 1
                continue
            topic, payload = frames
            self.last_heard = time.monotonic()
            if self.types is not None and topic.startswith(wire.EVENT_TOPIC):
                self._kick()
                continue
            if topic.startswith(wire.HEARTBEAT_TOPIC):
                try:
                    hb = wire.heartbeat_decoder.decode(payload)
                except msgspec.MsgspecError:
                    self.dropped += 1
                    continue
                if hb.head > self.last and not self.syncing:
                    self._request_sync()
                continue
            try:
                event = ev.decode(payload)
            except msgspec.MsgspecError:
                self.dropped += 1
                continue
            if self.syncing:
                self.live.append(event)
            elif event.seq == self.last + 1:
                self._deliver(event)
            elif event.seq > self.last + 1:
                self.live.append(event)
                self._request_sync()

    def tick(self) -> None:
        now = time.monotonic()
        if self.syncing and now - self.sync_sent > 1.0:
            self._request_sync()  # the store restarted or the reply was lost
        elif not self.syncing and now - self.last_heard > self.liveness:
            # The bus is silent (dead, or restarting): ask the store directly.
            self.last_heard = now
            self._request_sync()

    def attach(self, loop: Loop, start: bool = True) -> None:
        loop.add(self.sub, self.on_live)
        loop.add(self.req, self.on_reply)
        loop.every(0.25, self.tick)
        if start:
            self.start()

    @property
    def caught_up(self) -> bool:
        return self.synced_once and not self.syncing and self.last >= self.head

    def close(self) -> None:
        self.sub.close(0)
        self.req.close(0)


def append_one(paths, event: ev.Event, timeout: float = 15.0) -> None:
    """Append one event from a short-lived process (the CLI) and wait for its ack."""
    from cocode.errors import CocodeError

    app = Appender(zmq.Context.instance(), paths.endpoint("store"), wire.new_producer_id("cli"))
    try:
        app.append(event)
        if not app.wait(timeout):
            raise CocodeError(
                f"the store did not confirm within {timeout:.0f} s ({app.refused or 'no answer'}); see `cocode ps`"
            )
    finally:
        app.close()
