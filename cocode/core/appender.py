"""Appender: append-until-acked, the one way any process writes to the event log.

Events are numbered per producer, sent in batches, kept until the store's
cumulative Ack covers them, and resent (go-back-N) after a timeout or a Nack. A
store crash or restart therefore loses and duplicates nothing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.loop import Loop, drain
from cocode.core.sockets import dealer

log = logging.getLogger(__name__)

BATCH = 512
RESEND_AFTER = 1.0


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
