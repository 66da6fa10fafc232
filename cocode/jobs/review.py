"""`compare` and `pick` over a job: rows with measured diff sizes, the ranked
recommendation, the PR text, and the pick itself (checks, land or push + PR,
the `picked` event, the other runs' worktrees released).

I/O lives here and in cocode.jobs.landing; the ranking is cocode.jobs.rank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, NamedTuple

from cocode.core import events as ev
from cocode.core.views import JobView, RunView, State
from cocode.errors import EXIT_MISSING_DEPENDENCY, EXIT_TIMEOUT, CocodeError, ConfigError
from cocode.jobs import landing, rank
from cocode.jobs.landing import Git, Refused

DIFFSTAT_JOBS = 20  # the newest jobs whose runs' diffs `status` (and `top` at start) measure


def job_of(state: State, job_id: str) -> JobView:
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    return job


def measure(root: Path, base_sha: str, head: str) -> landing.DiffStat | None:
    """A run's diff size from the job's base to `head`, or None when git cannot tell
    (the commit is gone: branch deleted)."""
    try:
        return landing.diffstat(root, base_sha, head)
    except CocodeError:
        return None


def rows(root: Path, job: JobView) -> list[rank.Row]:
    out = []
    for agent in job.agents:
        run = job.runs[agent]
        head = rank.measured_head(job.base_sha, run)
        # no commit beyond the base, or one that is gone: ranked as no change
        stat = (measure(root, job.base_sha, head) if head else None) or landing.DiffStat(0, 0, 0)
        out.append(rank.row(run, *stat))
    return out


def compare(root: Path, job: JobView, order: list[str]) -> tuple[list[rank.Row], str]:
    return rank.rank(rows(root, job), order)


def diffstats(root: Path, jobs, limit: int = DIFFSTAT_JOBS) -> dict:
    """(job, agent) -> (added, removed, files) for the newest `limit` jobs' runs with
    commits: the `status` table's DIFF column (one `git diff --numstat` each)."""
    out = {}
    for job in sorted(jobs, key=lambda j: j.seq)[-limit:]:
        for agent, run in job.runs.items():
            head = rank.measured_head(job.base_sha, run)
            if head and (stat := measure(root, job.base_sha, head)) is not None:
                out[(job.job, agent)] = stat
    return out


def compare_and_say(root: Path, job: JobView, order: list[str], echo: Callable[[str], None]) -> str | None:
    """Print the ranked table, the verdict and the pick command; returns the recommended agent."""
    ranked, verdict = compare(root, job, order)
    best = next((r.agent for r in ranked if r.rank == 1), None)
    echo(f"job {job.job}: {job.title}")
    echo(table(ranked))
    echo(verdict)
    if best:
        echo(f"to land it: cocode pick {job.job} {best} --merge   (or --pr for a pull request)")
    return best


def checks_text(r: rank.Row) -> str:
    if not r.checks:
        return "-"
    bad = [n for n, s in r.checks.items() if s != "passed"]
    counts = f" ({r.passed or 0} passed, {r.failed or 0} failed)" if r.passed is not None or r.failed else ""
    if not bad:
        return f"pass{counts}"
    return ", ".join(f"{n} {r.checks[n]}" for n in bad) + counts


def table(rows_: list[rank.Row]) -> str:
    head = f"{'RANK':<5}{'AGENT':<14}{'STATE':<18}{'CHECKS':<38}{'+/-':>12}{'FILES':>6}{'COMMITS':>8}{'READY':>8}  COST"
    lines = [head]
    for r in rows_:
        ready = f"{r.ready_s:.1f}s" if r.ready_s is not None else "-"
        cost = f"${r.cost_usd:.2f}" if r.cost_usd is not None else "-"
        state = r.state + (f" ({r.reason})" if r.reason and r.state != "ready" else "")
        lines.append(f"{r.rank or '-':<5}{r.agent:<14}{state[:17]:<18}{checks_text(r)[:37]:<38}"
                     f"{f'+{r.added}/-{r.removed}':>12}{r.files:>6}{r.commits:>8}{ready:>8}  {cost}")
    return "\n".join(lines)


