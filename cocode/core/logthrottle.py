"""A warning that anyone can make repeat fast (a peer sending garbage frames):
logged the first time, then at most once per interval with how many came since,
so a flood costs a few lines, not one per frame."""

from __future__ import annotations

import logging
import time

EVERY_S = 60.0


class Throttled:
    def __init__(self, log: logging.Logger, message: str, every: float = EVERY_S) -> None:
        self.log, self.message, self.every = log, message, every
        self.last = -float("inf")
        self.suppressed = 0

    def __call__(self, *args) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        more = f" (and {self.suppressed} more in the last {now - self.last:.0f} s)" if self.suppressed else ""
        self.log.warning(self.message + more, *args)
        self.last, self.suppressed = now, 0
