"""Watching a job live: its events and its agents' output until every run is final.

Used by `submit --wait`, `demo` and `bench jobs`. Events come through the Follower
(nothing missed); output comes from the bus's `log.<job>.` topic for display,
printed by cocode.logs.printer.
"""

from __future__ import annotations

import time
from typing import Callable

import msgspec
import zmq

from cocode import lock
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import JobView, State
from cocode.core import wire
from cocode.core.follower import Follower
from cocode.core.loop import Loop, drain
from cocode.core.sockets import ZMQ_DEFAULT_HWM, subscriber
from cocode.errors import NotRunningError
from cocode.logs.printer import Printer
from cocode.paths import Paths
from cocode.runkey import RunKey

SUPERVISOR_CHECK_S = 0.25


def watch_job(
    paths: Paths, job_id: str, state: State, on_event: Callable[[ev.Event], None],
    printer: Printer | None, timeout: float | None = None,
    settled: Callable[[State, JobView], bool] = lambda state, job: True,
) -> State:
    """Fold events into `state` until every run of `job_id` is final (and `settled`
    says the rest is done too: the checks of its ready runs)."""
    ctx = zmq.Context.instance()
    loop = Loop()
    sub = None
    if printer is not None:
        # Display only, as it always was: libzmq's default queue (a reader far
        # behind loses output here; `cocode tail` is the reader that never does).
        sub = subscriber(ctx, paths.endpoint("bus"), [RunKey.job_topic(job_id)], hwm=ZMQ_DEFAULT_HWM)

        def on_log() -> None:
            for frames in drain(sub, multipart=True):
                try:
                    chunk = wire.log_chunk_decoder.decode(frames[-1])
                except msgspec.MsgspecError:
                    continue
                printer.chunk(chunk.agent, chunk.data)

        loop.add(sub, on_log)

    def apply(event: ev.Event) -> None:
        st.apply(state, event)
        if event.job == job_id:
            on_event(event)

    follower = Follower(ctx, paths.endpoint("bus"), paths.endpoint("store"), apply, after=state.seq)
    follower.attach(loop)

    def done() -> bool:
        job = state.jobs.get(job_id)
        return job is not None and job.state == "done" and follower.caught_up and settled(state, job)

    # `cocode down` ends the job's runs as interrupted, not final: without this
    # the wait would last forever. The supervisor's lock is free once it has gone.
    stopped = False

    def check_running() -> None:
        nonlocal stopped
        stopped = lock.running_pid(paths) is None

    loop.every(SUPERVISOR_CHECK_S, check_running, first=SUPERVISOR_CHECK_S)
    try:
        loop.run(until=lambda: done() or stopped, timeout=timeout)
        if stopped and not done():
            loop.run(until=lambda: follower.caught_up, timeout=1.0)  # the last events, if still served
            raise NotRunningError(
                f"cocode stopped before job {job_id} finished (`cocode down`?); "
                "`cocode up` resumes its runs, `cocode status` shows them")
        if printer is not None:
            end = time.monotonic() + 0.2  # output published just before the end
            while time.monotonic() < end:
                loop.run_once(0.05)
            printer.flush()
    finally:
        follower.close()
        if sub is not None:
            sub.close(0)
        loop.close()
    return state
