"""One agent run on this host: its process group, its output, its ready commit,
its time limit, and its end.

The worker owns a RunProcess per running agent and drives it from its loop:
`on_output(fd)` when a pipe is readable, `tick()` every few milliseconds. The
run reports through two callbacks: `emit(event)` for the log and
`output(stream, offset, data)` for every chunk of ≤ 4 KB the agent writes.
A run always ends in exactly one run_finished event, and its process group is
dead by then, with whatever left the group (`sweep`, the worker's reaper): no
orphan works on in a worktree, nor anywhere else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cocode import gitops
from cocode.errors import CocodeError
from cocode.jobs import agents
from cocode.jobs import timeouts
from cocode.core import events as ev
from cocode.resources import reaper
from cocode.runkey import RunKey

CHUNK = 4096
READY_GRACE_S = 3.0  # an agent may still exit on its own after its ready commit
PIPE_DRAIN_S = 2.0  # after exit, output still owed by an escaped process is given up
# A signal nobody here sent (the monitor's, after its limit_hit): wait this long for
# that event to arrive before settling the run, so it ends with the monitor's reason.
OUTSIDE_KILL_SETTLE_S = 1.0


@dataclass
class RunPlan:
    """Everything needed to start one run, resolved before any process exists."""

    job: str
    agent: str
    attempt: int
    repo_root: Path
    worktree: Path
    branch: str
    base_sha: str
    command: list[str]
    env: dict[str, str]
    body_file: Path
    base_timeout_s: int
    complexity: str = "simple"
    worktree_mb: float = 0.0
    light: bool = False
    clone: bool = False  # its own clone (gitops.clones): the worker takes each head into repo_root
    worker: str = ""
    worktree_ms: float = 0.0
    format: str = "text"  # how its stdout is read (config AgentSpec.format)
    setup_output: bytes = b""  # config setup:'s output, the first thing in the run's log
    setup_ms: float = 0.0
    max_cost_usd: float = 0.0  # 0: no budget
    watch_from: str = ""  # a follow-up: only commits after this one can be its ready commit
    sandboxed: bool = False  # `command` is wrapped in bubblewrap (jobs/sandbox.py)

    @property
    def run(self) -> RunKey:
        return RunKey(self.job, self.agent)


@dataclass
class RunProcess:
    plan: RunPlan
    emit: Callable[[ev.Event], None]
    output: Callable[[str, int, bytes], None]
    proc: subprocess.Popen | None = None
    pgid: int = 0
    started: float = 0.0
    deadline: float = 0.0
    timeout_s: int = 0
    offset: int = 0
    head: str | None = None
    ready_commit: str | None = None
    ready_at: float = 0.0
    stop_reason: tuple[str, str] | None = None  # (final state, reason) once we stop it
    term_sent: float = 0.0
    backstop: float = 0.0  # stopped by another process: SIGKILL here if it has not ended by then
    killed: bool = False
    exited_at: float = 0.0
    last_line: str = ""
    finished: bool = False
    commits: int = 0
    why: str = ""  # the run's own failure reason, said instead of the agent's last line
    retry_at: float = 0.0  # reading the branch failed: not again before this
    git_error: str = ""
    streams: dict[int, str] = field(default_factory=dict)
    # Kills what of the run left its group (the worker's reaper): with every SIGKILL.
    sweep: Callable[[], object] | None = None

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        p = self.plan
        # A run's own clone (or light workspace) keeps its refs in its .git directory: said
        # here, not asked of `git rev-parse` on the worker's loop right before the agent starts.
        own = p.light or p.clone
        self.watcher = gitops.BranchWatcher(p.worktree if own else p.repo_root, p.branch,
                                            common=p.worktree / ".git" if own else None)
        self.proc = subprocess.Popen(
            p.command, cwd=p.worktree, env=p.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # its own session and process group: killable as one
            preexec_fn=reaper.preexec(p.sandboxed),  # unconfined, its orphans stay under it
        )
        self.pgid = self.proc.pid
        self.started = time.monotonic()
        self.timeout_s = timeouts.run_timeout(p.base_timeout_s, p.complexity, p.worktree_mb)
        self.deadline = self.started + self.timeout_s
        # From the base, not the branch's head: a requeued run's earlier commits, a ready
        # one included, are counted (and found) on the first tick.
        self.head = p.watch_from or p.base_sha
        if p.watch_from:
            self.commits = gitops.count_commits(p.worktree if p.light else p.repo_root, p.base_sha, p.watch_from)
        for f, name in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr")):
            os.set_blocking(f.fileno(), False)
            self.streams[f.fileno()] = name
        self.emit(ev.RunStarted(
            job=p.job, agent=p.agent, worker=p.worker, pid=self.proc.pid, pgid=self.pgid,
            worktree=str(p.worktree), branch=p.branch, base_sha=p.base_sha, attempt=p.attempt,
            timeout_s=self.timeout_s, worktree_ms=p.worktree_ms, worker_pid=os.getpid(),
            setup_ms=p.setup_ms,
        ))

    @property
    def fds(self) -> list[int]:
        return list(self.streams)

    @property
    def key(self) -> str:
        return self.plan.run.key

    # -- output ------------------------------------------------------------------------

    def on_output(self, fd: int) -> bool:
        """Read what is there; False at end of file (the caller stops polling fd)."""
        name = self.streams.get(fd)
        if name is None:
            return False
        for _ in range(8):  # bounded (32 KB), so one chatty agent cannot delay the others
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                del self.streams[fd]
                return False
            self.output(name, self.offset, data)
            self.offset += len(data)
            self.remember_last_line(data)
        return True

    def remember_last_line(self, data: bytes) -> None:
        # Only the chunk's tail is looked at: this runs for every 4 KB an agent writes.
        tail = data[-512:].rstrip()
        if tail:
            line = tail.rsplit(b"\n", 1)[-1]
            # Kept longer than the 200 characters shown: the worker redacts it, then clips,
            # so a token the clip would cut in two is still seen whole (about 255 at most).
            self.last_line = line[-512:].decode("utf-8", errors="replace").strip()

    # -- watching ----------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        if self.finished:
            return
        now = time.monotonic() if now is None else now
        self.check_branch(now)
        if self.proc.poll() is not None:
            if not self.exited_at:
                self.exited_at = now
                self.kill_group(signal.SIGKILL)  # what it left in its group would hold the pipes
            if not self.streams or now - self.exited_at > PIPE_DRAIN_S:
                code = self.proc.returncode  # killed, or exited 128+N on a signal
                if (self.stop_reason is None and (code < 0 or code > 128)
                        and now - self.exited_at < OUTSIDE_KILL_SETTLE_S):
                    return
                self.finish()
            return
        if self.ready_commit and not self.stop_reason and now - self.ready_at > READY_GRACE_S:
            self.stop("ready", "ready")
        elif not self.stop_reason and now > self.deadline:
            self.stop("failed", "timeout_exceeded")
        elif self.term_sent and not self.killed and now - self.term_sent > timeouts.CANCEL_GRACE_S:
            self.kill_group(signal.SIGKILL)
            self.killed = True
        elif self.backstop and not self.killed and now > self.backstop:
            self.kill_group(signal.SIGKILL)
            self.killed = True

    def check_branch(self, now: float) -> None:
        """Read the branch head (a file read); when it moved, look at the new commits:
        the ready commit is recorded first, then the run's progress."""
        head = self.watcher.head()
        if head is None or head == self.head or now < self.retry_at:
            return
        t0 = time.perf_counter()
        p = self.plan
        repo = p.worktree if p.light else p.repo_root
        # Three git processes (a clone's: the fetch, then one `git log`, then update-ref)
        # between the commit and run_ready; the line count waits until it is recorded.
        try:
            if p.clone:
                gitops.fetch_head(p.repo_root, p.worktree, head)
            hist = gitops.read_history(repo, p.watch_from or p.base_sha, head, agents.READY_MARKER)
            if p.watch_from and p.watch_from != p.base_sha:  # a follow-up: its own work is from the base
                hist = gitops.History(gitops.descends_from(repo, p.base_sha, head), hist.ready,
                                      gitops.count_commits(repo, p.base_sha, head))
            if p.clone and hist.descends:
                gitops.move_branch(p.repo_root, p.branch, head)
        except CocodeError as err:  # git failed (load, or a ref naming no commit): later
            self.retry_at = now + 1.0
            if err.message != self.git_error:
                self.git_error = err.message
                self.emit(ev.WarningEvent(job=p.job, agent=p.agent, code="branch_unreadable", message=err.message))
            return
        self.head = head
        if not hist.descends:
            # Not this run's work: its branch was moved (another process's update-ref)
            # or reset below its base. Whatever the commits there claim, it is no
            # ready commit of this run, and the run cannot go on from it.
            self.ready_commit = None
            if not self.why:
                self.why = (f"{p.branch} was moved to {head[:12]}, which does not descend from "
                            f"the run's base {p.base_sha[:12]}: not this run's work")
                self.stop_reason = None
                self.stop("failed", "not_from_base")
            return
        if not self.ready_commit and hist.ready:
            self.ready_commit, self.ready_at = hist.ready, now
            self.emit(ev.RunReady(job=p.job, agent=p.agent, commit=hist.ready, attempt=p.attempt,
                                  detect_ms=(time.perf_counter() - t0) * 1000))
        self.commits = hist.commits
        try:
            lines = gitops.changed_lines(repo, p.base_sha, head)
        except CocodeError:
            lines = 0  # the commit is taken; the count is a hint for the time limit only
        grown = timeouts.run_timeout(p.base_timeout_s, p.complexity, p.worktree_mb, lines)
        if grown > self.timeout_s:
            self.deadline += grown - self.timeout_s
            self.timeout_s = grown
        self.emit(ev.RunProgress(job=p.job, agent=p.agent, head=head, commits=self.commits,
                                 changed_lines=lines, timeout_s=self.timeout_s, attempt=p.attempt))

    # -- ending ------------------------------------------------------------------------

    def kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if sig == signal.SIGKILL and self.sweep is not None:
            self.sweep()  # daemons: their own session, re-parented to the worker

    def stopped_by_other(self, state: str, reason: str, grace: float) -> None:
        """Someone else stops this run (the monitor, over its memory limit): record
        the outcome it will end with. The signals are theirs to send; should the
        run outlive their `grace`, the group is killed here a little later."""
        if self.stop_reason is None:
            self.stop_reason = (state, reason)
        if not self.backstop:
            self.backstop = time.monotonic() + grace + timeouts.CANCEL_GRACE_S

    def stop(self, state: str, reason: str) -> None:
        """SIGTERM the whole group now; SIGKILL follows after CANCEL_GRACE_S (tick)."""
        if self.stop_reason is None:
            self.stop_reason = (state, reason)
        if not self.term_sent:
            self.term_sent = time.monotonic()
            self.kill_group(signal.SIGTERM)

    def finish(self) -> None:
        """The agent exited: settle the run once, and leave nothing of it running."""
        if self.finished:
            return
        self.finished = True
        self.kill_group(signal.SIGKILL)  # whatever it left behind in its group
        self.check_branch(time.monotonic())
        code = self.proc.returncode
        p = self.plan
        lost = self.recheck_ready_commit()
        if lost:
            state, reason = "failed", "ready_commit_lost"
            self.last_line = f"its ready commit {lost[:12]} is no longer on {p.branch}"
        elif self.ready_commit and (self.stop_reason is None or self.stop_reason[0] == "ready"):
            state, reason = "ready", None
        elif self.stop_reason:
            state, reason = self.stop_reason
        else:
            state, reason = "failed", agents.reason_for_exit(code, None)
        if p.light and self.head:
            try:
                gitops.fetch_back(p.repo_root, p.worktree, p.branch)
            except Exception as err:  # the commits stay in the workspace; say so
                self.emit(ev.WarningEvent(job=p.job, agent=p.agent, code="fetch_back_failed",
                                          message=str(err)))
        try:
            p.body_file.unlink()
        except FileNotFoundError:
            pass
        self.emit(ev.RunFinished(
            job=p.job, agent=p.agent, state=state, reason=reason,
            exit_code=code if code is None or code >= 0 else 128 - code,
            commits=self.commits, ready_commit=self.ready_commit, head=self.head,
            detail="" if state == "ready" else (self.why or self.last_line), attempt=p.attempt,
        ))

    def recheck_ready_commit(self) -> str | None:
        """At the end: is the ready commit still on the branch? An agent may reset it
        away after announcing it (or amend it: then the new one counts). Returns the
        lost commit, if it was lost."""
        if not self.ready_commit or not self.head:
            return None
        p = self.plan
        repo = p.worktree if p.light else p.repo_root
        if gitops.count_commits(repo, self.head, self.ready_commit) == 0:
            return None  # still an ancestor of the branch's head
        still = gitops.find_ready_commit(repo, p.watch_from or p.base_sha, self.head, agents.READY_MARKER)
        lost, self.ready_commit = (self.ready_commit if still is None else None), still
        return lost

    def close(self) -> None:
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
