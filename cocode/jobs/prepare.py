"""Preparing one agent run on this host, off the worker's loop (a checkout takes
~0.2 s): its workspace (from the pool, or its own clone, or a light workspace), its
issue file, its allowlisted environment, its command (a follow-up's resume, the
sandbox around it) and its setup commands. What comes out is the RunPlan the
runner executes; what goes wrong is a PrepareFailed with the run's reason.

The worker owns the sockets and the fold; this module reads what it is given
(`Preparing`) and the job's submission from the store (`fetch_job`), and touches
the filesystem and git.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cocode import gitops
from cocode.config import AgentSpec, Config
from cocode.core import events as ev
from cocode.core import wire
from cocode.core.sockets import dealer
from cocode.errors import CocodeError
from cocode.jobs import agents, followup, sandbox, setup
from cocode.jobs.pool import PoolKeeper
from cocode.jobs.runner import RunPlan
from cocode.paths import Paths
from cocode.runkey import RunKey


class PrepareFailed(Exception):
    def __init__(self, reason: str, message: str, output: bytes = b"", attempt: int = 1):
        super().__init__(message)
        self.reason, self.output, self.attempt = reason, output, attempt


@dataclass
class Preparing:
    """What preparing a run needs from its worker."""

    paths: Paths
    config: Config
    agents: dict[str, AgentSpec]
    pool: PoolKeeper
    lock: threading.Lock  # workspaces are made one at a time (git's bookkeeping)
    tmp: Path
    sandboxed: bool
    sandbox_why: str
    worker_id: str


def prepare_run(w: Preparing, msg: wire.Dispatch, job: ev.JobSubmitted, view, room: int, t0: float) -> RunPlan:
    """The run's RunPlan; `view()` is the run as the worker's fold has it (a follow-up's
    session and turn), `t0` when preparing began (for the workspace's time)."""
    spec = w.agents.get(agents.base_name(msg.agent, w.agents))  # claude-2 of claude:3 is claude
    if spec is None:
        raise PrepareFailed("bad_config", f"agent {msg.agent!r} is not configured on this worker")
    root = w.paths.root
    run = RunKey(msg.job, msg.agent)
    worktree = run.worktree(w.paths)
    branch = run.branch
    try:
        # git's own worktree bookkeeping (.git/worktrees/) is not safe for concurrent
        # `worktree add` in one repository: prepare threads take turns here.
        with w.lock:
            if not w.pool.take(worktree, branch, job.base_sha, room, pooled=not job.light):
                make_workspace(job, root, worktree, branch)
    except CocodeError as err:
        raise PrepareFailed("worktree_failed", err.message) from None
    body_file = run.issue_file(w.tmp)
    body_file.write_text(f"# {job.title}\n\n{job.body}\n")
    env = agents.build_env(
        worktree=worktree, job_id=msg.job, agent_name=msg.agent,
        issue_number=job.issue_number, issue_url=job.issue_url or f"file://{body_file}",
        issue_body_file=body_file, agent_env=spec.env,
        passthrough=list(w.config.env_passthrough) + list(spec.passthrough),
        parent_env=os.environ,
    )
    run_home = run.run_home(w.tmp)
    # A sandboxed agent's session lives in its run's HOME: gone (cocode clean), none to resume.
    turn = followup.plan_for(gitops, spec, view(), msg.attempt, job, root, branch, w.paths.logs,
                             session_kept=not w.sandboxed or run_home.is_dir())
    if w.config.sandbox == "bwrap" and not w.sandboxed:
        body_file.unlink(missing_ok=True)
        raise PrepareFailed("sandbox_unavailable", f"sandbox: bwrap, but {w.sandbox_why}")
    command = agents.render_command(
        turn.command, turn.prompt,
        # {git_common_dir}: where the run's commits go, its own clone's (or light workspace's) .git.
        {"worktree": str(worktree), "git_common_dir": str(worktree / ".git"),
         "session_id": turn.session_id,
         "git_dir": str(agents.workspace_git_dir(worktree)),
         "allowed_tools": ",".join(spec.allowed_tools),
         "issue_body_file": str(body_file), "marker": agents.READY_MARKER,
         # codex's own sandbox cannot nest in ours (MEASURED.md): ours confines it instead.
         "codex_sandbox": "danger-full-access" if w.sandboxed else "workspace-write"},
    )
    missing = agents.missing_binary(command, env.get("PATH"))
    if missing:
        body_file.unlink(missing_ok=True)
        raise PrepareFailed("missing_dependency", f"{missing} is not on PATH")
    confine = None
    if w.sandboxed:
        run_home.mkdir(mode=0o700, exist_ok=True)
        git_common = w.pool.pool.common  # the pool's, asked of git once: not a process per run

        def confine(argv: list[str]) -> list[str]:
            return sandbox.wrap(argv, root=root, worktree=worktree, git_common=git_common, job=msg.job,
                                issue_file=body_file, home=os.environ.get("HOME"), run_home=run_home, env=env)
    try:
        # setup: runs where the agent will: in its sandbox, with its HOME and /tmp.
        setup_out, setup_ms = setup.prepare(w.config, gitops, root, worktree, env, confine)
    except setup.SetupFailed as err:
        body_file.unlink(missing_ok=True)
        raise PrepareFailed("setup_failed", str(err), err.output, msg.attempt) from None
    if confine is not None:
        command = confine(command)
    return RunPlan(
        job=msg.job, agent=msg.agent, attempt=msg.attempt, repo_root=root, worktree=worktree,
        branch=branch, base_sha=job.base_sha, command=command, env=env, body_file=body_file,
        base_timeout_s=job.timeout_s or spec.timeout or w.config.limits.agent_timeout,
        complexity=job.complexity, worktree_mb=job.worktree_mb, light=job.light, clone=not job.light,
        worker=w.worker_id, worktree_ms=(time.perf_counter() - t0) * 1000 - setup_ms, format=spec.format,
        setup_output=setup_out, setup_ms=setup_ms,
        max_cost_usd=job.max_cost_usd or spec.max_cost_usd or w.config.max_cost_usd or 0.0,
        watch_from=turn.watch_from, sandboxed=confine is not None,
    )


def fetch_job(ctx, store_endpoint: str, seq: int) -> ev.JobSubmitted:
    """The job's submission event, read from the store (runs in a prepare thread)."""
    sock = dealer(ctx, store_endpoint)
    try:
        for _ in range(10):
            sock.send(wire.encoder.encode(wire.Sync(after=seq - 1, limit=1)))
            if sock.poll(2000):
                page = wire.reply_decoder.decode(sock.recv())
                if isinstance(page, wire.Page) and page.events:
                    event = ev.decode(page.events[0])
                    if isinstance(event, ev.JobSubmitted):
                        return event
                raise PrepareFailed("bad_job", f"event {seq} is not a job submission")
    finally:
        sock.close(0)
    raise PrepareFailed("store_unavailable", "the store did not answer for 20 s")


def make_workspace(job: ev.JobSubmitted, root: Path, worktree: Path, branch: str) -> None:
    if job.light:
        gitops.create_light_workspace(root, worktree, branch, job.base_sha, job.sparse or None)
    else:
        # Its own clone, not a linked worktree: refs no other run can write (issue 11).
        gitops.create_run_clone(root, worktree, branch, job.base_sha)
