"""A run's own repository: refs no other run can write (issue 11, defect 4).

A linked worktree shares refs/ with every other run: an agent allowed to commit
can move any run's branch. Instead each run works in a clone of the repository
that borrows its objects read-only (`git clone --shared`: an alternates file, no
copy) and has its own refs, HEAD and index. The agent commits there; the worker,
never the agent, copies each new head of the run's branch into the repository
(`take_head`): it fetches exactly the commit it saw, checks that it descends from
the run's base, and only then moves the branch. Under the sandbox the repository's
.git is read-only to agents, so this is the only way a run's branch moves.

Every command here runs in the repository (trusted config), never in the clone:
the clone's config is the agent's to write, and git run there by the worker could
be made to run the agent's programs outside its sandbox. (`git fetch` from the
clone runs `upload-pack` there, which ignores the config that could do that.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cocode.errors import EXIT_ERROR, CocodeError
from cocode.gitops.history import descends_from
from cocode.gitops.refs import resolve_names
from cocode.gitops.runner import CLONE_TIMEOUT, GIT_TIMEOUT, git, git_dirs

# The clone serves exactly the commit asked for: the head the worker saw, not
# whatever the branch points at by the time the fetch runs.
UPLOAD_PACK = "git -c uploadpack.allowAnySHA1InWant=true upload-pack"


def is_run_clone(repo_root: Path, path: Path) -> bool:
    """Whether `path` is a clone made by `create_run_clone` from `repo_root`."""
    alternates = Path(path) / ".git" / "objects" / "info" / "alternates"
    try:
        lines = alternates.read_text().split()
    except (OSError, UnicodeDecodeError):
        return False
    return str(git_dirs(repo_root)[1] / "objects") in lines


def ensure_branch(repo_root: Path, branch: str, base_sha: str) -> tuple[str, str]:
    """(tip, base): `branch`'s tip in `repo_root`, created at `base_sha` if missing (so a
    requeued run resumes from its commits), and the base commit itself."""
    tip, base = resolve_names(repo_root, f"refs/heads/{branch}", f"{base_sha}^{{commit}}")
    if base is None:
        raise CocodeError(f"{base_sha!r} is not a commit in {repo_root}", EXIT_ERROR)
    if tip is None:
        # The empty old value: create it, and fail rather than move it if it appeared meanwhile.
        git(repo_root, "update-ref", "-m", f"branch: Created from {base}", f"refs/heads/{branch}", base, "")
        tip = base
    return tip, base


def create_run_clone(repo_root: Path, path: Path, branch: str, base_sha: str, *, timeout: float = CLONE_TIMEOUT) -> None:
    """Give a run its own clone at `path`, on `branch` at its tip in `repo_root` (created
    there at `base_sha` if missing, so a requeued run resumes from its commits). A
    clone already there is kept as it is."""
    path = Path(path).absolute()
    if is_run_clone(repo_root, path):
        return
    if path.exists() and any(path.iterdir()):
        raise CocodeError(f"{path} already exists and is not a cocode workspace: move it away or delete it", EXIT_ERROR)
    tip, _ = ensure_branch(repo_root, branch, base_sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Only the run's branch: other runs' branches are not the agent's business.
        git(path.parent, "clone", "--quiet", "--shared", "--no-checkout", "--single-branch", "--no-tags",
            "--branch", branch, str(Path(repo_root).resolve()), str(path), timeout=timeout)
        git(path, "remote", "set-url", "origin", Path(repo_root).resolve().as_uri())
        git(path, "checkout", "--quiet", "-B", branch, tip, timeout=timeout)
    except CocodeError:
        shutil.rmtree(path, ignore_errors=True)
        raise


def take_head(repo_root: Path, clone: Path, branch: str, base_sha: str, head: str,
              *, timeout: float = GIT_TIMEOUT) -> bool:
    """Copy commit `head` of the run's clone into `repo_root` as `branch`; False (and
    the branch left where it was) if it does not descend from the run's base: then
    it is not the run's work. Raises CocodeError if git fails (the commit is gone)."""
    fetch_head(repo_root, clone, head, timeout=timeout)
    if not descends_from(repo_root, base_sha, head):
        return False
    move_branch(repo_root, branch, head)
    return True


def fetch_head(repo_root: Path, clone: Path, head: str, *, timeout: float = GIT_TIMEOUT) -> None:
    """Bring commit `head` of the run's clone and all it needs into `repo_root`'s objects,
    checked as any fetch is (every object hashed on arrival, then connected), and no ref
    moved. No auto-maintenance: that is one more git process on the way to `run_ready`
    after every commit of every run; the repository's own git commands still run it."""
    git(repo_root, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-auto-maintenance",
        f"--upload-pack={UPLOAD_PACK}", Path(clone).resolve().as_uri(), head, timeout=timeout)


def move_branch(repo_root: Path, branch: str, head: str) -> None:
    """Point the run's branch in `repo_root` at `head` (fetched, and found to be its work)."""
    git(repo_root, "update-ref", "-m", "cocode: the run's commit", f"refs/heads/{branch}", head)


def settle_run_clone(repo_root: Path, path: Path) -> None:
    """Before a run's clone is deleted: its branch's last head into `repo_root`, if the
    worker did not take it already (it was stopped first). A head that is not the
    run's work keeps the clone, so nothing is deleted that someone may want."""
    from cocode.gitops.refs import BranchWatcher

    try:  # read, not asked of git: no git command runs on the agent's config
        branch = (Path(path) / ".git" / "HEAD").read_text().strip().removeprefix("ref: refs/heads/")
    except (OSError, UnicodeDecodeError):
        return
    tip = BranchWatcher(path, branch).head()
    ours = resolve_names(repo_root, f"refs/heads/{branch}")[0]
    if tip is None or ours is None or ours == tip:
        return
    # From what the repository has (the run's base or later): a later rewrite of
    # taken commits is not taken blindly.
    if not take_head(repo_root, path, branch, ours, tip):
        raise CocodeError(f"{path} not removed: its {branch} was rewritten since cocode last took it; "
                          "look at it and delete it yourself", EXIT_ERROR)
