"""Cleaning up after runs: what may go is decided (pure) apart from finding the
facts and acting on them (I/O).

- A final run's worktree idle for longer than N days is removed: the directory
  only. The run's branch and its commits stay (gitops.remove_worktree), and each
  removal is recorded as a worktree_removed event with its reason.
- A worktree with uncommitted changes or untracked files is kept and listed; only
  --hard removes it.
- --hard also deletes the run branches that were never picked or merged (their
  commits are on no other local branch), after confirmation unless --yes. Each
  deletion is recorded with the commit it pointed to, so it can be restored.
  Unmerged work is never destroyed silently.
- The monitor removes idle worktrees (worktree_idle_days) by itself, hourly, by
  running `cocode clean --auto`: never --hard.
- Files final runs left in .cocode/tmp (a sandbox HOME, an issue file) are
  removed (jobs/runtmp.py decides which), except the HOME a run keeps for a
  follow-up that resumes its agent's session while its worktree stays.
Runs that are not final are never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cocode.core.views import State
from cocode.gitops.runner import last_line, run as run_git
from cocode.runkey import RunKey

DAY = 86400.0


@dataclass(frozen=True)
class RunRef:
    job: str
    agent: str
    state: str
    worktree: str
    branch: str
    base_sha: str
    ended_at: float

    @property
    def key(self) -> str:
        return RunKey(self.job, self.agent).key


@dataclass(frozen=True)
class Facts:
    exists: bool = False  # the worktree directory
    last_used: float = 0.0  # its newest mtime we look at (the directory, its .git)
    dirty: int = 0  # changed or untracked files in it
    tip: str | None = None  # the branch's commit, None if there is no branch
    merged: bool = True  # the tip is on some other local branch (picked or merged)
    unmerged_commits: int = 0


@dataclass(frozen=True)
class Action:
    kind: str  # remove_worktree, delete_branch, keep
    run: RunRef
    target: str  # a worktree path or a branch name
    why: str
    destroys: str = ""  # what cannot come back, for the confirmation prompt

    def line(self, dry_run: bool) -> str:
        verb = {"remove_worktree": "remove worktree", "delete_branch": "delete branch", "keep": "keep"}[self.kind]
        if dry_run and self.kind != "keep":
            verb = "would " + verb
        lost = f"; loses {self.destroys}" if self.destroys else ""
        return f"{verb} {self.target} ({self.run.key}, {self.why}{lost})"


# -- deciding (pure) ----------------------------------------------------------------------------


def final_runs(state: State, now: float, older_than_days: float) -> list[RunRef]:
    """Final runs that ended at least `older_than_days` ago, oldest first."""
    cutoff = now - older_than_days * DAY
    out = []
    for job in state.jobs.values():
        for run in job.runs.values():
            if run.final and run.ended_at is not None and run.ended_at <= cutoff and (run.worktree or run.branch):
                out.append(RunRef(job.job, run.agent, run.state, run.worktree,
                                  run.branch or RunKey(job.job, run.agent).branch, job.base_sha, run.ended_at))
    return sorted(out, key=lambda r: r.ended_at)


def plan(runs: list[RunRef], facts: dict[str, Facts], now: float, older_than_days: float,
         hard: bool) -> list[Action]:
    cutoff = now - older_than_days * DAY
    actions = []
    for r in runs:
        f = facts.get(r.key, Facts())
        idle = (now - max(r.ended_at, f.last_used)) / DAY
        if f.exists and max(r.ended_at, f.last_used) <= cutoff:
            if f.dirty and not hard:
                actions.append(Action("keep", r, r.worktree,
                                      f"{f.dirty} uncommitted or untracked files; --hard removes them"))
            else:
                lost = f"{f.dirty} uncommitted or untracked files" if f.dirty else ""
                actions.append(Action("remove_worktree", r, r.worktree, f"idle {idle:.1f} days", lost))
        if hard and f.tip and not f.merged:
            worktree_stays = f.exists and not any(
                a.kind == "remove_worktree" and a.run == r for a in actions)
            if worktree_stays:
                continue  # git cannot delete a branch checked out in a worktree we keep
            lost = f"{f.unmerged_commits} commits never merged" if f.unmerged_commits else ""
            why = "never picked or merged" if f.unmerged_commits else "no commits of its own"
            actions.append(Action("delete_branch", r, r.branch, why, lost))
    return actions


def needs_confirmation(actions: list[Action]) -> bool:
    return any(a.destroys or a.kind == "delete_branch" for a in actions)


# -- facts (I/O) --------------------------------------------------------------------------------


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def gather(root: Path, runs: list[RunRef], branches: bool) -> dict[str, Facts]:
    """The facts plan() needs; `branches` also looks at each run branch's merges."""
    others: list[str] = []
    if branches:
        out = run_git(root, "for-each-ref", "--format=%(refname)", "refs/heads/")
        others = [r for r in os.fsdecode(out.stdout).split() if not r.startswith("refs/heads/cocode/")]
    facts = {}
    for r in runs:
        wt = Path(r.worktree) if r.worktree else None
        exists = bool(wt and wt.is_dir())
        # Before `git status`, which rewrites a clone's index (and so its .git's mtime).
        last = max(_mtime(wt), _mtime(wt / ".git")) if exists else 0.0
        dirty = 0
        if exists:
            # The workspace's config is the agent's: none of the programs it may name runs here.
            status = run_git(wt, "status", "--porcelain", config=("core.fsmonitor=false", "core.hooksPath=/dev/null"))
            dirty = len(status.stdout.splitlines()) if status.returncode == 0 else 0
        tip = None
        is_merged, ahead = True, 0
        if branches:
            ref = f"refs/heads/{r.branch}"
            rev = run_git(root, "rev-parse", "--verify", "-q", ref)
            tip = rev.stdout.decode().strip() or None
            if tip:
                # Its own commits: on no other local branch (a merge or a fast-forward
                # counts as picked; a squash or cherry-pick does not, so it is asked).
                count = run_git(root, "rev-list", "--count", tip, "--not", r.base_sha, *others)
                ahead = int(count.stdout.strip() or 0) if count.returncode == 0 else 1
                is_merged = ahead == 0 and tip != r.base_sha  # no commits at all: a leftover
        facts[r.key] = Facts(exists, last, dirty, tip, is_merged, ahead)
    return facts


