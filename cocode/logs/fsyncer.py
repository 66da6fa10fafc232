"""fdatasync off the event loop: one thread does the syncing, the loop learns of
each finished round through an inproc socket it polls like any other.

Why: an fdatasync takes 0.15-5 ms here (more under write load), and the log
collector's loop also forwards live output; syncing inline stalled every `cocode
tail` for as long. The collector acks bytes only once they are synced, so it
hands over (key, fd, offset) for each dirty run, keeps going, and acks when the
round comes back. One round is in flight at a time: what arrives meanwhile is
covered by the next round, which is the batching.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable, Hashable

import zmq

from cocode.core.loop import Loop
from cocode.osutil import fdatasync


class Fsyncer:
    def __init__(self, ctx: zmq.Context, loop: Loop,
                 on_synced: Callable[[list[tuple[Hashable, int]]], None]) -> None:
        self.on_synced = on_synced
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.results: deque[list[tuple[Hashable, int]]] = deque()
        address = f"inproc://fsyncer-{id(self)}"
        self.rx = ctx.socket(zmq.PAIR)
        self.rx.bind(address)
        self.tx = ctx.socket(zmq.PAIR)  # used by the thread only
        self.tx.connect(address)
        self.busy = False
        self.thread = threading.Thread(target=self._work, name="fsyncer", daemon=True)
        self.thread.start()
        loop.add(self.rx, self._on_done)

    def submit(self, items: list[tuple[Hashable, int, int]]) -> bool:
        """Sync each (key, fd, offset); False (nothing taken) while a round runs."""
        if self.busy or not items:
            return False
        self.busy = True
        self.requests.put(items)
        return True

    def _work(self) -> None:
        while True:
            items = self.requests.get()
            if items is None:
                return
            done = []
            for key, fd, offset in items:
                try:
                    fdatasync(fd)
                    done.append((key, offset))
                except OSError:
                    pass  # not acked; the next round tries again
            self.results.append(done)
            self.tx.send(b"", zmq.NOBLOCK)

    def _on_done(self) -> None:
        while True:
            try:
                self.rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        self.busy = False
        while self.results:
            self.on_synced(self.results.popleft())

    def close(self) -> None:
        self.requests.put(None)
        self.thread.join(5)
        self.rx.close(0)
        self.tx.close(0)
