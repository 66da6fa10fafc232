"""The worker: runs agents, each in its own worktree and process group, watches
for the ready commit, enforces timeouts, and records every run's final state.
"""

from __future__ import annotations

from cocode.config import Config
from cocode.paths import Paths
from cocode.service import Service


class Worker(Service):
    name = "worker"


def main(paths: Paths, config: Config) -> int:
    return Worker(paths, config).run()