# -- acting (I/O) --------------------------------------------------------------------------------


def execute(root: Path, actions: list[Action], record, reason: str) -> list[str]:
    """Carry the actions out; `record(event)` appends each one's event. Returns lines."""
    from cocode.core import events as ev
    from cocode import gitops
    from cocode.errors import CocodeError

    done = []
    for a in actions:
        if a.kind == "remove_worktree":
            try:
                gitops.remove_worktree(root, Path(a.target))
            except CocodeError as err:
                done.append(f"kept {a.target}: {err.message}")
                continue
            record(ev.WorktreeRemoved(job=a.run.job, agent=a.run.agent, path=a.target, reason=reason))
            done.append(f"removed worktree {a.target} ({a.run.key}; branch {a.run.branch} kept)")
        elif a.kind == "delete_branch":
            tip = run_git(root, "rev-parse", "--verify", "-q", f"refs/heads/{a.target}").stdout.decode().strip()
            out = run_git(root, "branch", "-D", a.target)
            if out.returncode != 0:
                done.append(f"kept branch {a.target}: {last_line(out.stderr)}")
                continue
            record(ev.WarningEvent(
                job=a.run.job, agent=a.run.agent, code="branch_deleted",
                message=f"deleted branch {a.target} at {tip[:12]} ({a.why}); "
                        f"`git branch {a.target} {tip}` restores it until git prunes it"))
            done.append(f"deleted branch {a.target} (was {tip[:12]})")
    return done


# -- a run's temp files ------------------------------------------------------------------------


def tmp_leftovers(tmp: Path, state: State, agent_table, actions: list[Action]) -> list[Path]:
    """What final runs left in the worker's temp dir that may go now (jobs/runtmp.py);
    `actions` are this cleanup's (a run whose worktree goes keeps no HOME for a resume)."""
    from cocode.jobs import agents, runtmp

    def resume_of(agent: str):
        spec = agent_table.get(agents.base_name(agent, agent_table))
        return spec.resume if spec is not None else None

    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return []
    going = {a.run.key for a in actions if a.kind == "remove_worktree"}
    return [tmp / n for n in runtmp.leftovers(state, names, resume_of, going)]


def remove_tmp(paths: list[Path]) -> list[str]:
    from cocode.jobs import runtmp

    for p in paths:
        runtmp.remove(p)
    return [f"removed {p}" for p in paths]
