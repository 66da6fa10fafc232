"""Follower: the ZeroMQ Guide's Clone pattern, the one way a process reads the log live.

Subscribe first, ask the store for everything after the checkpoint, queue live
events meanwhile, drop what the sync already covered, then go live. A gap in seq,
or a store heartbeat announcing a head we have not seen, sends it back to sync the
missing range; so does silence from the bus, so a dead bus delays events but never
loses them.

A live event counts only with the store's seal (core/wire.py): the key comes with
the sync replies, so events heard before the first reply wait for it. A frame
whose seal is wrong is dropped and starts a sync: it is a forgery (the real event
of that seq still arrives), or a restarted store's new key (the sync brings it).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

import msgspec
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.loop import Loop, drain
from cocode.core.sockets import dealer, subscriber

try:  # the C function alone: hmac would load OpenSSL into every service
    from _operator import _compare_digest as same_digest
except ImportError:  # pragma: no cover
    from hmac import compare_digest as same_digest


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
        self.types = sorted(set(types)) if types else None
        topics = [wire.HEARTBEAT_TOPIC + b"store"]
        if self.types is None:
            # Every evt. frame: seq must stay contiguous for gap detection.
            topics.append(wire.EVENT_TOPIC)
        else:
            # Only some types: their seqs have holes by nature, so a live event is
            # only a hint that there is news, and the store's filtered pages deliver.
            # A follower of job events then never decodes a flood of other events.
            topics += [wire.EVENT_TOPIC + t.encode() for t in self.types]
            self.again = False
        self.sub = subscriber(ctx, subscribe_endpoint, topics)
        self.req = dealer(ctx, store_endpoint)
        self.syncing = False
        self.sync_sent = 0.0
        self.live: list[ev.Event] = []
        self.seal_key: bytes | None = None  # None until the first sync reply; b"": not given one
        self.unsealed: list[tuple[ev.Event, bytes, bytes | None]] = []
        self.last_heard = time.monotonic()
        self.dropped = 0
        self.forged = 0
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
            self.seal_key = page.seal_key
            if self.unsealed:
                heard, self.unsealed = self.unsealed, []
                self.live.extend(e for e, payload, mark in heard if self._sealed(payload, mark))
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
            if len(frames) == 3:
                topic, payload, mark = frames
            elif len(frames) == 2:
                (topic, payload), mark = frames, None
            else:
                self.dropped += 1
                continue
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
            if self.seal_key is None:
                self.unsealed.append((event, payload, mark))  # judged once the key is known
                continue
            if not self._sealed(payload, mark):
                if not self.syncing:
                    self._request_sync()
                continue
            if self.syncing:
                self.live.append(event)
            elif event.seq == self.last + 1:
                self._deliver(event)
            elif event.seq > self.last + 1:
                self.live.append(event)
                self._request_sync()

    def _sealed(self, payload: bytes, mark: bytes | None) -> bool:
        """The store sealed this envelope (or this follower was given no key to check)."""
        if not self.seal_key:
            return True
        if mark is not None and same_digest(wire.seal(self.seal_key, payload), mark):
            return True
        self.forged += 1
        self.dropped += 1
        return False

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
