"""Landing a run's ready commit: its diff size, the main checkout's readiness, the
merge / squash / rebase onto the base branch there, and the push for a PR.

Every operation is the git CLI (the user's own git, hooks and identity, as if they
typed it), bounded by the `git_timeout` limit. Each landing checks first and then
acts, and undoes a half-done step (merge --abort, cherry-pick --abort, reset to
the old head) so a refusal leaves the main checkout as it was. Errors are
CocodeErrors with one line naming the fix.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import NamedTuple

from cocode.errors import EXIT_ERROR, EXIT_TIMEOUT, CocodeError
from cocode.gitops import runner

MODES = ("merge", "squash", "rebase")


class Refused(CocodeError):
    """Nothing was changed: the reason and the command that fixes it."""


class Git:
    """git in one directory through cocode.gitops.runner, bounded by `timeout` (git_timeout)."""

    def __init__(self, cwd: Path, timeout: float) -> None:
        self.cwd, self.timeout = Path(cwd), timeout

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        try:
            proc = runner.run(self.cwd, *args, timeout=self.timeout)
        except CocodeError as err:
            if err.exit_code == EXIT_TIMEOUT:
                raise CocodeError(f"git {args[0]} took over {self.timeout:g} s (git_timeout): "
                                  "check the network or raise git_timeout", EXIT_TIMEOUT) from None
            raise
        out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                          proc.stderr.decode(errors="replace"))
        if out.returncode not in ok:
            raise CocodeError(f"git {args[0]} failed: {last_line(out.stderr or out.stdout)}", EXIT_ERROR)
        return out

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()


def last_line(text: str) -> str:
    """git's reason: its last line that is not a hint."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("hint:")]
    return lines[-1] if lines else "no message"


class DiffStat(NamedTuple):
    added: int
    removed: int
    files: int


def diffstat(repo: Path, base: str, head: str, timeout: float = 60) -> DiffStat:
    """Lines added and removed and files changed from base to head (binary files count as files)."""
    added = removed = files = 0
    for line in Git(repo, timeout).out("diff", "--numstat", "--no-renames", base, head).splitlines():
        a, r, _ = line.split("\t", 2)
        files += 1
        added += int(a) if a.isdigit() else 0
        removed += int(r) if r.isdigit() else 0
    return DiffStat(added, removed, files)


class Checkout(NamedTuple):
    branch: str
    head: str


def ready_checkout(git: Git, base_ref: str) -> Checkout:
    """The main checkout's branch and head, or Refused: detached, on another branch than
    the job's base, mid-merge or dirty (untracked files are git's own business)."""
    branch = git.run("symbolic-ref", "--quiet", "--short", "HEAD", ok=(0, 1)).stdout.strip()
    if not branch:
        raise Refused("the main checkout is on a detached HEAD: check out the base branch (git switch main)")
    if base_ref not in ("", "HEAD") and not base_ref.startswith(("refs/", "HEAD~", "HEAD^")):
        wanted = base_ref.removeprefix("refs/heads/")
        exists = git.run("rev-parse", "--verify", "--quiet", f"refs/heads/{wanted}", ok=(0, 1)).returncode == 0
        if exists and branch != wanted:
            raise Refused(f"the main checkout is on {branch}, the job's base is {wanted}: git switch {wanted}")
    gitdir = Path(git.out("rev-parse", "--git-dir"))
    gitdir = gitdir if gitdir.is_absolute() else git.cwd / gitdir
    for busy, what in (("MERGE_HEAD", "merge"), ("CHERRY_PICK_HEAD", "cherry-pick"), ("rebase-merge", "rebase")):
        if (gitdir / busy).exists():
            raise Refused(f"a {what} is in progress in the main checkout: finish it or git {what} --abort")
    dirty = git.out("status", "--porcelain", "--untracked-files=no")
    if dirty:
        n = len(dirty.splitlines())
        raise Refused(f"the main checkout has {n} uncommitted change(s): commit or stash them (git stash)")
    return Checkout(branch, git.out("rev-parse", "HEAD"))


def conflicts(git: Git, head: str, commit: str) -> list[str]:
    """Files that would conflict merging `commit` into `head` (git merge-tree; nothing written to the checkout)."""
    proc = git.run("merge-tree", "--write-tree", "--name-only", "--no-messages", head, commit, ok=(0, 1))
    if proc.returncode == 0:
        return []
    return [ln for ln in proc.stdout.splitlines()[1:] if ln.strip()]


def land(git: Git, mode: str, commit: str, base_sha: str, message: str) -> str:
    """Land `commit` on the checked-out branch; returns the new head. Checked by the
    caller (ready_checkout, conflicts); a failure here is undone before it is raised."""
    before = git.out("rev-parse", "HEAD")
    try:
        if mode == "merge":
            git.run("merge", "--no-ff", "--no-edit", "-m", message, commit)
        elif mode == "squash":
            git.run("merge", "--squash", commit)
            git.run("commit", "--no-edit", "-m", message)
        elif mode == "rebase":
            if git.run("merge-base", "--is-ancestor", before, commit, ok=(0, 1)).returncode == 0:
                git.run("merge", "--ff-only", commit)
            else:  # the base moved: the run's commits replayed on top, as `git rebase` would
                git.run("cherry-pick", "--allow-empty", f"{base_sha}..{commit}")
        else:
            raise CocodeError(f"unknown landing mode {mode!r} (choose {', '.join(MODES)})")
    except CocodeError:
        _undo(git, before)
        raise
    return git.out("rev-parse", "HEAD")


def _undo(git: Git, before: str) -> None:
    for args in (("merge", "--abort"), ("cherry-pick", "--abort")):
        git.run(*args, ok=(0, 1, 128))
    git.run("reset", "--hard", "--quiet", before)  # the tree was clean before we started


def remote(git: Git) -> str:
    names = git.out("remote").split()
    if not names:
        raise Refused("the repository has no remote to push to: git remote add origin URL")
    return "origin" if "origin" in names else names[0]


def push(git: Git, remote_name: str, commit: str, branch: str) -> None:
    """Push `commit` as `branch`; never forced: a remote branch with other commits
    refuses it, and nothing changes (the fix is named)."""
    proc = git.run("push", "--porcelain", remote_name, f"{commit}:refs/heads/{branch}", ok=(0, 1))
    if proc.returncode != 0:
        why = last_line(proc.stderr)
        if "[rejected]" in proc.stdout or "rejected" in proc.stderr:
            why = f"{remote_name} already has {branch} with other commits (rejected)"
            raise CocodeError(f"git push refused, nothing changed: {why}: look at it, then "
                              f"`git push {remote_name} --delete {branch}` and pick again", EXIT_ERROR)
        raise CocodeError(f"git push to {remote_name} failed, nothing changed: {why}", EXIT_ERROR)
