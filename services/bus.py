"""The bus: the one XSUB/XPUB proxy every publisher connects to and every
subscriber reads from. It holds no state.

The proxy runs in libzmq (a thread inside zmq.proxy_steerable) so forwarding costs
no Python per message; the main thread is the ServiceBase skeleton (signals,
supervisor watch) and publishes the bus's own heartbeat through the proxy, which
proves the whole path works. The bus records no events: it has no Appender.
"""

from __future__ import annotations

import threading

import zmq

from cocode.config import Config
from cocode.core.service import ServiceBase
from cocode.paths import Paths
from cocode.core.sockets import bus_ends

CONTROL = "inproc://bus-control"


def _proxy(ctx: zmq.Context, paths: Paths, bound: threading.Event) -> None:
    control = ctx.socket(zmq.PAIR)
    control.connect(CONTROL)
    xsub, xpub = bus_ends(ctx, paths.endpoint("bus-in"), paths.endpoint("bus"))
    bound.set()
    try:
        zmq.proxy_steerable(xsub, xpub, None, control)
    except zmq.ContextTerminated:
        pass
    finally:
        for s in (xsub, xpub, control):
            s.close(0)


class Bus(ServiceBase):
    name = "bus"
    linger_ms = 0

    def __init__(self, paths: Paths, config: Config) -> None:
        # The proxy binds before the skeleton's publisher connects to it, so the
        # first heartbeat has somewhere to go.
        ctx = zmq.Context.instance()
        self.control = ctx.socket(zmq.PAIR)
        self.control.bind(CONTROL)
        bound = threading.Event()
        self.thread = threading.Thread(target=_proxy, args=(ctx, paths, bound), daemon=True)
        self.thread.start()
        bound.wait(5)
        super().__init__(paths, config)

    def teardown(self) -> None:
        self.control.send(b"TERMINATE")
        self.thread.join(2)
        self.control.close(0)


def main(paths: Paths, config: Config) -> int:
    return Bus(paths, config).run()
