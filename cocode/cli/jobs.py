"""Commands that act on jobs: `submit` (and its `--wait`), `status`, `cancel`, `say`
and `demo` (`diff` is with the review commands). They parse, call cocode.jobs and the
client, and print.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cocode.cli.complete import complete_agent, complete_job, complete_run_agent
from cocode.cli.helpers import Env, main, pass_env, print_json, read_state, require_running, terminal
from cocode.errors import CocodeError, ConfigError
from cocode.runkey import RunKey


@main.command()
@click.option("--issue-file", type=click.Path(path_type=Path), help="Read the issue from a file.")
@click.option("--text", help="The issue text itself.")
@click.option("--issue", "issue_ref", metavar="NUMBER|URL", help="A GitHub issue, through `gh`.")
@click.option("--issue-number", type=int, help="COCODE_ISSUE_NUMBER for a local issue (default 0).")
@click.option("--agent", "agent_names", multiple=True, metavar="NAME", shell_complete=complete_agent,
              help="An agent to run (repeatable); NAME:N runs N copies, NAME-1..NAME-N (best-of-N).")
@click.option("--priority", default=0, show_default=True, help="Higher runs first (-100..100).")
@click.option("--complexity", default="simple", type=click.Choice(["simple", "medium", "complex"]),
              show_default=True)
@click.option("--timeout", type=int, help="Base timeout in seconds for each run (1..3600).")
@click.option("--max-cost", "max_cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Stop a run whose model cost passes this (reason budget_exceeded).")
@click.option("--base", default="HEAD", show_default=True, help="The commit the agents start from.")
@click.option("--force", is_flag=True, help="Go on although the repository is over max_repo_size_mb.")
@click.option("--sparse", multiple=True, metavar="PATH", help="Sparse checkout of PATH (monorepos).")
@click.option("--wait", is_flag=True, help="Show progress until every run is final; exit 0 if any is ready.")
@click.option("--no-bell", is_flag=True, help="No terminal bell (or desktop notification) when --wait ends.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def submit(env: Env, issue_file, text, issue_ref, issue_number, agent_names, priority, complexity,
           timeout, max_cost, base, force, sparse, wait, no_bell, as_json) -> None:
    """Queue one issue for one or more agents."""
    from cocode import client
    from cocode.jobs import submit as sub

    sources = [x for x in (issue_file, text, issue_ref) if x is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --issue-file PATH, --text TEXT or --issue NUMBER|URL")
    if issue_file is not None:
        issue = sub.issue_from_file(issue_file)
    elif text is not None:
        issue = sub.issue_from_text(text)
    else:
        issue = sub.issue_from_github(issue_ref, env.paths.root)
    names = sub.resolve_agents(agent_names, env.config)
    event, warnings = sub.build_job(
        env.paths, env.config, issue, names, priority=priority, complexity=complexity,
        timeout=timeout, base=base, force=force, sparse=sparse, issue_number=issue_number,
        max_cost_usd=max_cost,
    )
    require_running(env.paths)
    for w in warnings:
        click.echo(f"cocode: warning: {w}", err=True)
    client.append_one(env.paths, event)
    if as_json:
        print_json({"job": event.job, "base_sha": event.base_sha, "runs": [
            {"agent": a, "state": "queued", "branch": RunKey(event.job, a).branch,
             "worktree": str(RunKey(event.job, a).worktree(env.paths))} for a in names]})
    else:
        click.echo(f"job {event.job}: {len(names)} run(s) queued ({', '.join(names)}) from {event.base_sha[:12]}")
    if wait:
        final = _watch(env.paths, event.job, list(env.config.checks), stream=not as_json, colour=env.colour)
        ready = sum(r.state == "ready" for r in final.runs.values())
        if not no_bell:
            from cocode.jobs.notify import bell

            bell(f"cocode: job {event.job} done", f"{ready}/{len(final.runs)} ready: {final.title}")
        sys.exit(0 if ready else 1)


def _watch(paths, job_id: str, check_names: list[str], stream: bool = True, timeout: float | None = None,
           colour: bool = False):
    """Until every run is final and its checks are done: (stream) each run's events
    and output, then the table."""
    from cocode import render
    from cocode.jobs import checks, review, watch
    from cocode.logs.printer import Printer

    state = read_state(paths)
    job = state.jobs.get(job_id)
    printer = None
    if stream:
        agents = job.agents if job else []
        printer = Printer(lambda line: click.echo(line, color=colour), colour, agents, prefixed=True)

    def on_event(event) -> None:
        line = render.run_event_summary(event) if stream and event.agent else None
        if line:
            printer.line(event.agent, f"-- {line}")

    def settled(state, job) -> bool:  # ... unless no checks service runs to finish them
        service = state.services.get("checks")
        return checks.settled(job, check_names) or service is None or service.state != "running"

    state = watch.watch_job(paths, job_id, state, on_event, printer, timeout=timeout, settled=settled)
    job = state.jobs[job_id]
    if stream:
        click.echo(render.status_table([job], colour, diffstats=review.diffstats(paths.root, [job])), color=colour)
    return job


@main.command()
@click.argument("job_id", required=False, shell_complete=complete_job)
@click.option("--active", is_flag=True, help="Only jobs with a run queued or running.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="At most N jobs: the active ones, then the newest finished.")
@click.option("--json", "as_json", is_flag=True)
@pass_env
def status(env: Env, job_id: str | None, active: bool, limit: int | None, as_json: bool) -> None:
    """Jobs and their runs; without JOB every job, the queue in dispatch order."""
    from cocode import render
    from cocode.core.views import queued_runs
    from cocode.jobs.review import diffstats

    state = read_state(env.paths)
    if job_id:
        job = state.jobs.get(job_id)
        if job is None:
            raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
        stats = diffstats(env.paths.root, [job])
        if as_json:
            print_json(render.job_json(job, {a: tuple(d) for (_, a), d in stats.items()}))
        else:
            click.echo(render.status_table([job], env.colour, env.width, titles=True, diffstats=stats),
                       color=env.colour)
        return
    queue_order = {}
    for i, (job, run) in enumerate(queued_runs(state)):
        queue_order.setdefault(job.job, i)
    jobs = sorted(state.jobs.values(), key=lambda j: (j.state == "done", queue_order.get(j.job, -1), j.seq))
    if active:
        jobs = [j for j in jobs if j.state != "done"]
    if limit:  # the active jobs, then the newest finished ones; shown in the usual order
        newest = sorted(jobs, key=lambda j: (j.state == "done", -j.seq if j.state == "done" else 0))
        keep = {j.job for j in newest[:limit]}
        jobs = [j for j in jobs if j.job in keep]
    if as_json:
        print_json([render.job_json(j) for j in jobs])
    else:
        if jobs or not active:
            click.echo(render.status_table(jobs, env.colour, env.width, titles=True,
                                           diffstats=diffstats(env.paths.root, jobs)), color=env.colour)
        else:
            click.echo("no active job")
        for w in state.warnings[-3:]:
            click.echo(f"warning: {w.message}")


@main.command()
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", required=False, shell_complete=complete_run_agent)
@click.option("--no-wait", is_flag=True, help="Return once the request is recorded.")
@click.option("--json", "as_json", is_flag=True, help="The job's runs afterwards, as `status JOB --json`.")
@pass_env
def cancel(env: Env, job_id: str, agent: str | None, no_wait: bool, as_json: bool) -> None:
    """Stop a job's runs (SIGTERM, 5 s, SIGKILL); their work is kept."""
    from cocode import client, render

    job = client.cancel(env.paths, job_id, agent)
    if not no_wait:
        state = _wait_runs(env.paths, job_id, [agent] if agent else job.agents)
    elif as_json:
        state = read_state(env.paths)
    if as_json:
        print_json({"cancelled": {"job": job_id, "agent": agent}, "waited": not no_wait,
                    **render.job_json(state.jobs[job_id])})
    elif no_wait:
        click.echo(f"cancel of {job_id}{'/' + agent if agent else ''} recorded")
    else:
        click.echo(render.status_table([state.jobs[job_id]], env.colour, env.width), color=env.colour)


