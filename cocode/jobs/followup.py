"""Follow-ups (`cocode say JOB AGENT MESSAGE`) and resumed sessions.

A follow-up is one more turn for a finished run: the run is queued again as its next
attempt (event follow_up_requested), in the same worktree and branch, with its own
timeout. An agent whose spec has a `resume` command and that reported a session
(agent_session) continues that session with the message as its prompt; any other
command gets a new prompt: the issue, its output so far, and the message. A run
requeued after a crash resumes its session the same way, told to continue.

Pure apart from the caller's reads: what to run is decided here, the worker runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from cocode.config import AgentSpec
from cocode.core import events as ev
from cocode.errors import CocodeError, ConfigError
from cocode.jobs.agents import READY_MARKER, build_prompt

MESSAGE_MAX = 64 * 1024
HISTORY_MAX = 24 * 1024  # of a run's earlier output, the last this many bytes go into a new prompt


def request(state, job_id: str, agent: str, message: str) -> ev.FollowUpRequested:
    """The event for `cocode say`, or a one-line error saying what to do instead."""
    if not message.strip():
        raise ConfigError("the message is empty; say what the agent should do next")
    if len(message.encode()) > MESSAGE_MAX:
        raise ConfigError(f"the message is over {MESSAGE_MAX // 1024} KB; put the details in a file in the repository")
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    run = job.runs.get(agent)
    if run is None:
        raise CocodeError(f"job {job_id} has no agent {agent!r} (its agents: {', '.join(job.agents)})")
    if not run.final:
        raise CocodeError(f"{job_id}/{agent} is {run.state}; `cocode say` continues a finished run "
                          f"(wait for it, or `cocode cancel {job_id} {agent}` first)")
    if run.worktree_removed:
        raise CocodeError(f"{job_id}/{agent}'s worktree was removed (cocode clean); its branch "
                          f"cocode/{job_id}/{agent} is still there to work on by hand")
    return ev.FollowUpRequested(job=job_id, agent=agent, message=message.strip(), attempt=run.attempt + 1)


@dataclass
class Turn:
    """What the worker starts for one attempt: which command template, with what
    prompt, and from which commit a ready commit counts ('' = from the base)."""

    command: list[str]
    prompt: str
    resumed: bool = False
    watch_from: str = ""
    session_id: str = ""


def _rules(marker: str) -> str:
    return (f'When you are done, commit with a message containing the line "{marker}"; '
            "if you cannot do it, say why and stop without that line.")


def plan_turn(spec: AgentSpec, run, attempt: int, title: str, body: str, history: bytes, head: str) -> Turn:
    """The command and prompt for `attempt` of `run` (a RunView, or None before any)."""
    prompt = build_prompt(title, body)
    session = run.session_id if run is not None else ""
    if run is not None and run.follow_up and run.follow_up_attempt == attempt:
        if spec.resume and session:
            return Turn(spec.resume, f"{run.follow_up}\n\n{_rules(READY_MARKER)}", True, head)
        earlier = history[-HISTORY_MAX:].decode("utf-8", errors="replace")
        return Turn(spec.command, (
            f"{prompt}\n\nYou worked on this before, in this worktree and branch; your commits are there. "
            f"The end of your output then:\n\n{earlier}\n\nNow, from the user:\n\n{run.follow_up}\n\n"
            f"{_rules(READY_MARKER)}\n"), False, head)
    if attempt > 1 and spec.resume and session:
        return Turn(spec.resume, "You were interrupted (cocode or the machine restarted). Continue where you "
                                 f"left off; your commits so far are on this branch. {_rules(READY_MARKER)}", True)
    return Turn(spec.command, prompt)


def plan_for(gitops, spec: AgentSpec, run, attempt: int, job, root, branch: str, logs_dir,
             session_kept: bool = True) -> Turn:
    """plan_turn with what it needs read: the branch's tip and, for a new prompt, the
    end of the run's log (this host's collector files). Without `session_kept` (the
    agent's state went with its sandbox HOME) no session is resumed."""
    if run is not None and run.session_id and not session_kept:
        run = msgspec.structs.replace(run, session_id="")
    history, head = b"", ""
    if run is not None and run.follow_up and run.follow_up_attempt == attempt:
        head = gitops.resolve_commit(root, f"refs/heads/{branch}")
        if not (spec.resume and run.session_id):
            from cocode.logs.files import RunFiles

            files = RunFiles(logs_dir, job.job, run.agent)
            manifest = files.read_manifest()
            history = files.tail_bytes(manifest, HISTORY_MAX)[1] if manifest else b""
    turn = plan_turn(spec, run, attempt, job.title, job.body, history, head)
    turn.session_id = run.session_id if run is not None else ""
    return turn
