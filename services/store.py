"""The store: sole writer of .cocode/events.db.

It takes Append requests, commits whatever has arrived as one transaction, acks
each producer with the seqs it assigned, and only then publishes the events on
the bus: nothing uncommitted is ever published. It answers Sync requests with
pages of stored envelopes, heartbeats its head seq every second so followers
notice a lost tail, and keeps a fold of the log to write snapshots.
"""

from __future__ import annotations

import os
import sqlite3
import time

import msgspec
import zmq

from cocode import envnames
from cocode.core import compaction
from cocode.core import events as ev
from cocode.core import eventlog
from cocode.core import gate
from cocode.core import state as st
from cocode.core.views import encode_state
from cocode.core import wire
from cocode.config import Config
from cocode.core.service import ServiceBase, other_services_alive
from cocode.errors import EXIT_CONFIG, CocodeError
from cocode.osutil import pid_alive, release_memory
from cocode.paths import Paths
from cocode.core.sockets import DEEP_HWM, plain_send, router
from cocode.jobs import sandbox

DRAIN_MAX = 2000  # requests taken per commit: bounds latency under load
SNAPSHOT_EVERY = 10_000
SNAPSHOTS_KEPT = 2
TRIM_AFTER_EVENTS = 20_000
MAX_COMPACT_DAYS = 36500
SENDER_CACHE_S = 1.0  # how long an "is this sender an agent" verdict is reused
OUTLIVE_MAX_S = 15.0  # the worker's own stop takes up to ~6 s (SIGTERM grace, then acks)
UPSERT_PRODUCER = (
    "INSERT INTO producers (producer, last_id) VALUES (?, ?) "
    "ON CONFLICT(producer) DO UPDATE SET last_id = excluded.last_id"
)


