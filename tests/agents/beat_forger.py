"""Pretends to be a cocode worker (issue 11): sends WorkerBeat frames to the
scheduler's socket every 0.1 s, as a worker named WORKER_ID with pid PID (a number,
or `self` for its own), touching STARTED once the first is sent, for SECONDS.

    beat_forger.py ENDPOINT WORKER_ID PID STARTED SECONDS

Run from outside cocode (claiming the real worker's pid) or as an agent (claiming
its own): either way the scheduler must not count it as a worker.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import zmq

from cocode.core import wire

endpoint, worker, claimed, started, seconds = sys.argv[1:6]
pid = os.getpid() if claimed == "self" else int(claimed)
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.setsockopt(zmq.IDENTITY, worker.encode())  # as workers once did: it took over their route
sock.connect(endpoint)
deadline = time.monotonic() + float(seconds)
while time.monotonic() < deadline:
    sock.send(wire.encoder.encode(wire.WorkerBeat(worker=worker, pid=pid, runs=[])))
    Path(started).touch()
    time.sleep(0.1)
ctx.destroy(linger=0)
