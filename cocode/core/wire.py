"""The messages services exchange besides events: store requests, replies, heartbeats.

Store protocol (DEALER -> ROUTER, one msgpack frame each way):
  Append(producer, first_id, events)  -> Ack | Nack | Refused
  Sync(after, limit)                  -> Page
Acks are cumulative, like TCP's: `through` is the highest msg_id of that producer
now committed, so one Ack settles a whole batch and a lost Ack is healed by the next.
A producer numbers its events 1, 2, 3 ... without gaps; the store only takes the
next expected id, which makes a resend harmless and a hole impossible.

Bus frames are [topic, envelope]; topics are `evt.<type>` (durable, sequenced),
`hb.<service>` (heartbeats), `log.<job>.<agent>`, `metric.<name>`. While agents' code
may run unconfined (no sandbox), an `evt.` frame has a third part, its seal: a keyed
BLAKE2b of the envelope under a key the store draws at start and hands out only in its
sync replies, to senders its gate does not refuse (no agent). Anyone may publish on
bus-in; only the store can seal, so a Follower takes no forged event, and a forged seq
cannot shadow the real one (issue 11, defect 4). Sandboxed, agents cannot reach the
bus at all and events go unsealed (a seal costs a fifth of the append throughput).
"""

from __future__ import annotations

import os
import time
from typing import Union

import msgspec

try:  # the C module alone: hashlib would load OpenSSL into every service (~2 MiB)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b

from cocode.core.events import EventUnion
from cocode.runkey import LOG_TOPIC_PREFIX, RunKey


class Append(msgspec.Struct, tag="append"):
    producer: str
    first_id: int
    events: list[EventUnion]


class Ack(msgspec.Struct, tag="ack"):
    """msg_ids (through-count, through] were committed as seqs first_seq.. ."""

    through: int
    first_seq: int = 0
    count: int = 0


class Nack(msgspec.Struct, tag="nack"):
    """The store expected `expected` next: resend from there."""

    expected: int


class Refused(msgspec.Struct, tag="refused"):
    """The store could not commit (disk full, read-only): keep the events, retry."""

    reason: str


class Sync(msgspec.Struct, tag="sync"):
    after: int
    limit: int = 2000
    types: list[str] = []  # only events of these types (all when empty)


class Page(msgspec.Struct, tag="page"):
    """Stored envelopes with seq > after, in order; `head` is the store's last seq;
    `upto` is the seq the page accounts for (with a type filter, events in between
    that did not match are covered too)."""

    events: list[msgspec.Raw]
    head: int
    upto: int = 0
    seal_key: bytes = b""  # the key of the bus's event seals (empty for an agent)


class Heartbeat(msgspec.Struct, tag="heartbeat"):
    service: str
    pid: int
    ts: float
    head: int = 0
    info: dict[str, int | float | str] = {}


class LogChunk(msgspec.Struct, tag="log_chunk"):
    """≤ 4 KB of a run's output; `offset` counts the run's bytes (both streams) so
    a reader sees a gap or a duplicate. Topic: log.<job>.<agent>."""

    job: str
    agent: str
    stream: str
    offset: int
    data: bytes
    ts: float = 0.0


class LogAck(msgspec.Struct, tag="log_ack"):
    """Collector -> shipper: every byte of the run before `offset` is stored."""

    job: str
    agent: str
    offset: int


class BacklogRequest(msgspec.Struct, tag="backlog_request"):
    """Reader -> collector: the last `lines` lines of a run (0: everything retained),
    none before offset `after` (-1: no such bound), so a reader that holds the run up
    to an offset asks only for what it lacks. `count`: send no bytes, only how many
    newlines they hold (a view's hidden tab counts unread lines, shows none)."""

    job: str
    agent: str
    lines: int = 2000
    after: int = -1
    count: bool = False
    id: int = 0  # echoed in the Backlog, so a reader can tell which request a reply answers


class Backlog(msgspec.Struct, tag="backlog"):
    """Collector -> reader: bytes [start, end) of the run's output; follow live from `end`."""

    job: str
    agent: str
    start: int
    end: int
    data: bytes
    finished: bool = False
    newlines: int = 0  # asked with `count`: the newlines in [start, end), and no data
    id: int = 0  # the request's id (0: the reader gave none, or a collector from before ids)


class WorkerBeat(msgspec.Struct, tag="worker_beat"):
    """Worker -> scheduler every second (Paranoid Pirate): alive, and holding these runs."""

    worker: str
    pid: int
    runs: list[str] = []  # "<job>/<agent>"


class Reclaim(msgspec.Struct):
    """A finished run's worktree to delete first (never its branch): max_worktrees."""

    job: str
    agent: str
    path: str


class Dispatch(msgspec.Struct, tag="dispatch"):
    """Scheduler -> worker: start this run (already recorded as run_dispatched)."""

    job: str
    agent: str
    attempt: int
    job_seq: int  # where the job_submitted event (issue body and all) is in the log
    reclaim: list[Reclaim] = []


SchedulerMessage = Union[WorkerBeat, Dispatch]
LogsMessage = Union[LogChunk, LogAck, BacklogRequest, Backlog]
class Compact(msgspec.Struct, tag="compact"):
    """CLI -> store: archive events of jobs finished more than `older_than_days` ago."""

    older_than_days: float


class CompactDone(msgspec.Struct, tag="compact_done"):
    archive: str | None
    events: int
    jobs: list[str] = []
    error: str | None = None


StoreRequest = Union[Append, Sync, Compact]
StoreReply = Union[Ack, Nack, Refused, Page, CompactDone]

encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(StoreRequest)
reply_decoder = msgspec.msgpack.Decoder(StoreReply)
heartbeat_decoder = msgspec.msgpack.Decoder(Heartbeat)
scheduler_decoder = msgspec.msgpack.Decoder(SchedulerMessage)
log_chunk_decoder = msgspec.msgpack.Decoder(LogChunk)
logs_decoder = msgspec.msgpack.Decoder(LogsMessage)
LOG_TOPIC = LOG_TOPIC_PREFIX.encode()


def log_topic(job: str, agent: str) -> bytes:
    return RunKey(job, agent).topic

HEARTBEAT_TOPIC = b"hb."
EVENT_TOPIC = b"evt."
SEAL_KEY_BYTES = 32


def seal(key: bytes, envelope) -> bytes:
    """An event frame's seal: 16 bytes, ~0.6 us for a 120-byte envelope (measured)."""
    return blake2b(envelope, key=key, digest_size=16).digest()


def heartbeat_frames(service: str, head: int = 0, **info) -> list[bytes]:
    hb = Heartbeat(service=service, pid=os.getpid(), ts=time.time(), head=head, info=info)
    return [HEARTBEAT_TOPIC + service.encode(), encoder.encode(hb)]


def new_producer_id(name: str) -> str:
    """Unique per process lifetime: msg_ids restart at 1 with every new producer."""
    return f"{name}-{os.getpid()}-{os.urandom(4).hex()}"