class Store(ServiceBase):
    """The skeleton's start/stop, with its own append path: the store records its
    events by committing them directly (record() = append_own), never through a
    socket to itself."""

    name = "store"

    def __init__(self, paths: Paths, config: Config) -> None:
        self.conn = eventlog.open_for_writing(paths.db)
        if limit := os.environ.get(envnames.STORE_MAX_PAGES):
            # SQLite's own "database or disk is full": lets tests exercise a full disk.
            self.conn.execute(f"PRAGMA max_page_count={int(limit)}")
        self.head = eventlog.head(self.conn)
        self.producers: dict[str, int] = dict(
            self.conn.execute("SELECT producer, last_id FROM producers")
        )
        self.state = eventlog.load_state(self.conn)
        self.snapshot_seq = self.state.seq if self.state.seq else 0
        super().__init__(paths, config)
        # Every appender and follower asks here: a burst of appends or sync pages queues.
        self.router = router(self.ctx, paths.endpoint("store"), rcvhwm=DEEP_HWM, sndhwm=DEEP_HWM)
        self.dropped = 0
        self.bad_kinds: set[str] = set()
        self.refusing: str | None = None
        # Events are sealed only while agents' code may run unconfined (`sandbox: off`,
        # or no bubblewrap here): confined, nothing of theirs reaches bus-in, and a seal
        # costs a fifth of the append throughput (bench events: ratio 0.58-0.62 without,
        # 0.44-0.48 with, same session). Drawn anew at each start: an old seal is no seal.
        confined, _ = sandbox.active(config.sandbox)
        self.seal_key = b"" if confined else os.urandom(wire.SEAL_KEY_BYTES)
        self.own_producer = wire.new_producer_id("store")
        self.own_next = 1
        self.trimmed_at = self.head
        # Every event after `known_from` was committed by this process, and `last_of`
        # holds the seq of each type's newest one: a filtered sync whose types saw
        # nothing new is answered without scanning the log (followers sync on every
        # heartbeat, and under load each scan read a second's worth of rows).
        self.known_from = self.head
        self.last_of: dict[type, int] = {}
        self.senders: dict[int, tuple[float, str | None]] = {}  # pid -> (when checked, refusal)
        self.refused_said: set[str] = set()

    # -- requests ------------------------------------------------------------------

    def on_requests(self) -> None:
        appends: list[tuple[bytes | None, wire.Append, int]] = []
        syncs: list[tuple[bytes, wire.Sync]] = []
        others: list[tuple[bytes, object]] = []
        for _ in range(DRAIN_MAX):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if len(frames) != 2:
                self._bad("frames", f"{len(frames) - 1} frames instead of 1")
                continue
            ident, raw = frames[0].bytes, frames[1]
            try:
                req = wire.request_decoder.decode(raw.buffer)
            except msgspec.MsgspecError as err:
                self._bad(type(err).__name__, str(err))
                continue
            if isinstance(req, wire.Append):
                pid = gate.peer_pid(raw)  # the kernel's word (SO_PEERCRED), not the sender's
                refusal = self.sender_refusal(pid)
                if refusal is None:
                    appends.append((ident, req, pid))
                else:
                    self.say_refused(refusal)
                    self.router.send_multipart([ident, wire.encoder.encode(wire.Refused(refusal))])
            elif isinstance(req, wire.Sync):
                # The seal key only for a sender the gate would let append (no agent).
                syncs.append((ident, req, self.sender_refusal(gate.peer_pid(raw)) is None))
            else:
                others.append((ident, req))
        if appends:
            self.commit(appends)
        for ident, sync, trusted in syncs:
            self.answer_sync(ident, sync, trusted)
        for ident, req in others:
            self.answer_other(ident, req)

    def answer_other(self, ident: bytes, req) -> None:
        if isinstance(req, wire.Compact):
            days = req.older_than_days
            if not 0 <= days <= MAX_COMPACT_DAYS:  # NaN fails this too
                reply = wire.CompactDone(archive=None, events=0, error=(
                    f"older than {days!r} days is not a compaction age (0..{MAX_COMPACT_DAYS}); nothing archived"))
            else:
                reply = self.compact(days)
        else:
            reply = wire.CompactDone(archive=None, events=0, error=f"{type(req).__name__} is not supported yet")
        self.router.send_multipart([ident, wire.encoder.encode(reply)])

    def compact(self, older_than_days: float) -> wire.CompactDone:
        """Archive finished jobs' old events; the log file is replaced, never UPDATEd."""
        try:
            done = compaction.compact(self.conn, self.paths, self.state, self.head, older_than_days)
        except Exception as err:
            self.log.exception("compaction failed")
            if not _usable(self.conn):  # it failed after letting go of the old file
                self.conn = eventlog.open_for_writing(self.paths.db)
            return wire.CompactDone(archive=None, events=0, error=f"compaction failed: {err}")
        if done.conn is not None:
            self.conn, self.snapshot_seq = done.conn, self.head
        if done.event is not None:
            self.append_own(done.event)
            self.log.info("compacted: %d events to %s", done.event.events, done.event.archive)
        return done.reply

    def sender_refusal(self, pid: int) -> str | None:
        """Why appends from process `pid` are refused whole (it is an agent), or None."""
        now = time.monotonic()
        hit = self.senders.get(pid)
        if hit is not None and now - hit[0] < SENDER_CACHE_S:
            return hit[1]
        if len(self.senders) > 1000:
            self.senders.clear()
        refusal = gate.agent_refusal(pid, gate.runner_pids(self.state))
        self.senders[pid] = (now, refusal)
        return refusal

    def say_refused(self, reason: str) -> None:
        if reason not in self.refused_said and len(self.refused_said) < 1000:
            self.refused_said.add(reason)
            self.log.warning("append refused: %s", reason)

    def _bad(self, kind: str, detail: str) -> None:
        self.dropped += 1
        if kind not in self.bad_kinds:
            self.bad_kinds.add(kind)
            self.log.warning("dropped an undecodable request (%s: %s); counting further ones", kind, detail)

    def answer_sync(self, ident: bytes, sync: wire.Sync, trusted: bool = False) -> None:
        limit = max(1, min(sync.limit, 10_000))
        if sync.types and not self.may_have(sync.types, sync.after):
            rows, upto = [], self.head
        elif sync.types:
            rows, upto = eventlog.read_typed(self.conn, sync.after, sync.types, limit)
            upto = self.head if upto is None else upto
        else:
            rows = eventlog.read_payloads(self.conn, sync.after, limit)
            upto = sync.after + len(rows)  # seqs are contiguous
        page = wire.Page(events=[msgspec.Raw(r) for r in rows], head=self.head, upto=upto,
                         seal_key=self.seal_key if trusted else b"")
        self.router.send_multipart([ident, wire.encoder.encode(page)])

    def may_have(self, types: list[str], after: int) -> bool:
        """Whether the log may hold an event of these types after seq `after`."""
        if after < self.known_from:
            return True
        last_of, classes = self.last_of, ev.EVENT_TYPES
        return any(last_of.get(classes.get(t), 0) > after for t in types)

    # -- the write path --------------------------------------------------------------

    def commit(self, appends: list[tuple[bytes | None, wire.Append, int]], retried: bool = False) -> None:
        seq = self.head
        last_ids = dict(self.producers)
        values: list = []  # the rows, flat (eventlog.insert_events)
        payloads: list[bytes] = []
        fresh_events: list[ev.Event] = []
        replies: list[tuple[bytes | None, object]] = []
        owned, tags, encode = gate.OWNED, ev.TAGS, ev.encode
        for ident, req, pid in appends:
            last = last_ids.get(req.producer, 0)
            if req.first_id > last + 1:
                replies.append((ident, wire.Nack(expected=last + 1)))
                continue
            fresh = req.events[last + 1 - req.first_id :]
            first_seq = seq + 1
            for i, event in enumerate(fresh):
                if (pid and type(event) in owned
                        and (refusal := gate.event_refusal(self.state, event, pid, pid_alive))):
                    # Recorded in its place, so the sender's ids and seqs stay in step.
                    self.say_refused(refusal)
                    event = fresh[i] = ev.WarningEvent(job=event.job, agent=event.agent,
                                                       code="append_refused", message=refusal)
                seq += 1
                event.seq = seq
                payload = encode(event)
                values += (seq, event.ts, tags[type(event)], event.job, event.agent, payload)
                payloads.append(payload)
                fresh_events.append(event)
            last_ids[req.producer] = max(last, req.first_id + len(req.events) - 1)
            replies.append(
                (ident, wire.Ack(through=last_ids[req.producer], first_seq=first_seq, count=len(fresh)))
            )
        changed = [(p, i) for p, i in last_ids.items() if self.producers.get(p) != i]
        if payloads or changed:
            try:
                self.conn.execute("BEGIN")
                eventlog.insert_events(self.conn, values)
                self.conn.executemany(UPSERT_PRODUCER, changed)
                self.conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                if isinstance(err, sqlite3.IntegrityError) and not retried:
                    # A row was written behind the store's back (the file is the user's):
                    # go on after the database's real head rather than refuse forever.
                    moved = eventlog.head(self.conn)
                    if moved > self.head:
                        self.log.warning("the log's head moved outside the store (%d -> %d): going on after it",
                                         self.head, moved)
                        self.head = self.known_from = moved
                        return self.commit(appends, retried=True)
                reason = f"{self.paths.db}: {err}"
                if self.refusing != reason:
                    self.log.error("cannot commit, refusing appends until it works: %s", reason)
                self.refusing = reason
                for ident, _, _ in appends:
                    if ident is not None:
                        self.router.send_multipart([ident, wire.encoder.encode(wire.Refused(reason))])
                return
            if self.refusing:  # only a real commit proves commits work again
                self.log.info("commits work again")
                self.refusing = None
        self.head = seq
        self.producers = last_ids
        for ident, reply in replies:
            if ident is not None:
                self.router.send_multipart([ident, wire.encoder.encode(reply)])
        # Published only now, after COMMIT: a subscriber never sees an event the log lacks.
        pub, send, more, now = self.pub, plain_send, zmq.SNDMORE | zmq.NOBLOCK, zmq.NOBLOCK
        topics, last_of, seal, key = ev.TOPICS, self.last_of, wire.seal, self.seal_key
        for payload, event in zip(payloads, fresh_events):
            # Plain sends cost a third of send_multipart; a PUB never blocks or
            # fails on them (at the high-water mark it drops, and a lagging
            # subscriber sees the seq gap and syncs).
            cls = type(event)
            send(pub, topics[cls], more)
            if key:
                send(pub, payload, more)
                send(pub, seal(key, payload), now)
            else:
                send(pub, payload, now)
            last_of[cls] = event.seq
        st.apply_all(self.state, fresh_events)
        if self.head - self.snapshot_seq >= SNAPSHOT_EVERY:
            self.snapshot()

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def append_own(self, event: ev.Event) -> None:
        req = wire.Append(self.own_producer, self.own_next, [event])
        self.own_next += 1
        self.commit([(None, req, 0)])

    def trim_memory(self) -> None:
        """After a burst of appends (decoded batches are many small objects), give the
        freed heap back: 60 MiB of RSS stayed after 200k events without this."""
        if self.head - self.trimmed_at >= TRIM_AFTER_EVENTS:
            self.trimmed_at = self.head
            release_memory()

    def snapshot(self) -> None:
        if self.state.seq <= self.snapshot_seq:
            return
        try:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, version, ts, state) VALUES (?, ?, ?, ?)",
                (self.state.seq, st.FOLD_VERSION, time.time(), encode_state(self.state)),
            )
            self.conn.execute(
                "DELETE FROM snapshots WHERE seq NOT IN "
                "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
                (SNAPSHOTS_KEPT,),
            )
            self.conn.execute("COMMIT")
            self.snapshot_seq = self.state.seq
        except sqlite3.Error as err:
            self._rollback()
            self.log.warning("snapshot skipped: %s", err)

    def on_supervisor_gone(self) -> None:
        """The supervisor died (kill -9): every service stops on its own, and their
        last events (run_interrupted, service_stopped) need a store to land in. So
        the store stops last: once the others are gone, or after OUTLIVE_MAX_S."""
        self.log.warning("the supervisor is gone: stopping once the other services have")
        deadline = time.monotonic() + OUTLIVE_MAX_S

        def check() -> None:
            if not other_services_alive(self.paths, "store") or time.monotonic() > deadline:
                self.loop.stop()

        self.loop.every(0.05, check)

    # -- the skeleton's hooks --------------------------------------------------------------

    def setup(self) -> None:
        self.loop.add(self.router, self.on_requests)
        self.loop.every(30.0, self.snapshot)
        self.loop.every(5.0, self.trim_memory)
        self.log.info("log head=%d", self.head)

    def heartbeat_info(self) -> dict:
        return {"head": self.head, "dropped": self.dropped, "refusing": int(self.refusing is not None)}

    def record(self, event: ev.Event) -> None:
        self.append_own(event)

    def finish(self) -> None:
        self.snapshot()
        self.router.close(0)
        self.conn.close()


def _usable(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1").fetchone()
        return True
    except sqlite3.Error:
        return False


def main(paths: Paths, config: Config) -> int:
    try:
        store = Store(paths, config)
    except CocodeError as err:
        # An unreadable database does not heal by restarting: exit 2 makes the
        # supervisor give up at once during start-up instead of crash-looping.
        raise CocodeError(err.message, EXIT_CONFIG) from None
    return store.run()