@main.command()
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", shell_complete=complete_run_agent)
@click.argument("message")
@click.option("--wait", is_flag=True, help="Show progress until the run is final again; exit 0 if ready.")
@click.option("--json", "as_json", is_flag=True, help="The queued follow-up, as one object.")
@pass_env
def say(env: Env, job_id: str, agent: str, message: str, wait: bool, as_json: bool) -> None:
    """One more turn for a finished run: same worktree and branch, the agent's own session
    resumed when it can (claude --resume, codex exec resume), as the run's next attempt."""
    from cocode import client
    from cocode.jobs import followup

    state = read_state(env.paths)
    event = followup.request(state, job_id, agent, message)
    require_running(env.paths)
    client.append_one(env.paths, event)
    if as_json:  # printed at once, as `submit --json`; with --wait the exit code tells
        run = state.jobs[job_id].runs[agent]
        print_json({"job": job_id, "agent": agent, "attempt": event.attempt, "state": "queued",
                    "message": event.message, "branch": run.branch or RunKey(job_id, agent).branch,
                    "worktree": run.worktree or str(RunKey(job_id, agent).worktree(env.paths))})
    else:
        click.echo(f"{job_id}/{agent}: follow-up queued as attempt {event.attempt}")
    if wait:
        final = _watch(env.paths, job_id, list(env.config.checks), stream=not as_json, colour=env.colour)
        sys.exit(0 if final.runs[agent].state == "ready" else 1)


def _wait_runs(paths, job_id: str, agents: list[str], timeout: float = 30.0):
    state = read_state(paths)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(paths)
        if all(state.jobs[job_id].runs[a].final for a in agents):
            break
        time.sleep(0.1)
    return state


@main.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--timeout", default=60.0, show_default=True, help="Give up after this many seconds.")
@click.option("--top", "in_top", is_flag=True, help="Watch it in `cocode top` (q quits and stops the demo).")
@pass_env
def demo(env: Env, directory: Path | None, timeout: float, in_top: bool) -> None:
    """Run the whole job on a sample repository with three built-in demo agents."""
    from cocode import client
    from cocode import demo as demo_mod
    from cocode.jobs import review
    from cocode.jobs import submit as sub

    directory = (directory or demo_mod.default_directory()).absolute()
    if in_top and not terminal():
        raise ConfigError("`cocode demo --top` needs a terminal; plain `cocode demo` prints the run instead")

    def submit_and_watch(paths, config):
        issue = sub.issue_from_text(demo_mod.ISSUE)
        event, _ = sub.build_job(paths, config, issue, demo_mod.DEMO_AGENTS)
        client.append_one(paths, event)
        click.echo(f"job {event.job}: {', '.join(demo_mod.DEMO_AGENTS)}")
        if in_top:
            from cocode.top.app import TopApp

            TopApp(paths, config, config.limits.tui_log_lines).run()
            job = read_state(paths).jobs[event.job]
        else:
            job = _watch(paths, event.job, list(config.checks), stream=True, timeout=timeout, colour=env.colour)
        return job, review.compare_and_say(paths.root, job, config.rank_by, click.echo)

    sys.exit(demo_mod.run(directory, click.echo, submit_and_watch))
