"""Shell completion of job ids and agent names: click's `shell_complete` callbacks.

The shell runs `cocode` with `_COCODE_COMPLETE=bash_complete|zsh_complete|fish_complete`
on every TAB (docs/cli.md shows how to install it). The state comes from
cocode.client.current_state: through the store when cocode runs, else from the
SQLite file. A TAB must never print a traceback into the shell's line, so every
failure (no repository, a bad config, no log yet, cocode stopping) completes nothing.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from cocode.paths import Paths, find_repo_root


def _paths(ctx: click.Context) -> Paths:
    # The group's callback has not run during completion: -C is only in its params.
    return Paths(find_repo_root(ctx.find_root().params.get("directory")))


def _state(ctx: click.Context):
    from cocode import client

    return client.current_state(_paths(ctx))


def _matching(names, incomplete: str, helps: dict[str, str] | None = None) -> list[CompletionItem]:
    return [CompletionItem(n, help=(helps or {}).get(n) or None) for n in names if n.startswith(incomplete)]


def complete_job(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Job ids, newest first, each with its issue title as the description."""
    try:
        jobs = sorted(_state(ctx).jobs.values(), key=lambda j: -j.seq)
        return _matching([j.job for j in jobs], incomplete, {j.job: j.title for j in jobs})
    except Exception:  # noqa: BLE001 - see the module docstring
        return []


def complete_run_agent(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """The agents of the job already on the line (JOB is the first argument)."""
    try:
        job = _state(ctx).jobs.get(ctx.params.get("job_id") or "")
        if job is None:
            return []
        taken = ctx.params.get(param.name) or ()
        taken = taken if isinstance(taken, (tuple, list)) else ()
        return _matching([a for a in job.agents if a not in taken], incomplete,
                         {a: job.runs[a].state for a in job.agents})
    except Exception:  # noqa: BLE001 - see the module docstring
        return []


def complete_agent(ctx: click.Context, param, incomplete: str) -> list[CompletionItem]:
    """Agents `submit --agent` accepts: the config file's, then the built-in presets."""
    try:
        from cocode.jobs.agents import PRESETS

        presets = list(PRESETS)
    except Exception:  # noqa: BLE001 - see the module docstring
        presets = []
    try:
        from cocode.configload import load_config

        config = load_config(_paths(ctx).config, ctx.find_root().params.get("profile"),
                             builtin_agents=presets)
        configured = list(config.agents)
    except Exception:  # noqa: BLE001 - outside a repository the presets still complete
        configured = []
    return _matching(configured + [a for a in presets if a not in configured], incomplete)
