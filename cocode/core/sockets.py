"""How cocode opens its ZeroMQ sockets: one named builder per kind of socket, each
carrying its options and the reason for each, so a tuning change reaches every
producer, follower, service and client. Call sites say which builder, never which
options. This module is in the event core: it imports nothing of cocode's."""

from __future__ import annotations

from typing import Iterable

import zmq
import zmq.backend

# pyzmq's Socket.send/recv are Python wrappers (DRAFT routing_id and group handling)
# around the backend's methods; called directly, a [topic, envelope] pair costs a
# third as much (measured 0.43 vs 1.6 us), which counts once per event on hot paths.
# Called as plain_send(sock, data, flags) / plain_recv(sock, flags) / plain_get(sock, option).
plain_send = zmq.backend.Socket.send
plain_recv = zmq.backend.Socket.recv
plain_get = zmq.backend.Socket.get

# The largest message a bound socket takes (ZMQ_MAXMSGSIZE): ZeroMQ drops a peer
# that announces a bigger frame before allocating it, so one client cannot make a
# service hold a gigabyte. The largest legitimate message, a job with an issue at
# the max_issue_kb ceiling (16 MB), fits with room to spare.
MAX_MSG_BYTES = 64 * 1024 * 1024

# libzmq's own high-water mark, spelled out where a socket keeps it: a reader of
# a few messages a second (heartbeats, one round of samples) needs no deeper queue.
ZMQ_DEFAULT_HWM = 1000
# The event path's queues: a burst (a follower's first sync, a replay of thousands
# of events, an agent's flood of output) waits in memory instead of being dropped
# by a PUB/XPUB or refused by a DEALER.
DEEP_HWM = 100_000
# libzmq reconnects every 100 ms; processes that connect before their peer has
# bound (every service at `cocode up` before the bus, the supervisor before the
# bus it forked has bound) are heard at most 20 ms after the bind instead.
FAST_RECONNECT_MS = 20


def _connect(sock: zmq.Socket, endpoint: str) -> zmq.Socket:
    try:
        sock.connect(endpoint)
    except zmq.ZMQError:
        sock.close(0)  # a bad endpoint (too long an ipc path) leaks no socket
        raise
    return sock


def bind(sock: zmq.Socket, endpoint: str) -> zmq.Socket:
    """Bind a service's socket, with the message size limit every bound socket has."""
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MSG_BYTES)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        sock.close(0)
        raise
    return sock


def subscriber(ctx: zmq.Context, endpoint: str, topics: Iterable[bytes], hwm: int = DEEP_HWM,
               reconnect_ms: int | None = None) -> zmq.Socket:
    """A SUB on the bus receiving only `topics` (prefixes; add or drop more later
    with SUBSCRIBE/UNSUBSCRIBE). LINGER 0: a SUB has nothing queued worth waiting
    for, so close never blocks. `hwm` is set before connecting (libzmq applies it
    to pipes made afterwards only); past it, the bus drops this reader's messages."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, hwm)
    if reconnect_ms is not None:
        sub.setsockopt(zmq.RECONNECT_IVL, reconnect_ms)
    _connect(sub, endpoint)
    for topic in topics:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    return sub


def publisher(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """A PUB connected to the bus's input (XSUB). LINGER 500: what is queued gets
    half a second to leave at close (a service's exit sets its own, linger_ms)."""
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 500)
    pub.setsockopt(zmq.SNDHWM, DEEP_HWM)
    pub.setsockopt(zmq.RECONNECT_IVL, FAST_RECONNECT_MS)
    return _connect(pub, endpoint)


def dealer(ctx: zmq.Context, endpoint: str, sndhwm: int = DEEP_HWM, rcvhwm: int = DEEP_HWM) -> zmq.Socket:
    """A DEALER to a service's ROUTER (store, scheduler, collector). LINGER 0: what
    matters is acknowledged by its service and sent again when not (Appender,
    shipper), so nothing unacknowledged is worth waiting for at close."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    return _connect(sock, endpoint)


def backlog_asker(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """A DEALER asking the log collector for backlogs (`cocode tail`, `cocode top`).
    It sends a few small requests (libzmq's send queue), and its receive queue is
    unbounded (RCVHWM 0): the answers are the bytes it asked for, and a reader slow
    to take them (a slow terminal) must not fill a pipe the collector's ROUTER would
    then silently drop them from; the collector's own SNDHWM still bounds its side."""
    return dealer(ctx, endpoint, sndhwm=ZMQ_DEFAULT_HWM, rcvhwm=0)


def requester(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """A REQ for one question to the supervisor. LINGER 0: the asker polls with a
    timeout and closes; an unanswered question must not hold the process open."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    return _connect(sock, endpoint)


def replier(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """The supervisor's bound REP answering `ps` and `stop`. LINGER 0: an answer
    not yet taken by a client that gave up is not worth delaying the exit for."""
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    return bind(sock, endpoint)


def router(ctx: zmq.Context, endpoint: str, rcvhwm: int = ZMQ_DEFAULT_HWM,
           sndhwm: int = ZMQ_DEFAULT_HWM) -> zmq.Socket:
    """A service's bound ROUTER (store, scheduler, collector). LINGER 0: its peers
    send again what was not acknowledged, so a stopping service waits for nobody.
    Past `sndhwm` for one peer the ROUTER drops that peer's replies; past `rcvhwm`
    a peer's DEALER gets EAGAIN (and keeps what it wanted to send)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    return bind(sock, endpoint)


def bus_ends(ctx: zmq.Context, in_endpoint: str, out_endpoint: str) -> tuple[zmq.Socket, zmq.Socket]:
    """The bus proxy's bound XSUB (publishers connect) and XPUB (subscribers
    connect), with the event path's deep queues both ways. LINGER 0: the bus holds
    no state; whatever it has not forwarded at exit its readers sync again."""
    ends = []
    for kind, endpoint in ((zmq.XSUB, in_endpoint), (zmq.XPUB, out_endpoint)):
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, DEEP_HWM)
        s.setsockopt(zmq.RCVHWM, DEEP_HWM)
        try:
            ends.append(bind(s, endpoint))
        except zmq.ZMQError:
            for e in ends:
                e.close(0)
            raise
    return ends[0], ends[1]
