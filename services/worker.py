"""The worker: runs agents, each in its own worktree and process group.

It takes Dispatch messages from the scheduler (beating to it every second),
prepares each run off the loop (worktree, issue file, environment), starts the
agent and drives its RunProcess: output, ready commit, timeout, cancel, end.
On start it settles the runs a previous worker process on this host left
behind: their process groups are killed and they are recorded `interrupted`,
so the scheduler can requeue them. On SIGTERM it stops its agents and records
them the same way, unless they were already ready. What runs leave behind
(processes, a previous worker's runs, worktrees, HOMEs) is settled by
cocode.jobs.settle.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import msgspec
import zmq

from cocode.core.loop import drain
from cocode.core.logthrottle import Throttled
from cocode.jobs import agents, sandbox, settle
from cocode.jobs.pool import PoolKeeper, run_worktrees
from cocode.jobs.refwake import RefWake
from cocode.resources import cpushare, reaper
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core import wire
from cocode.core.sockets import dealer
from cocode.config import Config
from cocode.jobs.timeouts import MEMORY_GRACE_S
from cocode.logs import redact
from cocode.logs.shipper import Shipper
from cocode.paths import Paths
from cocode.runkey import RunKey
from cocode.core.service import Service
from cocode.jobs.prepare import PrepareFailed, Preparing, fetch_job, prepare_run

if TYPE_CHECKING:
    from cocode.jobs.runner import RunPlan, RunProcess

# Ref and exit polling while runs are live (a ref file read is ~3 µs); a moved ref wakes
# the worker at once through RefWake, so this is the fallback for refs, not the path.
TICK_S = 0.02
IDLE_TICK_S = 0.25  # with nothing to watch, wake rarely
BEAT_S = 1.0
SHUTDOWN_GRACE_S = 3.0


class Worker(Service):
    name = "worker"

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__(paths, config)
        self.id = f"worker@{socket.gethostname()}"
        self.state = self.snapshot_state()
        self.runs: dict[RunKey, RunProcess] = {}
        self.preparing: dict[RunKey, tuple[int, Future]] = {}  # run -> (attempt, its preparation)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="prepare")
        self.agents = agents.merge_agents(config.agents)
        self.recovered = False
        self.tmp = paths.tmp
        self.fd_owner: dict[int, RunProcess] = {}
        self.worktree_lock = threading.Lock()
        limits = config.limits
        self.pool = PoolKeeper(paths.root, paths.pool, limits.worktree_pool, limits.max_worktrees,
                               self.worktree_lock, self.executor)
        self.cancelled: set[tuple[str, str, int]] = set()  # ended here before they started
        self.bad_frame = Throttled(self.log, "dropped an undecodable scheduler message")

    def setup(self) -> None:
        self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.reaper = reaper.Reaper()  # orphans of its agents re-parent here, not to init
        self.call_soon = self.loop.threadsafe_caller()
        # The bwrap probe starts a process (~10 ms, far more on a loaded machine): it
        # runs beside start-up instead of before the first heartbeat. A run's prepare
        # (in the same executor, queued after it) waits for its answer.
        self.sandbox_probe = self.executor.submit(sandbox.active, self.config.sandbox)
        self.sandbox_probe.add_done_callback(lambda _f: self.call_soon(self.say_sandbox))
        self.shipper = Shipper(self.ctx, self.paths, self.config)
        self.shipper.attach(self.loop)
        # No chosen routing id: the scheduler's ROUTER gives each connection its own, which
        # no other process can claim (its beats say which worker it is, checked by pid).
        self.sched = dealer(self.ctx, self.paths.endpoint("scheduler"))
        self.loop.add(self.sched, self.on_scheduler)
        self.follower = self.follow(self.on_event, after=self.state.seq, types=st.FOLDED_TYPES | {"limit_hit"})
        self.refwake = RefWake()
        if self.refwake.fd is not None:
            self.loop.add(self.refwake.fd, self.on_ref_change)
        self.tick_gen = 0
        self.schedule_tick(0.0)
        self.loop.every(BEAT_S, self.beat, first=0.0)

    def say_sandbox(self) -> None:
        sandboxed, why = self.sandbox_probe.result()
        if not sandboxed and self.config.sandbox == "auto":  # never silently
            self.append(ev.WarningEvent(code="sandbox_off", message=f"agent runs are not sandboxed: {why}"))

    def heartbeat_info(self) -> dict:
        return {"runs": len(self.runs), "preparing": len(self.preparing)}

    # -- scheduler ----------------------------------------------------------------------

    def beat(self) -> None:
        self.reaper.reap()  # orphans that exited on their own
        held = [run.key for run in (*self.runs, *self.preparing)]
        msg = wire.WorkerBeat(worker=self.id, pid=os.getpid(), runs=held)
        try:
            self.sched.send(wire.encoder.encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            pass

    def on_scheduler(self) -> None:
        for raw in drain(self.sched):
            try:
                msg = wire.scheduler_decoder.decode(raw)
            except msgspec.MsgspecError:
                self.bad_frame()
                continue
            if isinstance(msg, wire.Dispatch):
                key = RunKey(msg.job, msg.agent)
                if self.cancelled_before_start(msg.job, msg.agent):
                    continue
                if key not in self.runs and key not in self.preparing:
                    settle.reclaim(self.paths.root, msg.reclaim, self.append)  # room under max_worktrees
                    # Room the pool may keep once this run holds a worktree too.
                    room = (self.config.limits.max_worktrees - run_worktrees(self.state)
                            - len(self.preparing) - 1 + len(msg.reclaim))
                    fut = self.executor.submit(self.prepare, msg, room)
                    self.preparing[key] = (msg.attempt, fut)
                    # Started the moment it is prepared, not at the next (idle: 250 ms) tick.
                    fut.add_done_callback(lambda _f: self.call_soon(lambda: self.schedule_tick(0.0)))
                    self.beat()
                else:
                    self.supersede(key, msg.attempt)

    # -- the log --------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        st.apply(self.state, event)
        if isinstance(event, ev.RunFinished):
            settle.tidy_home(self.state, self.agents, self.tmp, self.executor, event.job, event.agent)
        elif isinstance(event, (ev.RunRequeued, ev.RunDispatched)):
            self.supersede(RunKey(event.job, event.agent), event.attempt)
        elif isinstance(event, ev.CancelRequested):
            for rp in list(self.runs.values()):
                if rp.plan.job == event.job and (not event.agent or rp.plan.agent == event.agent):
                    rp.stop("cancelled", "cancelled")
            job = self.state.jobs.get(event.job)
            for run in job.runs.values() if job else ():
                if run.live and run.worker == self.id and RunKey(event.job, run.agent) not in self.runs:
                    self.cancelled_before_start(event.job, run.agent)
        elif isinstance(event, ev.LimitHit) and not event.check:  # a check's: the checks service's
            # The monitor recorded this before signalling; the run ends with its reason.
            rp = self.runs.get(RunKey(event.job, event.agent))
            if rp and event.ts >= time.time() - (time.monotonic() - rp.started) - 1.0:
                rp.stopped_by_other("failed", f"{event.kind}_limit_exceeded", MEMORY_GRACE_S)

    def supersede(self, key: RunKey, attempt: int) -> None:
        """A newer attempt of a run this worker still holds exists: this worker was
        taken for dead (it did not beat; on another host, say) and the run requeued.
        The old attempt's agent is stopped; what it reports is fenced off by the fold."""
        rp = self.runs.get(key)
        if rp is not None and attempt > rp.plan.attempt:
            self.log.warning("run %s: attempt %d superseded by %d; stopping it", key, rp.plan.attempt, attempt)
            rp.stop("failed", "superseded")

    def cancelled_before_start(self, job_id: str, agent: str) -> bool:
        """A run with a cancel recorded that no agent process runs yet (being
        prepared, its dispatch still on the way, or its start failed): it ends
        `cancelled` here, and its prepared start, if any, is dropped (start_run)."""
        job = self.state.jobs.get(job_id)
        run = job.runs.get(agent) if job else None
        if run is None or not run.cancel_requested or RunKey(job_id, agent) in self.runs:
            return False
        if not run.final and (job_id, agent, run.attempt) not in self.cancelled:
            self.cancelled.add((job_id, agent, run.attempt))
            self.append(ev.RunFinished(job=job_id, agent=agent, state="cancelled", reason="cancelled",
                                       commits=run.commits, head=run.head, attempt=run.attempt))
        return True

    def recover(self) -> None:
        settle.recover(self.state, self.id, self.paths, {*self.runs, *self.preparing}, self.append, self.log)

    # -- preparing (off the loop: a worktree takes ~0.2 s) ----------------------------------

    def prepare(self, msg: wire.Dispatch, room: int = 0) -> RunPlan:
        t0 = time.perf_counter()
        job = fetch_job(self.ctx, self.paths.endpoint("store"), msg.job_seq)
        setting = Preparing(self.paths, self.config, self.agents, self.pool, self.worktree_lock, self.tmp,
                            *self.sandbox_probe.result(), self.id)
        return prepare_run(setting, msg, job, lambda: self.run_view(msg), room, t0)

    def run_view(self, msg: wire.Dispatch, wait_s: float = 5.0):
        """The run as this worker's fold has it, once the fold has seen this attempt
        (the scheduler may be a few events ahead). Read from a prepare thread: the
        fold sets a follow-up's fields before its attempt, so this sees them whole."""
        deadline = time.monotonic() + wait_s
        while True:
            job = self.state.jobs.get(msg.job)
            run = job.runs.get(msg.agent) if job else None
            if run is not None and run.attempt >= msg.attempt or time.monotonic() > deadline:
                return run
            time.sleep(0.002)  # the event is usually a few ms behind the dispatch, at most

    # -- running ----------------------------------------------------------------------------

    def schedule_tick(self, delay: float) -> None:
        """One chain of ticks: fast while runs are live, slow when idle. A newer
        chain replaces the older one (whose pending call then does nothing)."""
        self.tick_gen += 1
        gen = self.tick_gen
        if delay == TICK_S:  # on the shipper's grid: one wake-up serves both
            self.loop.call_on_grid(TICK_S, lambda: self.tick(gen))
        else:
            self.loop.call_later(delay, lambda: self.tick(gen))

    def tick(self, gen: int) -> None:
        if gen != self.tick_gen:
            return
        try:
            self.watch_runs()
        finally:
            busy = self.runs or self.preparing or not self.recovered
            self.schedule_tick(TICK_S if busy else IDLE_TICK_S)

    def watch_runs(self) -> None:
        if not self.recovered and self.follower.caught_up:
            self.recovered = True
            self.recover()
        if self.recovered and not self.preparing:
            self.pool.idle(lambda: run_worktrees(self.state))
        for key, (attempt, fut) in list(self.preparing.items()):
            if fut.done():
                del self.preparing[key]
                self.start_run(key, attempt, fut)
        now = time.monotonic()
        for key, rp in list(self.runs.items()):
            rp.tick(now)
            if rp.finished:
                self.forget(key, rp)
        self.refwake.rearm(now)

    def on_ref_change(self) -> None:
        """A run's branch ref was replaced: read it now, not at the next tick."""
        now = time.monotonic()
        for key in self.refwake.fired():
            rp = self.runs.get(key)
            if rp is not None and not rp.finished:
                rp.check_branch(now)

    def start_run(self, key: RunKey, attempt: int, fut: Future) -> None:
        job, agent = key
        try:
            plan = fut.result()
        except PrepareFailed as err:
            self.sweep(key)  # what its setup commands left running
            self.log.warning("run %s cannot start: %s", key, err)
            if err.output:  # setup's output: in the run's log like an agent's
                ship = self.shipper.open(job, agent, attempt)
                ship.output("stderr", 0, err.output)
                ship.close()
            self.append(ev.WarningEvent(job=job, agent=agent, code=err.reason, message=str(err)))
            self.append(ev.RunFinished(job=job, agent=agent, state="failed", reason=err.reason, attempt=attempt,
                                       detail=redact.scrub(str(err), self.shipper.patterns)))
            return
        except Exception as err:  # a bug must not leave the run in no definite state
            self.log.exception("run %s failed to prepare", key)
            self.sweep(key)
            self.append(ev.RunFinished(job=job, agent=agent, state="failed",
                                       reason="prepare_failed", head=None, attempt=attempt))
            self.append(ev.WarningEvent(job=job, agent=agent, code="prepare_failed", message=str(err)))
            return
        if self.cancelled_before_start(job, agent):
            plan.body_file.unlink(missing_ok=True)
            self.sweep(key)
            return
        # Output is redacted, spooled and shipped to the logs collector (cocode/logs/shipper.py).
        ship = self.shipper.open(job, agent, plan.attempt, plan.format)
        if ship.structured is not None:  # a CLI's JSON output: its facts become events
            ship.structured.on_events = lambda events: [self.append(e) for e in events]
            ship.structured.budget = plan.max_cost_usd
            ship.structured.on_budget = lambda: self.over_budget(key)

        def emit(event: ev.Event) -> None:
            if isinstance(event, ev.RunFinished):
                ship.finishing()  # the last lines and usage are recorded before the end
                # The agent's own last words if its output says them, else its last line:
                # redacted like its output, then clipped for display (the runner keeps it
                # longer, so a token the clip would cut in two is redacted whole).
                event.detail = ship.summary() or ship.scrub(event.detail)[-200:].strip()
            self.append(event)

        from cocode.jobs.runner import RunProcess

        if plan.setup_output:
            ship.output("stderr", 0, plan.setup_output)
        rp = RunProcess(plan, emit, ship.output, sweep=lambda: self.sweep(key, rp.pgid))
        rp.log_ship = ship  # type: ignore[attr-defined]
        try:
            with reaper.spawning() as keep:  # its Popen waits for it, not reap()
                try:
                    rp.start()
                finally:
                    if rp.proc is not None:
                        keep(rp.proc.pid)
        except Exception as err:  # OSError, ValueError (a NUL byte in argv or env), anything
            self.spawn_failed(rp, ship, err)
            return
        self.runs[key] = rp
        self.refwake.add(key, rp.watcher.loose_path)
        try:
            cpushare.apply(rp.pgid, key.key)  # the same CPU share for every agent
        except Exception:
            self.log.exception("run %s: cpu share not set", key)
        for fd in rp.fds:
            self.fd_owner[fd] = rp
            self.loop.add(fd, lambda fd=fd: self.on_output(fd))

    def over_budget(self, key: RunKey) -> None:
        """The run's cost passed its max_cost_usd: stopped like a timeout, commits kept
        (a run already ready stays ready)."""
        rp = self.runs.get(key)
        if rp is not None and not rp.ready_commit:
            rp.stop("failed", "budget_exceeded")

    def spawn_failed(self, rp: RunProcess, ship, err: Exception) -> None:
        """The agent could not be started: the run ends now, with the reason, and
        leaves nothing behind (a redispatch would only fail the same way)."""
        plan = rp.plan
        if rp.proc is not None:  # it started, and what followed failed
            rp.kill_group(signal.SIGKILL)
            rp.proc.wait()
            rp.close()
            reaper.release(rp.proc.pid)
        self.sweep(plan.run, rp.pgid)
        why = ship.scrub(f"cannot start {plan.command[0] if plan.command else 'the agent'}: {err}")[:500]
        ship.close()
        plan.body_file.unlink(missing_ok=True)
        self.log.warning("run %s/%s %s", plan.job, plan.agent, why)
        self.append(ev.RunFinished(job=plan.job, agent=plan.agent, state="failed",
                                   reason="spawn_failed", detail=why, attempt=plan.attempt))

    def on_output(self, fd: int) -> None:
        rp = self.fd_owner.get(fd)
        if rp is None or not rp.on_output(fd):
            self.loop.remove(fd)
            self.fd_owner.pop(fd, None)

    def forget(self, key: RunKey, rp: RunProcess) -> None:
        for fd in [fd for fd, owner in self.fd_owner.items() if owner is rp]:
            self.loop.remove(fd)
            del self.fd_owner[fd]
        self.refwake.discard(key)
        rp.close()
        rp.log_ship.close()  # type: ignore[attr-defined]  # its spool goes once the collector has it all
        reaper.release(rp.proc.pid)
        del self.runs[key]

    def sweep(self, key: RunKey, sid: int = 0) -> None:
        """Kill what is left of a run that ends (daemons included), before its end is recorded."""
        settle.sweep(self.reaper, key, sid, {k: rp.pgid for k, rp in self.runs.items()}, self.preparing, self.log)

    def teardown(self) -> None:
        """Stopping: agents are stopped and recorded, none is left running."""
        self.pool.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        for key, (attempt, _) in list(self.preparing.items()):
            job, agent = key
            self.append(ev.RunInterrupted(job=job, agent=agent, worker=self.id, reason="interrupted",
                                          attempt=attempt))
        for rp in self.runs.values():
            rp.stop("interrupted", "interrupted")
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while any(rp.proc.poll() is None for rp in self.runs.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        for key, rp in list(self.runs.items()):
            rp.kill_group(signal.SIGKILL)
            rp.proc.wait()
            while rp.streams and any(rp.on_output(fd) for fd in list(rp.streams)):
                pass
            if rp.ready_commit:
                rp.finish()
            else:
                rp.kill_group(signal.SIGKILL)
                self.append(ev.RunInterrupted(job=rp.plan.job, agent=rp.plan.agent,
                                              worker=self.id, reason="interrupted", attempt=rp.plan.attempt))
                rp.plan.body_file.unlink(missing_ok=True)
            self.forget(key, rp)
        killed = self.reaper.sweep_all()  # nothing any run started outlives the worker
        if killed:
            self.log.info("stopping: killed %d processes runs left running", killed)
        self.shipper.close()  # a last moment for acks; what is unacked stays spooled


def main(paths: Paths, config: Config) -> int:
    return Worker(paths, config).run()
