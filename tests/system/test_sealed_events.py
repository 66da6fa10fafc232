"""Issue 11, defect 4 (the bus half): with runs unsandboxed, an agent may publish
`evt.*` on bus-in, but a Follower takes only what the store sealed, so a forged event with the
next seq cannot shadow the real one, and a restarted store's new key is learnt by a
sync, not mistaken for forgery for good.

Real running cocode, real sockets; the forger is a plain PUB socket on bus-in.
"""

from __future__ import annotations

import os
import signal

import pytest
import zmq

from cocode.core import events as ev
from cocode.core import wire
from cocode.core.appender import Appender
from cocode.core.follower import Follower
from cocode.core.loop import Loop
from support import down, make_repo, ps, up, wait_until


@pytest.fixture
def running(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".cocode").mkdir(mode=0o700)
    # Unsandboxed runs: the case where an agent can reach bus-in, so events are sealed.
    (repo / ".cocode" / "config.yaml").write_text('{"sandbox": "off"}')
    paths = up(repo)
    yield paths
    down(repo)


def test_a_forged_event_with_the_next_seq_does_not_shadow_the_real_one(running):
    paths = running
    ctx = zmq.Context()
    got: list[ev.Event] = []
    loop = Loop()
    follower = Follower(ctx, paths.endpoint("bus"), paths.endpoint("store"), got.append)
    app = Appender(ctx, paths.endpoint("store"), wire.new_producer_id("t"))
    forger = ctx.socket(zmq.PUB)
    forger.setsockopt(zmq.LINGER, 0)
    forger.connect(paths.endpoint("bus-in"))
    try:
        follower.attach(loop)
        assert loop.run(until=lambda: follower.caught_up, timeout=10), "initial sync"
        assert follower.seal_key, "a process that is no agent is given the seal key"

        def forge(seal: bytes | None) -> list[bytes]:
            fake = ev.encode(ev.BenchTick(job="FORGED", n=0, seq=follower.last + 1))
            return [b"evt.bench_tick", fake] + ([seal] if seal is not None else [])

        # Until the bus forwards this publisher's frames, nothing counts: send until the
        # follower has refused one (unsealed), so the next round surely reaches it.
        def one_refused() -> bool:
            forger.send_multipart(forge(None))
            loop.run(timeout=0.05)
            return follower.forged > 0

        wait_until(one_refused, 10, what="a forged frame to reach the follower", interval=0)
        before = follower.forged
        for frames in (forge(None), forge(b"\0" * 16), forge(wire.seal(os.urandom(32), forge(None)[1]))):
            forger.send_multipart(frames)
        assert loop.run(until=lambda: follower.forged >= before + 3, timeout=5), "forgeries not refused"
        # The real event of that seq still arrives, and is delivered.
        app.append(ev.BenchTick(job="REAL", n=1))
        assert app.wait(10)
        assert loop.run(until=lambda: any(e.job == "REAL" for e in got), timeout=10), "the real event never came"
        assert [e for e in got if e.job == "FORGED"] == [], "a forged event was delivered"
        seqs = [e.seq for e in got]
        assert seqs == sorted(set(seqs)), "each seq once, in order"

        # A restarted store draws a new key: the follower learns it and goes on.
        old_key, store = follower.seal_key, ps(paths.root)["store"]["pid"]
        os.kill(store, signal.SIGKILL)
        wait_until(lambda: (s := ps(paths.root)["store"])["pid"] != store and s["state"] == "ready", 30,
                   what="the supervisor to restart the store")
        app.append(ev.BenchTick(job="AFTER", n=2))
        assert app.wait(15)
        assert loop.run(until=lambda: any(e.job == "AFTER" for e in got), timeout=15), "stuck after a store restart"
        assert follower.seal_key and follower.seal_key != old_key
    finally:
        forger.close(0)
        app.close()
        follower.close()
        loop.close()
        ctx.destroy(0)


def test_sandboxed_runs_leave_events_unsealed(tmp_path):
    """Confined, no agent reaches the bus: the store does not pay for seals."""
    from cocode.core.sockets import dealer
    from cocode.jobs import sandbox

    if sandbox.unavailable():
        pytest.skip(sandbox.unavailable())
    repo = make_repo(tmp_path / "repo")
    paths = up(repo)
    ctx = zmq.Context()
    req = dealer(ctx, paths.endpoint("store"))
    try:
        req.send(wire.encoder.encode(wire.Sync(after=0)))
        assert req.poll(10_000), "the store did not answer"
        page = wire.reply_decoder.decode(req.recv())
        assert isinstance(page, wire.Page) and page.events and page.seal_key == b""
    finally:
        req.close(0)
        ctx.destroy(0)
        down(repo)
