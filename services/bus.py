"""The bus: the one XSUB/XPUB proxy every publisher connects to and every
subscriber reads from. It holds no state.

The proxy runs in libzmq (a thread inside zmq.proxy_steerable) so forwarding costs
no Python per message; the main thread handles signals and publishes the bus's
own heartbeat through the proxy, which proves the whole path works.
"""

from __future__ import annotations

import os
import threading

import zmq

from cocode.config import Config
from cocode.core.loop import Loop
from cocode.paths import Paths
from cocode.core.sockets import publisher
from cocode.core.service import Heartbeater, setup_logging, watch_supervisor

CONTROL = "inproc://bus-control"


def _proxy(ctx: zmq.Context, paths: Paths, bound: threading.Event) -> None:
    xsub = ctx.socket(zmq.XSUB)
    xpub = ctx.socket(zmq.XPUB)
    for s in (xsub, xpub):
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.RCVHWM, 100_000)
    control = ctx.socket(zmq.PAIR)
    control.connect(CONTROL)
    xsub.bind(paths.endpoint("bus-in"))
    xpub.bind(paths.endpoint("bus"))
    bound.set()
    try:
        zmq.proxy_steerable(xsub, xpub, None, control)
    except zmq.ContextTerminated:
        pass
    finally:
        for s in (xsub, xpub, control):
            s.close(0)


def main(paths: Paths, config: Config) -> int:
    log = setup_logging("bus")
    ctx = zmq.Context.instance()
    control = ctx.socket(zmq.PAIR)
    control.bind(CONTROL)
    bound = threading.Event()
    thread = threading.Thread(target=_proxy, args=(ctx, paths, bound), daemon=True)
    thread.start()
    bound.wait(5)
    pub = publisher(ctx, paths.endpoint("bus-in"))
    loop = Loop()
    loop.stop_on_signals()
    watch_supervisor(loop)

    Heartbeater(pub, "bus").attach(loop)
    log.info("ready pid=%d", os.getpid())
    loop.run()
    control.send(b"TERMINATE")
    thread.join(2)
    pub.close(0)
    control.close(0)
    ctx.destroy(linger=0)
    log.info("stopped")
    return 0
