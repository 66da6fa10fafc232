"""Hostile frames against a real running cocode (issue 11, defect 9): a frame over
the size limit is refused by every bound socket before it is held in memory, and
a flood of garbage costs a few log lines, not one per frame."""

from __future__ import annotations

import os

import msgspec
import pytest
import zmq

from cocode import client
from cocode.core import wire
from cocode.core.sockets import MAX_MSG_BYTES
from support import cocode, wait_until


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def pids(paths) -> dict[str, int]:
    ps = client.request(paths, "ps")
    assert ps, "the supervisor answers"
    return {s["name"]: s["pid"] for s in ps["services"]} | {"supervisor": ps["pid"]}


# endpoint -> (owner, socket type to reach it with)
TARGETS = {"store": ("store", zmq.DEALER), "scheduler": ("scheduler", zmq.DEALER),
           "logs": ("logs", zmq.DEALER), "bus-in": ("bus", zmq.XPUB), "supervisor": ("supervisor", zmq.DEALER)}


@pytest.mark.parametrize("endpoint", list(TARGETS))
def test_a_frame_over_the_limit_is_refused_before_it_is_held(running, ctx, endpoint):
    owner, kind = TARGETS[endpoint]
    pid = pids(running)[owner]
    before = peak_rss(pid)
    big = MAX_MSG_BYTES + 64 * 1024 * 1024  # 128 MiB
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(running.endpoint(endpoint))
    frames = [b"", b"x" * big] if endpoint == "supervisor" else [b"hb." + b"x" * big]
    if kind == zmq.XPUB:  # a publisher sends only what is subscribed: wait for the bus's subscriptions
        assert sock.poll(10_000), "the bus sent no subscription"
    sock.send_multipart(frames, copy=False)
    # Refused: the service drops the connection. Accepted: its peak memory grows by the frame.
    dropped = wait_until(lambda: monitor.poll(50) and monitor.recv_multipart()
                         or peak_rss(pid) - before > big // 2, 30, what="the frame to be refused or taken")
    assert dropped is not True, f"{owner} took a {big >> 20} MiB frame into memory"
    assert peak_rss(pid) - before < 32 * 1024 * 1024
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)
    assert pids(running)[owner] == pid, f"{owner} was not restarted"
    assert cocode(running.root, "status", timeout=30).returncode == 0


def test_a_flood_of_garbage_frames_is_logged_a_few_times(running, ctx):
    sched = ctx.socket(zmq.DEALER)
    sched.setsockopt(zmq.LINGER, 0)
    sched.connect(running.endpoint("scheduler"))
    for i in range(2000):
        sched.send(b"\xc1garbage %d" % i)
    # Frames from one peer are handled in order: once the scheduler counts the
    # probe worker that beats after the garbage, it has read every bad frame. (Its
    # own pid: a beat claiming another process's is dropped, see test_store_gate.py.)
    sched.send(wire.encoder.encode(wire.WorkerBeat(worker="probe@test", pid=os.getpid(), runs=[])))
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, wire.HEARTBEAT_TOPIC + b"scheduler")
    sub.connect(running.endpoint("bus"))

    def probe_counted() -> bool:
        while sub.poll(100):
            hb = msgspec.msgpack.decode(sub.recv_multipart()[1], type=wire.Heartbeat)
            if hb.info.get("workers", 0) >= 2:
                return True
        return False

    wait_until(probe_counted, 20, what="the scheduler to count the probe worker (so every bad frame was read)")
    sub.close(0)
    sched.close(0)
    log = (running.home / "logs" / "services" / "scheduler.log").read_text()
    lines = [ln for ln in log.splitlines() if "undecodable" in ln]
    assert 1 <= len(lines) <= 2, lines
