"""What a key in `cocode top` does to cocode: the same calls the CLI commands make
(`cocode submit`, `cancel`, `diff`, `say`, `pick`), so the view can do nothing a command cannot.
Blocking; the app runs them in a worker thread.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from cocode import client
from cocode.config import RANK_KEYS
from cocode.errors import CocodeError
from cocode.paths import Paths


def agent_names(config) -> list[str]:
    """The agents a job may name, configured ones first (the submit picker's list)."""
    from cocode.jobs import agents

    names = list(config.default_agents) if config is not None else []
    table = agents.merge_agents(config.agents) if config is not None else {}
    return names + [n for n in table if n not in names]


def submit(paths: Paths, config, text: str, names: list[str]) -> tuple[str, list[str]]:
    """`cocode submit --text TEXT --agent A ...`: the new job's id, and the warnings
    the CLI prints with it (a large repository, a cap that makes runs wait, ...)."""
    from cocode.jobs import submit as sub

    issue = sub.issue_from_text(text, source="the issue")
    resolved = sub.resolve_agents(tuple(names), config)
    event, warnings = sub.build_job(paths, config, issue, resolved)
    if not client.is_running(paths):
        raise client.not_running(paths)
    client.append_one(paths, event)
    return event.job, warnings


def cancel(paths: Paths, job: str, agent: str | None) -> str:
    """`cocode cancel JOB [AGENT] --no-wait`."""
    client.cancel(paths, job, agent)
    return f"cancel of {job}{'/' + agent if agent else ''} recorded"


def diff(paths: Paths, job: str, agent: str) -> str:
    """`cocode diff JOB AGENT`."""
    return client.run_diff(paths, job, agent)[1]


def say_plan(paths: Paths, config, job: str, agent: str, message: str):
    """What `cocode say JOB AGENT MESSAGE` would do now: its event (built by the CLI's own
    followup.request, so the same checks refuse it) and the confirmation's words."""
    from cocode.jobs import agents, followup

    state = client.current_state(paths)
    event = followup.request(state, job, agent, message)
    run = state.jobs[job].runs[agent]
    spec = agents.merge_agents(config.agents).get(agent) if config is not None else None
    if spec is not None and spec.resume and run.session_id:
        how = f"resuming the agent's own session {run.session_id} with your message"
    elif spec is not None:
        how = "a new prompt: the issue, the end of its output so far, and your message"
    else:
        how = "resuming its session if the agent can, else a new prompt with its output so far"
    text = (f"cocode say {job} {agent} {shlex.quote(event.message)}\n\n"
            f"{job}/{agent} (now {run.state}) runs again as attempt {event.attempt}, in the same worktree "
            f"{run.worktree or '(none)'} and branch cocode/{job}/{agent}: {how}. Only commits made after "
            "this count as ready.")
    return event, text


def say(paths: Paths, event) -> str:
    """`cocode say`'s second half: append the follow-up (cocode must be up)."""
    if not client.is_running(paths):
        raise client.not_running(paths)
    client.append_one(paths, event)
    return f"{event.job}/{event.agent}: follow-up queued as attempt {event.attempt}"


def pick_plan(paths: Paths, config, job: str, agent: str):
    """What `cocode pick JOB AGENT` would do now: its choice (review.choose, so the same
    refusals) and the confirmation's words, `cocode pick --dry-run`'s own text."""
    from cocode.jobs import review

    timeout = config.limits.git_timeout if config is not None else 60
    order = config.rank_by if config is not None else list(RANK_KEYS)
    p = review.choose(client.current_state(paths), paths.root, job, agent, "merge", False, order)
    what = review.what_pick_does(p)
    text = (f"cocode pick {job} {agent}\n\n{review.dry_run(paths.root, p, timeout)}\n\n"
            f"y will {what}, record it, and release the other runs' worktrees (their branches stay).")
    return p, text


def pick(paths: Paths, config, p) -> str:
    """`cocode pick`'s second half, confirmed (cocode must be up to record it)."""
    from cocode.jobs import review

    if not client.is_running(paths):
        raise client.not_running(paths)
    said: list[str] = []
    review.execute(paths.root, p, config.limits, lambda event: client.append_one(paths, event), said.append)
    return "; ".join(said)


def editor_command(path: str) -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise CocodeError("set $EDITOR (or $VISUAL) to open a worktree; `y` copies its path instead")
    return [*shlex.split(editor), path]


def open_in_editor(path: str) -> int:
    """Run $EDITOR on the path, in the foreground (the app is suspended meanwhile)."""
    if not path or not os.path.isdir(path):
        raise CocodeError(f"the worktree {path or '(none yet)'} does not exist (not started, or cleaned)")
    return subprocess.call(editor_command(path))
