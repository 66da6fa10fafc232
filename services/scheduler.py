"""The scheduler: the queue (priority, then FIFO), concurrency and memory-pressure
gating, dispatch to live workers, and the control socket for submit/cancel.
Its queue is a fold over the log, rebuilt by replay on every start.
"""

from __future__ import annotations

from cocode.config import Config
from cocode.paths import Paths
from cocode.service import Service


class Scheduler(Service):
    name = "scheduler"


def main(paths: Paths, config: Config) -> int:
    return Scheduler(paths, config).run()
