"""Commands that show agents' output: `tail` (the last lines, then live) and `logs`
(all a run kept). They parse and call cocode.logs.show, which prints.
"""

from __future__ import annotations

import sys

import click

from cocode.cli.complete import complete_job, complete_run_agent
from cocode.cli.helpers import Env, main, pass_env, terminal
from cocode.errors import ConfigError


@main.command("tail")
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agents", nargs=-1, shell_complete=complete_run_agent)
@click.option("-n", "--lines", type=int, default=None, metavar="N",
              help="Lines of backlog per agent (default: tui_log_lines, 2000).")
@click.option("-f", "--follow", is_flag=True, help="Then print live output until the runs end.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--no-bell", is_flag=True, help="No terminal bell (or desktop notification) when -f ends.")
@pass_env
def tail_cmd(env: Env, job_id: str, agents: tuple[str, ...], lines: int | None, follow: bool,
             as_json: bool, no_bell: bool) -> None:
    """A job's agent output: the last lines, then (-f) live, `agent |` prefixed for several."""
    from cocode.logs import show

    n = env.config.limits.tui_log_lines if lines is None else lines
    if n < 0:
        raise ConfigError(f"-n {n}: give 0 or more lines")
    code = show.tail(env.paths, job_id, agents, n, follow, as_json, colour=env.colour)
    if follow and not no_bell and not as_json:
        from cocode.jobs.notify import bell

        bell(f"cocode: job {job_id}", "its runs ended")
    sys.exit(code)


@main.command("logs")
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", shell_complete=complete_run_agent)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as `tail --json`.")
@click.option("--raw", is_flag=True, help="The agent's original stdout (JSON lines), not the readable lines.")
@pass_env
def logs_cmd(env: Env, job_id: str, agent: str, as_json: bool, raw: bool) -> None:
    """All retained output of one run, oldest first (rotated lz4 files, then the live file)."""
    from cocode.logs import show

    if raw:
        sys.exit(show.print_raw(env.paths, job_id, agent))
    sys.exit(show.print_logs(env.paths, job_id, agent, terminal=terminal(), as_json=as_json))
