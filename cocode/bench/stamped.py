"""Stamped lines: the stamp a benchmark's agent writes into its output (`T<ns> `,
time.time_ns() just before the write), and the agent -> `cocode tail -f` latency
read from it in the steady state."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from cocode.paths import Paths

STAMP = re.compile(rb"T(\d{19}) ")
# Start-up is not the steady state (a worker preparing workspaces, importing pygit2,
# a collector opening files): samples count from this long after the last of the
# agents wrote its first stamped line.
WARM_UP_NS = 1_000_000_000


def tail_latency(paths: Paths, job: str, agents: list[str], seconds: float) -> list[float]:
    """Milliseconds from each stamped line's stamp to `cocode tail -f JOB AGENTS...`
    printing it, for the lines after the warm-up (WARM_UP_NS); stops when tail
    ends or `seconds` + 30 s have passed."""
    tail = subprocess.Popen(
        [sys.executable, "-m", "cocode", "-C", str(paths.root), "tail", job, *agents, "-f", "-n", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    samples: list[float] = []
    seen: set[bytes] = set()  # agents heard from (for several, tail starts a line with the name)
    warm_until = None
    deadline = time.monotonic() + seconds + 30
    try:
        for line in tail.stdout:
            now = time.time_ns()
            m = STAMP.search(line)
            if not m:
                continue
            if warm_until is None:
                seen.add(line.split(b" ", 1)[0])
                if len(seen) >= len(agents):
                    warm_until = now + WARM_UP_NS
            elif now > warm_until:
                samples.append((now - int(m.group(1))) / 1e6)
            if time.monotonic() > deadline:
                break
    finally:
        if tail.poll() is None:
            tail.terminate()
        tail.wait(10)
    return samples