# -- pick -------------------------------------------------------------------------------------


class Pick(NamedTuple):
    job: JobView
    run: RunView
    row: rank.Row
    mode: str  # merge, squash, rebase, or "" with pr only
    pr: bool


def choose(state: State, root: Path, job_id: str, agent: str | None, mode: str, pr: bool,
           order: list[str]) -> Pick:
    job = job_of(state, job_id)
    ranked, _ = compare(root, job, order)
    if agent is None:
        best = next((r for r in ranked if r.rank == 1), None)
        if best is None:
            raise Refused(f"no run of {job_id} is ready: `cocode status {job_id}` shows why")
        agent = best.agent
    if agent not in job.runs:
        raise ConfigError(f"job {job_id} has no agent {agent!r} (it has {', '.join(job.agents)})")
    run = job.runs[agent]
    if not run.final:
        raise Refused(f"run {job_id}/{agent} is still {run.state}: wait (cocode tail -f {job_id} {agent}) "
                      f"or stop it (cocode cancel {job_id} {agent})")
    if not run.ready_commit:
        raise Refused(f"run {job_id}/{agent} has no ready commit ({run.state}"
                      f"{', ' + run.reason if run.reason else ''}): `cocode compare {job_id}` shows the others")
    if job.picked and (mode and job.picked_mode in landing.MODES):
        raise Refused(f"job {job_id} was already picked ({job.picked}, {job.picked_mode}): "
                      f"`git log` shows it; undo it with git revert before picking again")
    row = next(r for r in ranked if r.agent == agent)
    return Pick(job, run, row, mode, pr)


def merge_message(p: Pick) -> str:
    return f"{p.job.title} (cocode {p.job.job}/{p.run.agent})"


def pr_title(p: Pick) -> str:
    return p.job.title


def pr_body(p: Pick) -> str:
    r = p.row
    lines = []
    if p.job.issue_number and p.job.issue_url.startswith("http"):
        lines += [f"Fixes #{p.job.issue_number}", ""]
    elif p.job.issue_url.startswith("http"):
        lines += [f"Issue: {p.job.issue_url}", ""]
    lines += [
        f"Made by the `{r.agent}` agent with cocode (job {p.job.job}, ready commit {(r.commit or '')[:12]}).",
        "",
        f"- Checks: {checks_text(r)}",
        f"- Diff: +{r.added}/-{r.removed} in {r.files} file(s), {r.commits} commit(s)",
        f"- Cost: {f'${r.cost_usd:.2f}' if r.cost_usd is not None else 'not reported'}"
        + (f" ({r.tokens} tokens)" if r.tokens else ""),
    ]
    return "\n".join(lines) + "\n"


def branch_of(p: Pick) -> str:
    return p.run.branch or f"cocode/{p.job.job}/{p.run.agent}"


def pr_base(git: Git) -> str:
    """The PR's base: the main checkout's branch."""
    return git.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1)).stdout.strip() or "main"


def dry_run(root: Path, p: Pick, timeout: float) -> str:
    git = Git(root, timeout)
    out = []
    if p.mode:
        co = landing.ready_checkout(git, p.job.base_ref)
        clash = landing.conflicts(git, co.head, p.run.ready_commit)
        verdict = f"conflicts in {', '.join(clash)}" if clash else "applies cleanly"
        out.append(f"would {p.mode} {p.run.ready_commit[:12]} ({p.run.agent}) onto {co.branch} "
                   f"at {co.head[:12]}: {verdict}")
    if p.pr:
        name = landing.remote(git)
        url = git.out("remote", "get-url", name)
        out.append(f"would push {p.run.ready_commit} to {name} ({url}) as refs/heads/{branch_of(p)}")
        out.append(f"would run: gh pr create --head {branch_of(p)} --base {pr_base(git)} "
                   f"--title {pr_title(p)!r} --body-file - (the body below on stdin)")
        out += ["", f"title: {pr_title(p)}", "", pr_body(p)]
    return "\n".join(out)


