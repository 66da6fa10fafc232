"""The socket builders (cocode/core/sockets.py) on real sockets over ipc: a subscriber
hears only its topics, nothing a builder made holds its process open at close, and a
bad endpoint leaks no socket."""

from __future__ import annotations

import threading

import pytest
import zmq

from cocode.core import sockets

WAIT_MS = 5000


def ipc(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.ipc"
    assert len(str(path)) < 100, "an ipc path must fit a unix socket address"
    return f"ipc://{path}"


def recv_topic(sub: zmq.Socket) -> bytes:
    assert sub.poll(WAIT_MS), "the subscriber heard nothing"
    topic, _ = sub.recv_multipart()
    return topic


def terms_within(ctx: zmq.Context, seconds: float) -> bool:
    """Whether ctx.term() (which waits for every socket's linger) returns in time."""
    t = threading.Thread(target=ctx.term, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_a_subscriber_hears_only_its_topics_from_a_real_pub(ctx, tmp_path):
    endpoint = ipc(tmp_path, "bus")
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    sub = sockets.subscriber(ctx, endpoint, [b"want.", b"also"])
    try:
        # The subscription reaches the PUB some time after connect: probe until heard.
        for _ in range(WAIT_MS // 10):
            pub.send_multipart([b"want.probe", b""])
            if sub.poll(10):
                break
        else:
            pytest.fail("the subscription never reached the publisher")
        while sub.poll(50):  # the extra probes
            sub.recv_multipart()
        for topic in (b"other.1", b"want.1", b"wan", b"also.x", b"metric.x", b"want.end"):
            pub.send_multipart([topic, b"payload"])
        # One connection keeps order: a topic that passed the filter would come before want.end.
        got = []
        while not got or got[-1] != b"want.end":
            got.append(recv_topic(sub))
        assert got == [b"want.1", b"also.x", b"want.end"]
    finally:
        sub.close()
        pub.close()


def test_a_subscriber_connected_before_the_bind_hears_after_it(ctx, tmp_path):
    endpoint = ipc(tmp_path, "late")
    sub = sockets.subscriber(ctx, endpoint, [b"hb."], reconnect_ms=sockets.FAST_RECONNECT_MS)
    assert sub.getsockopt(zmq.RECONNECT_IVL) == sockets.FAST_RECONNECT_MS
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        pub.bind(endpoint)
        for _ in range(WAIT_MS // 10):
            pub.send_multipart([b"hb.bus", b""])
            if sub.poll(10):
                break
        assert recv_topic(sub) == b"hb.bus"
    finally:
        sub.close()
        pub.close()


def test_each_builder_carries_its_queue_sizes(ctx, tmp_path):
    sub = sockets.subscriber(ctx, ipc(tmp_path, "a"), [])
    light = sockets.subscriber(ctx, ipc(tmp_path, "b"), [], hwm=sockets.ZMQ_DEFAULT_HWM)
    asker = sockets.backlog_asker(ctx, ipc(tmp_path, "c"))
    dealer = sockets.dealer(ctx, ipc(tmp_path, "d"), sndhwm=2000)
    router = sockets.router(ctx, ipc(tmp_path, "e"), rcvhwm=4000, sndhwm=10_000)
    xsub, xpub = sockets.bus_ends(ctx, ipc(tmp_path, "in"), ipc(tmp_path, "out"))
    try:
        assert sub.getsockopt(zmq.RCVHWM) == sockets.DEEP_HWM
        assert light.getsockopt(zmq.RCVHWM) == 1000
        assert (asker.getsockopt(zmq.RCVHWM), asker.getsockopt(zmq.SNDHWM)) == (0, 1000), \
            "a backlog reply is never dropped for a slow reader"
        assert (dealer.getsockopt(zmq.SNDHWM), dealer.getsockopt(zmq.RCVHWM)) == (2000, sockets.DEEP_HWM)
        assert (router.getsockopt(zmq.RCVHWM), router.getsockopt(zmq.SNDHWM)) == (4000, 10_000)
        for bound in (router, xsub, xpub):
            assert bound.getsockopt(zmq.MAXMSGSIZE) == sockets.MAX_MSG_BYTES
        for end in (xsub, xpub):
            assert (end.getsockopt(zmq.SNDHWM), end.getsockopt(zmq.RCVHWM)) == (sockets.DEEP_HWM,) * 2
    finally:
        for s in (sub, light, asker, dealer, router, xsub, xpub):
            s.close()


def test_closing_what_the_builders_made_never_blocks(tmp_path):
    """Messages queued for a peer that never comes: with any linger but 0 the
    context's term() would wait for them (forever, at libzmq's default)."""
    ctx = zmq.Context()
    nobody = ipc(tmp_path, "nobody")
    made = [
        sockets.subscriber(ctx, nobody, [b"evt."]),
        sockets.dealer(ctx, nobody),
        sockets.backlog_asker(ctx, nobody),
        sockets.requester(ctx, nobody),
        sockets.router(ctx, ipc(tmp_path, "r")),
        sockets.replier(ctx, ipc(tmp_path, "rep")),
        *sockets.bus_ends(ctx, ipc(tmp_path, "in"), ipc(tmp_path, "out")),
    ]
    for s in made:
        assert s.getsockopt(zmq.LINGER) == 0, s
    for s in made[1:4]:
        s.send(b"for nobody", zmq.NOBLOCK)  # queued on the pipe to the absent peer
    for s in made:
        s.close()  # the socket's own linger, not a forced 0
    assert terms_within(ctx, 5.0), "closing a built socket waited for its queued messages"


def test_a_lingering_socket_would_fail_the_check_above(tmp_path):
    """The same check on a dealer given a linger: term() waits for it."""
    ctx = zmq.Context()
    d = sockets.dealer(ctx, ipc(tmp_path, "nobody"))
    d.setsockopt(zmq.LINGER, 300)
    d.send(b"for nobody", zmq.NOBLOCK)
    d.close()
    t = threading.Thread(target=ctx.term, daemon=True)
    t.start()
    t.join(0.05)
    assert t.is_alive(), "term() did not wait for the lingering message"
    t.join(5.0)
    assert not t.is_alive(), "term() still waits after the linger ran out"


def test_the_publisher_keeps_its_linger_and_fast_reconnect(ctx, tmp_path):
    pub = sockets.publisher(ctx, ipc(tmp_path, "nobody"))
    try:
        assert pub.getsockopt(zmq.LINGER) == 500
        assert pub.getsockopt(zmq.SNDHWM) == sockets.DEEP_HWM
        assert pub.getsockopt(zmq.RECONNECT_IVL) == sockets.FAST_RECONNECT_MS
    finally:
        pub.close()


def test_a_bad_endpoint_raises_and_leaks_no_socket(tmp_path):
    ctx = zmq.Context()
    too_long = "ipc://" + str(tmp_path / ("x" * 200))
    kept = []
    for build in (lambda: sockets.subscriber(ctx, too_long, [b"a"]),
                  lambda: sockets.dealer(ctx, too_long),
                  lambda: sockets.requester(ctx, too_long),
                  lambda: sockets.router(ctx, too_long),
                  lambda: sockets.bus_ends(ctx, ipc(tmp_path, "ok"), too_long)):
        with pytest.raises(zmq.ZMQError) as raised:
            build()
        kept.append(raised.value)  # its traceback holds the failed socket, as a logged error would
    # term() waits for every socket still open: a leaked one would hold it forever.
    assert terms_within(ctx, 5.0), "a builder left a socket open after its endpoint failed"
