"""The log collector: per-run output ring buffers, files under .cocode/logs/,
lz4 rotation, redaction, backlog for late joiners and live publication.
"""

from __future__ import annotations

from cocode.config import Config
from cocode.paths import Paths
from cocode.service import Service


class Logs(Service):
    name = "logs"


def main(paths: Paths, config: Config) -> int:
    return Logs(paths, config).run()