def land(root: Path, p: Pick, timeout: float) -> tuple[str, str]:
    """Checks, then the landing; returns (branch, new head). Refused changes nothing."""
    git = Git(root, timeout)
    co = landing.ready_checkout(git, p.job.base_ref)
    clash = landing.conflicts(git, co.head, p.run.ready_commit)
    if clash:
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise Refused(f"{co.branch} moved since the job started and conflicts with {p.run.agent}'s commit in "
                      f"{', '.join(clash[:3])}{more}: merge it by hand (git merge {p.run.ready_commit[:12]})")
    return co.branch, landing.land(git, p.mode, p.run.ready_commit, p.job.base_sha, merge_message(p))


def open_pr(root: Path, p: Pick, git_timeout: float, gh_timeout: float) -> str:
    """Push the ready commit as the run's branch, then `gh pr create`; returns the PR URL."""
    gh = shutil.which("gh")
    if gh is None:
        raise CocodeError("gh is not on PATH: install the GitHub CLI (https://cli.github.com) "
                          "and run `gh auth login`", EXIT_MISSING_DEPENDENCY)
    git = Git(root, git_timeout)
    name = landing.remote(git)
    base = pr_base(git)
    landing.push(git, name, p.run.ready_commit, branch_of(p))
    args = [gh, "pr", "create", "--head", branch_of(p), "--base", base, "--title", pr_title(p), "--body-file", "-"]
    try:
        proc = subprocess.run(args, cwd=root, input=pr_body(p), capture_output=True, text=True,
                              timeout=gh_timeout)
    except subprocess.TimeoutExpired:
        raise CocodeError(f"gh pr create took over {gh_timeout:.0f} s (github_timeout); the branch "
                          f"{branch_of(p)} is pushed: retry with `cocode pick {p.job.job} {p.run.agent} --pr`",
                          EXIT_TIMEOUT) from None
    if proc.returncode != 0:
        raise CocodeError(f"gh pr create failed: {landing.last_line(proc.stderr or proc.stdout)} "
                          f"(the branch {branch_of(p)} is pushed; retry after fixing)")
    return landing.last_line(proc.stdout)


def release_others(root: Path, job: JobView, keep: str, append: Callable[[ev.Event], None]) -> list[str]:
    """The other final runs' worktrees go (their branches stay until `cocode clean --hard`)."""
    from cocode import gitops

    released = []
    for agent, run in job.runs.items():
        if agent == keep or not run.final or not run.worktree or run.worktree_removed:
            continue
        if os.path.isdir(run.worktree):
            try:
                gitops.remove_worktree(root, Path(run.worktree))
            except CocodeError as err:
                append(ev.WarningEvent(job=job.job, agent=agent, code="release_failed", message=err.message))
                continue
        append(ev.WorktreeRemoved(job=job.job, agent=agent, path=run.worktree, reason="picked"))
        released.append(agent)
    return released


def what_pick_does(p: Pick) -> str:
    """The pick's action in words (the confirmation's question)."""
    return " and ".join(filter(None, [f"{p.mode} {p.run.agent}'s ready commit into the main checkout" if p.mode else "",
                                      "push it and open a pull request" if p.pr else ""]))


def execute(root: Path, p: Pick, limits, append: Callable[[ev.Event], None], say: Callable[[str], None]) -> None:
    """The pick, confirmed: land and/or open the PR, record `picked` (through `append`,
    so cocode must be up), release the other runs' worktrees; `say` each outcome.
    `cocode pick` and `cocode top`'s pick key both run exactly this."""
    landed, url = "", ""
    if p.mode:
        branch, landed = land(root, p, limits.git_timeout)
        say(f"{p.mode}d {p.run.agent} ({p.run.ready_commit[:12]}) into {branch}: now at {landed[:12]}")
    if p.pr:
        url = open_pr(root, p, limits.git_timeout, limits.github_timeout)
        say(f"pull request: {url}")
    append(ev.Picked(job=p.job.job, agent=p.run.agent, mode=p.mode or "pr", commit=p.run.ready_commit,
                     base_ref=p.job.base_ref, landed_sha=landed, pr_url=url))
    released = release_others(root, p.job, p.run.agent, append)
    if released:
        say(f"released the worktrees of {', '.join(released)} (their branches stay until cocode clean --hard)")
