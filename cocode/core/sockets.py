"""Socket set-up shared by every process: one place for linger, high-water marks and
reconnect intervals, so a tuning change reaches every producer and follower."""

from __future__ import annotations

import zmq


def dealer(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(endpoint)
    return sock


def publisher(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """A PUB connected to the bus's input (XSUB)."""
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 500)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.RECONNECT_IVL, 20)
    pub.connect(endpoint)
    return pub
