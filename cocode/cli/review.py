"""The review commands (issue 10): `check`, `compare`, `diff`, `pick`.

Parse, call cocode.jobs.review / cocode.jobs.landing, print; the same rules as
the rest of the CLI (cocode.cli.helpers).
"""

from __future__ import annotations

import shutil
import sys
import time

import click
import msgspec

from cocode.cli.complete import complete_job, complete_run_agent
from cocode.cli.helpers import Env, main, pass_env, print_json, read_state, require_running, terminal
from cocode.errors import CocodeError, ConfigError


def _state(env: Env):
    return read_state(env.paths)


# -- check ---------------------------------------------------------------------------------------


@main.command("check")
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", required=False, shell_complete=complete_run_agent)
@click.option("--name", "names", multiple=True, metavar="CHECK", help="Only this check (repeatable).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the results.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds --wait waits.")
@click.option("--json", "as_json", is_flag=True, help="The request and the results, as one object.")
@pass_env
def check(env: Env, job_id: str, agent: str | None, names: tuple[str, ...], wait: bool, timeout: float,
          as_json: bool) -> None:
    """Run the configured checks on a job's ready runs again (or one run's)."""
    from cocode import client
    from cocode.core import events as ev
    from cocode.jobs import review

    configured = list(env.config.checks)
    if not configured:
        raise ConfigError(f"no checks are configured: add e.g. `checks: {{tests: pytest -q}}` to {env.paths.config}")
    for n in names:
        if n not in configured:
            raise ConfigError(f"--name {n}: no such check (configured: {', '.join(configured)})")
    state = _state(env)
    job = review.job_of(state, job_id)
    if agent and agent not in job.runs:
        raise ConfigError(f"job {job_id} has no agent {agent!r} (it has {', '.join(job.agents)})")
    runs = [job.runs[agent]] if agent else [r for r in job.runs.values() if r.ready_commit]
    if not any(r.ready_commit for r in runs):
        raise CocodeError(f"no ready commit to check in {job_id}{'/' + agent if agent else ''}: "
                          f"`cocode status {job_id}` shows the runs")
    require_running(env.paths)
    request = ev.CheckRequested(job=job_id, agent=agent or "", names=list(names))
    client.append_one(env.paths, request)
    wanted = list(names) or configured
    targets = [r.agent for r in runs if r.ready_commit]
    report = {"job": job_id, "agent": agent, "agents": targets, "names": wanted, "waited": wait,
              "done": False, "results": []}
    if not wait:
        if as_json:
            print_json(report)
        else:
            click.echo(f"checks of {job_id}{'/' + agent if agent else ''} requested")
        return
    asked = _state(env).jobs[job_id].runs[targets[0]].check_requests  # the request, folded
    since = max(asked.get(n, 0) for n in [*wanted, ""])
    deadline = time.monotonic() + timeout
    while True:  # the fold answers "started after the request, and finished"
        job = _state(env).jobs[job_id]
        done = all((c := job.runs[a].checks.get(n)) is not None and c.started_seq > since
                   and c.status != "running" for a in targets for n in wanted)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    report["done"] = done
    for a in targets:
        for n in wanted:
            c = job.runs[a].checks.get(n)
            report["results"].append(_check_json(a, n, c))
            if not as_json:
                line = "not started" if c is None else f"{c.status}{': ' + c.summary if c.summary else ''}"
                click.echo(f"{a:<14} check:{n:<12} {line}")
    if as_json:
        print_json(report)  # also on a timeout: what had finished by then
    if not done:
        raise CocodeError(f"checks still running after {timeout:.0f} s: `cocode status {job_id}` shows them", 124)
    sys.exit(1 if any(r["status"] != "passed" for r in report["results"]) else 0)


def _check_json(agent: str, name: str, c) -> dict:
    if c is None:
        return {"agent": agent, "name": name, "status": None, "summary": "", "passed": None, "failed": None,
                "exit_code": None, "duration_s": None, "commit": None}
    return {"agent": agent, "name": name, "status": c.status, "summary": c.summary, "passed": c.passed,
            "failed": c.failed, "exit_code": c.exit_code, "duration_s": c.duration_s, "commit": c.commit or None}


# -- compare and diff ---------------------------------------------------------------------------------


@main.command("compare")
@click.argument("job_id", shell_complete=complete_job)
@click.option("--json", "as_json", is_flag=True)
@pass_env
def compare(env: Env, job_id: str, as_json: bool) -> None:
    """One row per run and the recommended one, with the rule that chose it."""
    from cocode.jobs import review

    job = review.job_of(_state(env), job_id)
    if not as_json:
        review.compare_and_say(env.paths.root, job, env.config.rank_by, click.echo)
        return
    rows, verdict = review.compare(env.paths.root, job, env.config.rank_by)
    best = next((r.agent for r in rows if r.rank == 1), None)
    print_json({"job": job_id, "title": job.title, "rank_by": env.config.rank_by,
                 "recommended": best, "why": verdict, "runs": [msgspec.to_builtins(r) for r in rows]})


