"""cocode/core/logthrottle.py: a repeated warning is logged once per interval."""

from __future__ import annotations

import logging
import time

from cocode.core.logthrottle import Throttled


def test_a_flood_is_one_line_then_one_per_interval(caplog):
    log = logging.getLogger("throttle-test")
    warn = Throttled(log, "bad frame from %s", every=0.2)
    with caplog.at_level(logging.WARNING, "throttle-test"):
        for _ in range(2000):
            warn("peer")
        assert [r.getMessage() for r in caplog.records] == ["bad frame from peer"]
        time.sleep(0.25)  # pacing: past the 0.2 s interval
        warn("peer")
    assert caplog.records[-1].getMessage().startswith("bad frame from peer (and 1999 more in the last")
    assert len(caplog.records) == 2
