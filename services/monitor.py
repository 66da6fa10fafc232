"""The monitor: samples agent process trees and the host, enforces memory limits,
reports memory pressure and disk space, publishes metrics.
"""

from __future__ import annotations

from cocode.config import Config
from cocode.paths import Paths
from cocode.service import Service


class Monitor(Service):
    name = "monitor"


def main(paths: Paths, config: Config) -> int:
    return Monitor(paths, config).run()
