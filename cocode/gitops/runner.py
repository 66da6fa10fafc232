"""The one way cocode runs git, and where a repository's directories are.

Every git command cocode runs goes through `run` (git's answer as it is) or `git`
(its output, or a one-line CocodeError). Both apply one environment policy
(`git_env`), so a command always acts on the repository it is run in and never
waits for a person:

- variables that redirect git to another repository (GIT_DIR, GIT_WORK_TREE, ...)
  are dropped: cocode may be started from a git hook or an IDE terminal that
  exports them;
- GIT_TERMINAL_PROMPT=0: no terminal is watching, so a credential prompt would
  hang until the timeout;
- LC_ALL=C: git's messages are parsed (a rejected fetch) and quoted into cocode's
  English errors; plumbing output does not depend on the locale. Hooks and
  filters git starts inherit it too.

Repository directories (`git_dirs`, `git_common_dir`, `git_dir`, `toplevel`) take
at most one `git rev-parse` each. This module needs nothing of cocode but its
errors, so config (below gitops) may use it without a circle.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from cocode.errors import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_MISSING_DEPENDENCY,
    EXIT_TIMEOUT,
    CocodeError,
)

# ADR-005 §4: git operations get 5 minutes, clones 15 minutes (+1 min per 100 MB,
# which the caller adds because only it knows the size).
GIT_TIMEOUT = 300.0
CLONE_TIMEOUT = 900.0

# Each would silently point our commands at some other repository or index.
_GIT_ENV_DROP = frozenset({
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
})


def git_env() -> dict[str, str]:
    """The environment every git command runs with: ours minus the variables that
    redirect git, never prompting, messages in plain English."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


def last_line(stderr: bytes) -> str:
    """git's last non-blank stderr line: its reason, without the hints before it."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def run(
    cwd: Path | str | None,
    *args: str,
    config: Iterable[str] = (),
    timeout: float = GIT_TIMEOUT,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git [-c c]... args` in `cwd` (default: ours) and return what it did, failed or not.

    Raises CocodeError only when git could not answer: not installed, `cwd`
    missing, or over `timeout`.
    """
    where = os.getcwd() if cwd is None else cwd
    options = [opt for c in config for opt in ("-c", c)]
    try:
        return subprocess.run(
            ["git", *options, *args], cwd=cwd, capture_output=True, timeout=timeout,
            env=git_env(), input=input,
        )
    except FileNotFoundError:
        # Also raised when `cwd` is missing: that is not a missing git.
        if not os.path.isdir(where):
            raise CocodeError(f"{where} does not exist: cannot run git {args[0]} there", EXIT_ERROR) from None
        raise CocodeError("git is not on PATH: install git (2.25 or newer)", EXIT_MISSING_DEPENDENCY) from None
    except OSError as e:  # e.g. `cwd` not searchable
        raise CocodeError(f"cannot run git {args[0]} in {where}: {e.strerror or e}", EXIT_ERROR) from None
    except subprocess.TimeoutExpired:
        raise CocodeError(
            f"git {args[0]} took over {timeout:g}s in {where}: check disk and load, then retry",
            EXIT_TIMEOUT,
        ) from None


def git(
    cwd: Path | str | None,
    *args: str,
    config: Iterable[str] = (),
    timeout: float = GIT_TIMEOUT,
    input: bytes | None = None,
) -> bytes:
    """Run git like `run`; its stdout, or a CocodeError carrying git's own last line."""
    proc = run(cwd, *args, config=config, timeout=timeout, input=input)
    if proc.returncode != 0:
        where = os.getcwd() if cwd is None else cwd
        raise CocodeError(f"git {args[0]} failed in {where}: {last_line(proc.stderr)}", EXIT_ERROR)
    return proc.stdout


# ------------------------------------------------------------------ repository dirs


def git_dirs(repo_root: Path | str) -> tuple[Path, Path]:
    """(git dir, common dir) of the repository at or above `repo_root`: one `git rev-parse`.

    For a linked worktree the git dir is <common>/worktrees/<name> and refs/heads/
    live in the common dir; for a plain repository (a light workspace too) both are
    its .git directory.
    """
    root = Path(repo_root)
    not_repo = CocodeError(f"{repo_root} is not a git repository: run cocode inside one or pass -C DIR", EXIT_CONFIG)
    if not root.is_dir():
        raise not_repo
    try:
        out = git(root, "rev-parse", "--absolute-git-dir", "--git-common-dir")
    except CocodeError as e:
        if e.exit_code != EXIT_ERROR:  # git missing or hanging: say that instead
            raise
        raise not_repo from None
    gitdir, common = os.fsdecode(out).split("\n")[:2]
    # --git-common-dir may be relative to the directory git ran in.
    return Path(gitdir).resolve(), (root / common).resolve()


def git_common_dir(repo_root: Path | str) -> Path:
    """The .git directory a run's commits are written to (agents' sandboxes must allow it)."""
    return git_dirs(repo_root)[1]


def git_dir(root: Path) -> Path:
    """The repository's real git directory, for the top `root` of its working tree
    (a worktree's .git is a file naming it)."""
    dot = root / ".git"
    # No process for the common case, and no dependence on git accepting the
    # directory (safe.directory) just to find where it is.
    return dot if dot.is_dir() else git_common_dir(root)


def toplevel(repo_root: Path | str) -> Path:
    """The working tree holding `repo_root` (its git dir for a bare repository)."""
    try:
        return Path(os.fsdecode(git(repo_root, "rev-parse", "--show-toplevel")).strip()).resolve()
    except CocodeError:
        return git_dirs(repo_root)[0]


def init_repo(root: Path, message: str, *, name: str, email: str) -> None:
    """A new repository at `root` on `main` with everything in it committed once,
    as `name` <`email`> without signing, for the demo's and the benchmarks' samples."""
    who = (f"user.name={name}", f"user.email={email}", "commit.gpgsign=false")
    git(root, "init", "-q", "-b", "main", config=who)
    git(root, "add", "-A", config=who)
    git(root, "commit", "-q", "--allow-empty", "-m", message, config=who)