@main.command("diff")
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", shell_complete=complete_run_agent)
@click.argument("other", required=False, shell_complete=complete_run_agent)
@click.option("--stat", is_flag=True, help="Files changed and lines added/removed only.")
@click.option("--json", "as_json", is_flag=True, help="The patch and the commits it spans, as one object.")
@pass_env
def diff(env: Env, job_id: str, agent: str, other: str | None, stat: bool, as_json: bool) -> None:
    """A run's change against its base, or (JOB A B) between two runs' branches."""
    from cocode import gitops
    from cocode.jobs import review
    from cocode.runkey import RunKey

    job = review.job_of(_state(env), job_id)
    heads = []
    for a in (agent, other) if other else (agent,):
        run = job.runs.get(a)
        if run is None:
            raise ConfigError(f"job {job_id} has no agent {a!r} (it has {', '.join(job.agents)})")
        head = gitops.BranchWatcher(env.paths.root, RunKey(job_id, a).branch).head()
        if head is None:
            raise CocodeError(f"run {job_id}/{a} has no branch yet (state {run.state})")
        heads.append(head)
    old, new = (heads[0], heads[1]) if other else (job.base_sha, heads[0])
    colour = env.colour and not as_json
    # the one diff path: client.run_diff (cocode top's diff view) calls it the same way
    text = gitops.diff_text(env.paths.root, old, new, stat=stat, colour=colour,
                            timeout=env.config.limits.git_timeout)
    if as_json:
        print_json({"job": job_id, "agent": agent, "branch": RunKey(job_id, agent).branch,
                    **({"other": other, "other_branch": RunKey(job_id, other).branch} if other else {}),
                    "base_sha": old, "head_sha": new, "diff": text})
    elif terminal() and text.count("\n") > shutil.get_terminal_size().lines:
        click.echo_via_pager(text, color=colour)  # like git: a long diff goes through $PAGER / less
    else:
        click.echo(text, nl=False, color=colour)


# -- pick -----------------------------------------------------------------------------------------------


@main.command("pick")
@click.argument("job_id", shell_complete=complete_job)
@click.argument("agent", required=False, shell_complete=complete_run_agent)
@click.option("--merge", "mode", flag_value="merge", help="A merge commit on the base branch (the default).")
@click.option("--squash", "mode", flag_value="squash", help="One new commit with the run's change.")
@click.option("--rebase", "mode", flag_value="rebase", help="The run's commits replayed on the base branch.")
@click.option("--pr", is_flag=True, help="Push the run's branch and open a pull request with gh.")
@click.option("--dry-run", is_flag=True, help="Say what would be done and the PR text; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="What was done (or, with --dry-run, would be), as one object.")
@pass_env
def pick(env: Env, job_id: str, agent: str | None, mode: str | None, pr: bool, dry_run: bool, yes: bool,
         as_json: bool) -> None:
    """Land a run (AGENT, default the recommended one) on the base branch, or open a PR."""
    from cocode import client
    from cocode.core import events as ev
    from cocode.jobs import review

    limits = env.config.limits
    mode = mode or ("" if pr else "merge")
    p = review.choose(_state(env), env.paths.root, job_id, agent, mode, pr, env.config.rank_by)
    report = {"job": job_id, "agent": p.run.agent, "mode": p.mode or None, "pr": pr, "dry_run": dry_run,
              "commit": p.run.ready_commit, "landed_sha": None, "pr_url": None, "released": [], "lines": []}
    say = report["lines"].append if as_json else click.echo
    if dry_run:
        text = review.dry_run(env.paths.root, p, limits.git_timeout)
        if as_json:
            report["lines"] = text.splitlines()
            print_json(report)
        else:
            click.echo(text)
        return
    require_running(env.paths)  # the `picked` event must be recordable before anything lands
    what = review.what_pick_does(p)
    if not yes:
        if as_json:  # as `clean --json`: no question where the answer must be JSON
            raise ConfigError(f"pick would {what} and --json cannot ask: add --yes, or --dry-run first")
        if not sys.stdin.isatty():
            raise ConfigError(f"pick would {what}: add --yes to confirm without a terminal")
        if not click.confirm(f"{what[0].upper()}{what[1:]}?", default=False):
            raise CocodeError("nothing done")

    def append(event) -> None:
        client.append_one(env.paths, event)
        if isinstance(event, ev.Picked):
            report["landed_sha"], report["pr_url"] = event.landed_sha or None, event.pr_url or None
        elif isinstance(event, ev.WorktreeRemoved):
            report["released"].append(event.agent)

    review.execute(env.paths.root, p, limits, append, say)
    if as_json:
        print_json(report)
