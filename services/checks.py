"""The checks service: runs the configured `checks:` on every ready run.

It follows the log (from the latest snapshot) and decides from the fold alone
(cocode.jobs.checks): a check is due when it never ran at the run's branch head,
when `cocode check` asked for it again, or when a crash cut it off (rerun once).
Each runs in the run's worktree, in its own session and process group
(cocode.jobs.checkrun), within the concurrency cap shared with agents
(the rule is in cocode.jobs.checks). Results are check_started/check_finished
events; output goes through the logs collector like an agent's, to the log
`<agent>/check:<name>` of the run (so `cocode tail JOB AGENT/check:NAME`).

Governance: the monitor samples a running check's group under the run's memory
limit and records limit_hit with `check` set; this service then stops it. A
cancel of the run stops its checks (cancelled, not rerun). On SIGTERM (`down`)
running checks are killed and recorded interrupted, so the next start reruns
them; after a kill -9 the next start finds the checks the log still calls
running on this host, kills what is left of their groups and records them
interrupted the same way: none is left `running`.

Sandbox: a check runs code the agent wrote (a conftest.py, a test), so when runs
are sandboxed (the worker's decision: jobs/sandbox.active) it runs in the run's
sandbox, as its agent and setup commands do, with a HOME of its own for one
execution under .cocode/tmp/checks/ (its JUnit XML is written there), removed
once its result is read (and all of them at start: what a kill -9 left). With
`sandbox: bwrap` and no bubblewrap a check is recorded an error, never run bare.
Unsandboxed, this service is a child subreaper as the worker is, with the same
sweep (cocode.resources.reaper): a check's daemons, however they hide, die when
the check ends, and any left die when the service stops.

It also sends the `notify:` notifications (cocode.jobs.notify), the other thing
that follows a run's outcome: in a thread pool, never holding up the loop; what
fails after its retries is recorded as notify_failed. Only events that happened
since this process started are notified: a restart does not notify the history it
replays (nor what happened while it was down).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from cocode import envnames, gitops
from cocode.config import Config
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import queued_runs, running_checks
from cocode.core.service import Service
from cocode.jobs import agents, checks, sandbox
from cocode.jobs.checkrun import CheckProcess
from cocode.logs.shipper import Shipper
from cocode.paths import Paths
from cocode.resources import reaper
from cocode.resources.proctree import kill_stale_group
from cocode.runkey import RunKey

TICK_S = 0.02  # while checks run: exit and timeout polling
HEADS_EVERY_S = 0.5  # branch heads of ready runs (a ref file read each, ~3 µs)
HEADS_WINDOW_S = 24 * 3600  # runs that ended longer ago are not watched for new commits
SHUTDOWN_GRACE_S = 3.0
CHECKS_TMP = "checks"  # under .cocode/tmp: sandboxed checks' HOMEs, one per execution


class Checks(Service):
    name = "checks"

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__(paths, config)
        self.state = self.snapshot_state()
        self.host = socket.gethostname()
        self.names = list(config.checks)
        self.procs: dict[tuple[str, str, str], CheckProcess] = {}
        self.watchers: dict[tuple[str, str], gitops.BranchWatcher] = {}
        self.heads: dict[tuple[str, str], str | None] = {}
        self.recovered = False
        self.ticking = False
        self.pending = False
        self.notifier = None
        self.notified: set[tuple[str, str]] = set()
        self.born = time.time()
        self.sandbox: tuple[bool, str] | None = None  # (confine checks?, why), probed at the first
        self.git_common: Path | None = None

    def setup(self) -> None:
        self.reaper = reaper.Reaper()  # orphans of its checks re-parent here, not to init
        self.loop.every(1.0, self.reaper.reap)  # orphans that exited on their own
        self.shipper = Shipper(self.ctx, self.paths, self.config)
        self.shipper.attach(self.loop)
        self.follower = self.follow(self.on_event, after=self.state.seq,
                                    types=st.FOLDED_TYPES | {"limit_hit"})
        self.loop.every(HEADS_EVERY_S, self.poll_heads, first=HEADS_EVERY_S)
        self.loop.every(1.0, self.soon)  # catch-up and anything a burst left undecided
        if self.config.notify is not None:
            from cocode.jobs.notify import Sender

            self.notifier = Sender(self.config.notify, list(self.config.env_passthrough))
            self.loop.every(0.2, self.record_notify_failures)

    def heartbeat_info(self) -> dict:
        return {"running": len(self.procs)}

    # -- the log -----------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        st.apply(self.state, event)
        if self.notifier is not None and event.ts >= self.born:  # not the history a start replays
            self.notify(event)
        if isinstance(event, ev.CancelRequested):
            for p in list(self.procs.values()):
                if p.job == event.job and (not event.agent or p.agent == event.agent):
                    p.stop("cancelled", "the run was cancelled")
        elif isinstance(event, ev.LimitHit) and event.check:
            p = self.procs.get((event.job, event.agent, event.check))
            if p is not None:
                p.stop("failed", f"memory_limit_exceeded ({event.value:.0f} MB > {event.limit:.0f} MB)")
        if isinstance(event, (ev.RunReady, ev.RunFinished, ev.RunProgress, ev.CheckRequested,
                              ev.CheckFinished, ev.RunDispatched, ev.CancelRequested)):
            self.soon()

    def notify(self, event: ev.Event) -> None:
        from cocode.jobs import notify

        for n in notify.notices(event, self.state, self.names, self.notified):
            if self.notifier.wants(n):
                self.notifier.send(n)

    def record_notify_failures(self) -> None:
        from cocode.jobs import notify

        for f in self.notifier.results():
            self.log.warning("notification %s to %s failed: %s", f.notice.trigger, f.target, f.error)
            self.append(notify.failed_event(f))

    def soon(self) -> None:
        """Decide on the next loop turn, once for a burst of events."""
        if not self.pending:
            self.pending = True
            self.loop.call_later(0.0, self.decide)

    def poll_heads(self) -> None:
        """New commits on ready runs' branches (checks rerun at the new head). Only runs
        that may still change: not picked, ended within HEADS_WINDOW_S
        (a watcher's first read costs a `git rev-parse`; a long history must not)."""
        if not self.names:
            return
        moved, now = False, time.time()
        for job in self.state.jobs.values():
            if job.picked:
                continue
            for run in job.runs.values():
                if (not run.ready_commit or not run.branch or run.worktree_removed
                        or (run.ended_at is not None and now - run.ended_at > HEADS_WINDOW_S)):
                    continue
                key = (job.job, run.agent)
                w = self.watchers.get(key)
                if w is None:
                    try:
                        w = self.watchers[key] = gitops.BranchWatcher(self.paths.root, run.branch)
                    except Exception:
                        continue
                head = w.head()
                if head != self.heads.get(key):
                    self.heads[key], moved = head, True
        if moved:
            self.soon()

    # -- deciding -----------------------------------------------------------------------------

    def decide(self) -> None:
        self.pending = False
        if not self.recovered:
            # Recovery needs the whole log: which checks were left running. Later the
            # fold is whole at every event, so a follower mid-page need not be waited for.
            if not self.follower.caught_up:
                return
            self.recovered = True
            self.recover()
        if not self.names:
            return
        cap = self.config.limits.max_concurrent_agents
        live = sum(r.live for j in self.state.jobs.values() for r in j.runs.values())
        queued = len(queued_runs(self.state))
        for d in checks.due(self.state, self.names, self.heads):
            running = running_checks(self.state)
            if not checks.may_start(running, live, queued, cap):
                break
            self.start(d)

    def recover(self) -> None:
        shutil.rmtree(self.paths.tmp / CHECKS_TMP, ignore_errors=True)  # none runs yet
        for job, agent, c in checks.stale(self.state, self.host, set(self.procs)):
            if c.pgid:
                worktree = self.state.jobs[job].runs[agent].worktree
                kill_stale_group(c.pgid, worktree)
            self.log.info("check %s of %s/%s was cut off by a restart: interrupted", c.name, job, agent)
            self.append(ev.CheckFinished(job=job, agent=agent, name=c.name, commit=c.commit,
                                         status="interrupted", reason="the checks service restarted"))

    def start(self, d: checks.Due) -> None:
        run = self.state.jobs[d.job].runs[d.agent]
        prev = run.checks.get(d.name)
        execution = (prev.execution if prev else 0) + 1
        spec = self.config.checks[d.name]
        if not d.worktree or run.worktree_removed or not os.path.isdir(d.worktree):
            self.record_unstartable(d, execution, f"the run's worktree {d.worktree or '(none)'} was removed")
            return
        if self.sandbox is None:
            self.sandbox = sandbox.active(self.config.sandbox)  # one bwrap probe, as the worker's
        if not self.sandbox[0] and self.config.sandbox == "bwrap":
            self.record_unstartable(d, execution, f"sandbox: bwrap, but {self.sandbox[1]}: "
                                    "a check runs the agent's code and is never run unconfined")
            return
        log = RunKey(d.job, d.agent).check_log(d.name)
        ship = self.shipper.open(log.job, log.agent, execution)
        env = agents.inherited_env(os.environ, list(self.config.env_passthrough))  # as agents get it
        # COCODE_AGENT_NAME is the check's identity as the monitor and the logs know it:
        # what escapes the check's session is found by it (cocode.resources.proctree).
        env.update({envnames.JOB_ID: d.job, envnames.AGENT_NAME: log.agent, envnames.CHECK_AGENT: d.agent,
                    envnames.REPO_PATH: d.worktree, "GIT_TERMINAL_PROMPT": "0"})
        scratch, confine = self.confinement(d, env) if self.sandbox[0] else (None, None)
        p = CheckProcess(d.job, d.agent, d.name, spec.command, d.worktree, d.commit,
                         spec.timeout or self.config.limits.check_timeout, env,
                         lambda data: ship.output("check", 0, data), confine, scratch)
        p.ship = ship  # type: ignore[attr-defined]
        p.sweep = lambda p=p: self.sweep(p)
        try:
            p.start()
        except OSError as err:
            ship.close()
            self.drop_scratch(p)
            self.record_unstartable(d, execution, f"cannot start: {err.strerror}")
            return
        self.procs[p.key] = p
        self.loop.add(p.fd, lambda p=p: self.on_output(p))
        self.append(ev.CheckStarted(job=d.job, agent=d.agent, name=d.name, commit=d.commit,
                                    pid=p.pgid, pgid=p.pgid, host=self.host, execution=execution))
        st.apply(self.state, ev.CheckStarted(  # counted at once: the next due() must see it
            job=d.job, agent=d.agent, name=d.name, commit=d.commit, pgid=p.pgid, host=self.host,
            execution=execution, seq=self.state.seq))
        self.arm()

    def confinement(self, d: checks.Due, env: dict[str, str]):
        """(scratch directory, confine) for a check in the run's sandbox: the run's
        workspace writable, the scratch directory its HOME (sandbox.RUN_HOME)."""
        base = self.paths.tmp / CHECKS_TMP
        base.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{RunKey(d.job, d.agent).dir_name}-", dir=base))
        if self.git_common is None:
            self.git_common = gitops.git_common_dir(self.paths.root)
        root, worktree, git_common, home = self.paths.root, Path(d.worktree), self.git_common, os.environ.get("HOME")

        def confine(argv: list[str]) -> list[str]:
            return sandbox.wrap(argv, root=root, worktree=worktree, git_common=git_common, job=d.job,
                                issue_file=None, home=home, run_home=scratch, env=env)
        return scratch, confine

    @staticmethod
    def drop_scratch(p: CheckProcess) -> None:
        if p.scratch is not None:
            shutil.rmtree(p.scratch, ignore_errors=True)

    def record_unstartable(self, d: checks.Due, execution: int, reason: str) -> None:
        started = ev.CheckStarted(job=d.job, agent=d.agent, name=d.name, commit=d.commit,
                                  host=self.host, execution=execution)
        finished = ev.CheckFinished(job=d.job, agent=d.agent, name=d.name, commit=d.commit,
                                    status="error", reason=reason, summary=reason)
        for e in (started, finished):
            self.append(e)
            st.apply(self.state, e)  # not due again until something changes

    # -- running ------------------------------------------------------------------------------

    def on_output(self, p: CheckProcess) -> None:
        fd = p.fd
        if not p.on_output() and fd is not None:
            self.loop.remove(fd)

    def arm(self) -> None:
        if not self.ticking:
            self.ticking = True
            self.loop.call_later(TICK_S, self.tick)

    def tick(self) -> None:
        self.ticking = False
        now = time.monotonic()
        for key, p in list(self.procs.items()):
            p.tick(now)
            if p.finished:
                self.finish(p)
        if self.procs:
            self.arm()

    def finish(self, p: CheckProcess) -> None:
        fd = p.fd
        if fd is not None:
            self.loop.remove(fd)
        p.close()
        p.ship.close()  # type: ignore[attr-defined]
        del self.procs[p.key]
        r = p.result()
        self.drop_scratch(p)
        self.log.info("check %s of %s/%s: %s (%s)", p.name, p.job, p.agent, r["status"], r["summary"])
        self.append(ev.CheckFinished(job=p.job, agent=p.agent, name=p.name, commit=p.commit, **r))

    def sweep(self, p: CheckProcess) -> None:
        """Kill what is left of a check that ends (daemons included), before its end is recorded."""
        others = [q for q in self.procs.values() if q is not p]
        killed = self.reaper.sweep(p.job, p.env[envnames.AGENT_NAME], p.pgid, {q.pgid for q in others},
                                   {(q.job, q.env[envnames.AGENT_NAME]) for q in others})
        if killed:
            self.log.info("check %s of %s/%s: killed %d processes it left running", p.name, p.job, p.agent, killed)

    def teardown(self) -> None:
        """Stopping (`down`): checks are killed and recorded interrupted, to rerun."""
        for p in self.procs.values():
            p.stop("interrupted", "cocode stopped")
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        while any(p.proc.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        for p in list(self.procs.values()):
            p.kill(signal.SIGKILL)
            p.proc.wait()
            while p.fd is not None and p.on_output():
                pass
            self.finish(p)
        killed = self.reaper.sweep_all()  # nothing any check started outlives the service
        if killed:
            self.log.info("stopping: killed %d processes checks left running", killed)
        self.shipper.close()
        if self.notifier is not None:
            self.notifier.close()


def main(paths: Paths, config: Config) -> int:
    return Checks(paths, config).run()
