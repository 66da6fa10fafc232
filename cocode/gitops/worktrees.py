"""A run's place to work: a linked worktree, or for big repositories a light workspace.

`create_worktree` gives a run its worktree on a new branch (kept as it is when a
requeued run finds it); `create_light_workspace` makes a shallow single-commit
clone instead (ADR-005 §3), whose commits come back through `fetch_back`;
`remove_worktree` deletes either, never a branch or a commit.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cocode.errors import EXIT_ERROR, CocodeError
from cocode.gitops.clones import ensure_branch, is_run_clone, settle_run_clone
from cocode.gitops.refs import resolve_names
from cocode.gitops.runner import CLONE_TIMEOUT, GIT_TIMEOUT, git, git_dirs, toplevel


def _checked_out_branch(common: Path, path: Path) -> str | None:
    """The branch a linked worktree of the repository whose common dir is `common`
    has checked out at `path`, else None (not a worktree, another repository's, or
    a detached HEAD)."""
    if not (path / ".git").is_file():
        return None
    try:
        out = git(path, "rev-parse", "--git-common-dir", "--symbolic-full-name", "HEAD")
    except CocodeError:
        return None
    wt_common, head = (os.fsdecode(out).split("\n") + ["", ""])[:2]
    if (path / wt_common).resolve() != common:
        return None
    # Detached HEAD prints "HEAD": the run is not on any branch, so it is not the run's worktree.
    return head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None


def _worktree_admin(common: Path, path: Path) -> Path | None:
    """The admin directory <common>/worktrees/<name> of the worktree registered at `path`.

    Found as git and libgit2 do: each admin directory's `gitdir` file names
    <worktree>/.git. Read directly (no process): it must work after `path` is gone.
    """
    target = path.resolve()
    try:
        admins = list((common / "worktrees").iterdir())
    except OSError:
        return None
    for admin in admins:
        try:
            gitdir = Path((admin / "gitdir").read_text().strip())
        except (OSError, UnicodeDecodeError):
            continue
        if (admin / gitdir).parent.resolve() == target:
            return admin
    return None


def _prune_missing(common: Path, path: Path) -> None:
    # A worktree directory deleted by hand leaves its entry behind, and git then
    # refuses to add a new worktree at the same path. Only this entry is pruned
    # (what libgit2's prune did), not every stale one as `git worktree prune` would;
    # a locked entry is left for `git worktree add` to refuse with its own message.
    if path.exists():
        return
    admin = _worktree_admin(common, path)
    if admin is not None and not (admin / "locked").exists():
        shutil.rmtree(admin, ignore_errors=True)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def create_worktree(repo_root: Path, path: Path, branch: str, base_sha: str) -> None:
    """Give a run its worktree at `path` on a new `branch` starting at `base_sha`.

    A requeued run finds its worktree already there on its branch and keeps it
    untouched, commits and all. If only the branch survives (the worktree was
    removed), the branch is checked out again as it is, never reset to the base.

    `git worktree add` is used rather than pygit2 `add_worktree`: it measured faster
    (2,000 files: ~265 ms vs ~360 ms) and, unlike libgit2, runs LFS smudge filters.
    """
    _, common = git_dirs(repo_root)
    path = Path(path).absolute()
    current = _checked_out_branch(common, path)
    if current == branch:
        return
    if current is not None:
        raise CocodeError(
            f"{path} is a worktree on {current}, not {branch}: remove it with "
            f"`git worktree remove {path}` or use another job id", EXIT_ERROR,
        )
    if path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} already exists and is not a cocode worktree: move it away or delete it", EXIT_ERROR)
    _prune_missing(common, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tip, base = resolve_names(repo_root, f"refs/heads/{branch}", f"{base_sha}^{{commit}}")
    if tip is not None:
        git(repo_root, "worktree", "add", "--quiet", str(path), branch)
    elif base is None:
        raise CocodeError(f"{base_sha!r} is not a commit in {repo_root}", EXIT_ERROR)
    else:
        git(repo_root, "worktree", "add", "--quiet", "-b", branch, str(path), base)


def remove_worktree(repo_root: Path, path: Path) -> None:
    """Delete a run's worktree (or light workspace, or clone) and its entry; the branch stays.

    A light workspace's branch is fetched back into `repo_root` first, so removing it
    can never lose commits: if the fetch fails, nothing is deleted.
    """
    _, common = git_dirs(repo_root)
    path = Path(path).absolute()
    top = toplevel(repo_root)
    if path.resolve() == top or path.resolve() in top.parents:
        raise CocodeError(f"refusing to delete {path}: it holds the repository itself", EXIT_ERROR)
    admin = _worktree_admin(common, path)
    if admin is not None:
        if (admin / "locked").exists():
            raise CocodeError(f"worktree {path} is locked: run `git worktree unlock {path}` first", EXIT_ERROR)
    elif is_run_clone(repo_root, path):
        settle_run_clone(repo_root, path)
    elif (path / ".git").is_dir():
        light_branch = _light_workspace_branch(repo_root, path)
        if light_branch is None:
            raise CocodeError(f"{path} is a separate repository, not a cocode workspace: delete it yourself", EXIT_ERROR)
        fetch_back(repo_root, path, light_branch)
    elif path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} is not a worktree of {repo_root}: delete it yourself if it is junk", EXIT_ERROR)
    if path.exists():
        shutil.rmtree(path)
    if admin is not None:
        _prune_missing(common, path)


# ----------------------------------------------------------------- light workspaces


def _light_workspace_branch(repo_root: Path, workspace: Path) -> str | None:
    """The branch of a light workspace cloned from `repo_root`, else None."""
    # Its own repository: a .git directory (a worktree has a .git file). Checked first
    # also so git cannot wander up into an enclosing repository.
    if not (workspace / ".git").is_dir():
        return None
    try:
        url = os.fsdecode(git(workspace, "config", "--get", "remote.origin.url")).strip()
        if url != Path(repo_root).resolve().as_uri():
            return None
        head = os.fsdecode(git(workspace, "symbolic-ref", "--quiet", "HEAD")).strip()
    except CocodeError:  # no origin, or a detached HEAD
        return None
    return head.removeprefix("refs/heads/") if head.startswith("refs/heads/") else None


def create_light_workspace(
    repo_root: Path,
    path: Path,
    branch: str,
    base_sha: str,
    sparse: list[str] | None = None,
    *,
    timeout: float = CLONE_TIMEOUT,
) -> None:
    """A shallow, single-commit clone of `repo_root` at `path`, on a new `branch` at base.

    For big repositories (ADR-005 §3) where a full worktree per run costs too much.
    It is `git clone --depth 1 --single-branch` spelled as init + one fetch, because
    clone cannot start at an arbitrary commit. The file:// URL makes git use its
    transport (a plain path would hard-link everything and ignore --depth). With
    `sparse` (cone-mode directories) the fetch is also blob-less, so only the
    sparse paths' file contents are ever transferred.

    The branch is also created in `repo_root` at base (if missing), so `fetch_back`
    is a fast-forward and a requeued run resumes from the branch's commits.
    Commits reach `repo_root` only through `fetch_back` (or `remove_worktree`).
    """
    git_dirs(repo_root)  # a clear error if it is no repository
    path = Path(path).absolute()
    if _light_workspace_branch(repo_root, path) == branch:
        return
    if path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} already exists and is not a cocode workspace: move it away or delete it", EXIT_ERROR)
    tip, base = ensure_branch(repo_root, branch, base_sha)

    path.mkdir(parents=True, exist_ok=True)
    try:
        git(path, "init", "--quiet")
        git(path, "remote", "add", "origin", Path(repo_root).resolve().as_uri())
        # Single branch: the workspace never fetches anything but what we ask for.
        git(path, "config", "--unset-all", "remote.origin.fetch")
        # upload-pack ignores --filter unless the serving side allows it; the serving
        # side is the user's repository, whose config we do not touch.
        git(path, "config", "remote.origin.uploadpack", "git -c uploadpack.allowFilter=true upload-pack")
        fetch = ["fetch", "--quiet", "--no-tags", "--depth", "1"]
        if sparse:
            fetch.append("--filter=blob:none")
        git(path, *fetch, "origin", base, timeout=timeout)
        if tip != base:
            # Without --depth the fetch stops at the shallow base: exactly the run's commits.
            git(path, "fetch", "--quiet", "--no-tags", "origin", tip, timeout=timeout)
        if sparse:
            git(path, "sparse-checkout", "set", *sparse)
        git(path, "checkout", "--quiet", "-b", branch, tip, timeout=timeout)
    except CocodeError:
        shutil.rmtree(path, ignore_errors=True)
        raise


def fetch_back(repo_root: Path, workspace: Path, branch: str, *, timeout: float = GIT_TIMEOUT) -> None:
    """Bring a light workspace's `branch` into `repo_root` under the same name.

    A fast-forward only: if the branch moved in `repo_root` meanwhile, git refuses
    and the workspace keeps the commits, instead of one side overwriting the other.
    """
    ref = f"refs/heads/{branch}"
    url = Path(workspace).resolve().as_uri()
    try:
        git(repo_root, "fetch", "--no-tags", url, f"{ref}:{ref}", timeout=timeout)
    except CocodeError as e:
        if "rejected" not in e.message:
            raise
        raise CocodeError(
            f"git fetch failed: {branch} moved in {repo_root} since the run began; its commits are "
            f"safe in {workspace}: bring them over with `git fetch {url} {branch}` and merge",
            EXIT_ERROR,
        ) from None
