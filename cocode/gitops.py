"""Git operations for agent runs: worktrees, light workspaces, branch heads, readiness, diffs, sizes.

This module owns every touch of git that cocode makes on behalf of a run: creating
and removing the run's worktree (or, for big repositories, a shallow "light
workspace" clone and bringing its commits back), reading a branch head cheaply and
often, finding the commit that carries the ready marker, measuring a run's change,
and sizing a repository by ADR-005 §3. Reads go through pygit2; the git CLI is used
where libgit2 lacks the feature (clone depth/filters, sparse checkout, LFS filters,
`ls-files --exclude-standard`) or where it measured faster (`git worktree add`).

Nothing here knows about events or sockets: callers turn the results into events.
Errors a user can act on are `CocodeError`s with a one-line message naming the fix.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import msgspec
import pygit2
from pygit2.enums import SortMode

from cocode.errors import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_MISSING_DEPENDENCY,
    EXIT_TIMEOUT,
    CocodeError,
)

MB = 1024 * 1024
GB = 1024 * MB

# ADR-005 §4: git operations get 5 minutes, clones 15 minutes (+1 min per 100 MB,
# which the caller adds because only it knows the size).
GIT_TIMEOUT = 300.0
CLONE_TIMEOUT = 900.0

# ADR-005 §3 thresholds, on the working tree (LFS content counted apart).
LIGHT_WORKTREE_BYTES = 100 * MB
WARN_WORKTREE_BYTES = 1 * GB
MAX_TOTAL_BYTES = 10 * GB

_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
# A pointer file is ~130 bytes; anything much bigger is real (smudged) content.
_LFS_POINTER_MAX = 1024

# cocode may be started from a git hook or an IDE terminal that exports these; they
# would silently redirect our git commands to some other repository.
_GIT_ENV_DROP = frozenset({
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
})


# --------------------------------------------------------------------------- helpers


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    # No terminal is watching: a credential prompt would hang until the timeout.
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def _git(cwd: Path | str, *args: str, timeout: float = GIT_TIMEOUT, input: bytes | None = None) -> bytes:
    """Run git in `cwd`; raise CocodeError carrying git's own last line on failure."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=timeout,
            env=_git_env(), input=input,
        )
    except FileNotFoundError:
        raise CocodeError("git is not on PATH: install git (2.25 or newer)", EXIT_MISSING_DEPENDENCY) from None
    except subprocess.TimeoutExpired:
        raise CocodeError(
            f"git {args[0]} took over {timeout:.0f}s in {cwd}: check disk and load, then retry",
            EXIT_TIMEOUT,
        ) from None
    if proc.returncode != 0:
        raise CocodeError(f"git {args[0]} failed in {cwd}: {_last_line(proc.stderr)}", EXIT_ERROR)
    return proc.stdout


def _open(repo_root: Path | str) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(repo_root))
    except pygit2.GitError:
        raise CocodeError(
            f"{repo_root} is not a git repository: run cocode inside one or pass -C DIR", EXIT_CONFIG
        ) from None


def _commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit:
    try:
        return repo.revparse_single(sha).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise CocodeError(f"{sha!r} is not a commit in {repo.workdir or repo.path}", EXIT_ERROR) from None


def _common_dir(repo: pygit2.Repository) -> Path:
    """The shared .git directory, also when `repo` was opened through a linked worktree."""
    gitdir = Path(repo.path)
    # A linked worktree's gitdir is <common>/worktrees/<name>/ and holds a `commondir` file.
    if (gitdir / "commondir").is_file():
        return (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
    return gitdir.resolve()


def git_common_dir(repo_root: Path | str) -> Path:
    """The .git directory a run's commits are written to (agents' sandboxes must allow it)."""
    return _common_dir(_open(repo_root))


def human_size(n: int) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------------- commits


def resolve_commit(repo_root: Path, ref: str) -> str:
    """The full sha of `ref` (branch, tag, sha, `HEAD~2`...), for `--base`."""
    repo = _open(repo_root)
    try:
        return str(repo.revparse_single(ref).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        raise CocodeError(
            f"bad --base '{ref}': not a commit in {repo_root}; pass a branch, tag or sha from `git log`",
            EXIT_CONFIG,
        ) from None


# ----------------------------------------------------------------------- worktrees


def _checked_out_branch(repo: pygit2.Repository, path: Path) -> str | None:
    """The branch a linked worktree of `repo` at `path` has checked out, else None."""
    if not (path / ".git").is_file():
        return None
    try:
        wt = pygit2.Repository(str(path))
    except pygit2.GitError:
        return None
    if _common_dir(wt) != _common_dir(repo):
        return None
    head = wt.lookup_reference("HEAD")
    # Detached HEAD: the run is not on any branch, so it is not the run's worktree.
    if head.type != pygit2.enums.ReferenceType.SYMBOLIC:
        return None
    return head.target.removeprefix("refs/heads/")


def _worktree_name(repo: pygit2.Repository, path: Path) -> str | None:
    target = path.resolve()
    for name in repo.list_worktrees():
        try:
            if Path(repo.lookup_worktree(name).path).resolve() == target:
                return name
        except pygit2.GitError:
            continue
    return None


def _prune_missing(repo: pygit2.Repository, path: Path) -> None:
    # A worktree directory deleted by hand leaves its entry behind, and git then
    # refuses to add a new worktree at the same path.
    name = _worktree_name(repo, path)
    if name is not None and not path.exists():
        repo.lookup_worktree(name).prune(False)


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
    repo = _open(repo_root)
    path = Path(path).absolute()
    current = _checked_out_branch(repo, path)
    if current == branch:
        return
    if current is not None:
        raise CocodeError(
            f"{path} is a worktree on {current}, not {branch}: remove it with "
            f"`git worktree remove {path}` or use another job id", EXIT_ERROR,
        )
    if path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} already exists and is not a cocode worktree: move it away or delete it", EXIT_ERROR)
    _prune_missing(repo, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if branch in repo.branches.local:
        _git(repo_root, "worktree", "add", "--quiet", str(path), branch)
    else:
        _commit(repo, base_sha)
        _git(repo_root, "worktree", "add", "--quiet", "-b", branch, str(path), base_sha)


def remove_worktree(repo_root: Path, path: Path) -> None:
    """Delete a run's worktree (or light workspace) and its entry; the branch stays.

    A light workspace's branch is fetched back into `repo_root` first, so removing it
    can never lose commits: if the fetch fails, nothing is deleted.
    """
    repo = _open(repo_root)
    path = Path(path).absolute()
    top = Path(repo.workdir or repo.path).resolve()
    if path.resolve() == top or path.resolve() in top.parents:
        raise CocodeError(f"refusing to delete {path}: it holds the repository itself", EXIT_ERROR)
    name = _worktree_name(repo, path)
    if name is not None:
        if (_common_dir(repo) / "worktrees" / name / "locked").exists():
            raise CocodeError(f"worktree {path} is locked: run `git worktree unlock {path}` first", EXIT_ERROR)
    elif (path / ".git").is_dir():
        light_branch = _light_workspace_branch(repo_root, path)
        if light_branch is None:
            raise CocodeError(f"{path} is a separate repository, not a cocode workspace: delete it yourself", EXIT_ERROR)
        fetch_back(repo_root, path, light_branch)
    elif path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} is not a worktree of {repo_root}: delete it yourself if it is junk", EXIT_ERROR)
    if path.exists():
        shutil.rmtree(path)
    if name is not None:
        repo.lookup_worktree(name).prune(False)


# -------------------------------------------------------------------- branch heads


class BranchWatcher:
    """Repeated cheap reads of one branch head (a few µs: one ref file read, no fork).

    The pygit2.Repository is opened once and kept; libgit2 re-reads the loose ref
    (or packed-refs) on each lookup, so the answer is always current. Not
    thread-safe: give each thread its own watcher.
    """

    __slots__ = ("_repo", "_ref")

    def __init__(self, repo_root: Path, branch: str):
        self._repo = _open(repo_root)
        self._ref = f"refs/heads/{branch}"

    def head(self) -> str | None:
        """The branch's commit sha, or None while the branch does not exist."""
        try:
            return str(self._repo.lookup_reference(self._ref).target)
        except (KeyError, pygit2.InvalidSpecError):
            return None


def find_ready_commit(repo_root: Path, base_sha: str, head_sha: str, marker: str) -> str | None:
    """The oldest commit after base on head's first-parent line whose message has `marker`.

    Only the message (subject or body) counts, never file contents, so an agent that
    merely writes the marker into a file is not "ready". First-parent, because a
    merged-in side branch (e.g. someone else's ready commit) is not this run's claim.
    """
    repo = _open(repo_root)
    walker = repo.walk(_commit(repo, head_sha).id, SortMode.TOPOLOGICAL | SortMode.REVERSE)
    walker.simplify_first_parent()
    walker.hide(_commit(repo, base_sha).id)
    for commit in walker:
        if marker in commit.message:
            return str(commit.id)
    return None


def count_commits(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Commits in head not in base, like `git rev-list --count base..head`."""
    repo = _open(repo_root)
    walker = repo.walk(_commit(repo, head_sha).id)
    walker.hide(_commit(repo, base_sha).id)
    return sum(1 for _ in walker)


def _diff(repo_root: Path, base_sha: str, head_sha: str) -> pygit2.Diff:
    repo = _open(repo_root)
    diff = repo.diff(_commit(repo, base_sha), _commit(repo, head_sha), context_lines=3, interhunk_lines=0)
    # git diff detects renames by default; a moved file should not count as all-new lines.
    diff.find_similar()
    return diff


def changed_lines(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Insertions + deletions between base and head (ADR-005 §4 adaptive timeouts)."""
    stats = _diff(repo_root, base_sha, head_sha).stats
    return stats.insertions + stats.deletions


def diff_text(repo_root: Path, base_sha: str, head_sha: str) -> str:
    """The patch from base to head, as `git diff base..head` prints it."""
    # Per-patch bytes, decoded leniently: Diff.patch raises on files that are not UTF-8.
    return "".join(p.data.decode("utf-8", errors="replace") for p in _diff(repo_root, base_sha, head_sha) if p)


# ----------------------------------------------------------------- repository size


class RepoSize(msgspec.Struct, frozen=True):
    """A repository's size by ADR-005 §3. Bytes are on-disk sizes unless noted."""

    worktree_bytes: int  # tracked + untracked-not-ignored files, minus LFS-tracked ones
    total_bytes: int  # every listed working file (LFS included) + the .git directory
    lfs_bytes: int  # LFS content size: pointer's declared size, or the file if smudged
    lfs_files: int
    file_count: int  # listed files that exist as regular files (LFS included)


def _listed_files(repo_root: Path) -> list[bytes]:
    out = _git(repo_root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    # A conflicted path is listed once per stage.
    return sorted({p for p in out.split(b"\0") if p})


def _lfs_tracked(repo_root: Path, paths: list[bytes], root: bytes) -> set[bytes]:
    # check-attr over every path costs a process and a pass; skip it unless some
    # .gitattributes mentions LFS at all (almost no repository does).
    mentions = False
    for p in paths:
        if os.path.basename(p) == b".gitattributes":
            try:
                with open(os.path.join(root, p), "rb") as f:
                    mentions = mentions or b"filter=lfs" in f.read()
            except OSError:
                pass
    if not mentions:
        return set()
    out = _git(repo_root, "check-attr", "-z", "--stdin", "filter", input=b"\0".join(paths) + b"\0")
    fields = out.split(b"\0")
    return {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == b"lfs"}


def _lfs_content_size(full: bytes, size: int) -> int:
    if size > _LFS_POINTER_MAX:
        return size
    try:
        with open(full, "rb") as f:
            head = f.read(_LFS_POINTER_MAX)
    except OSError:
        return size
    if not head.startswith(_LFS_POINTER_PREFIX):
        return size
    for line in head.splitlines():
        if line.startswith(b"size "):
            try:
                return int(line[5:])
            except ValueError:
                break
    return size


def _dir_usage(top: Path) -> tuple[int, int]:
    """(bytes, files) of regular files under `top`, symlinks not followed."""
    total = files = 0
    stack = [str(top)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                        files += 1
                except OSError:
                    continue
    return total, files


def repo_size(repo_root: Path) -> RepoSize:
    """Measure a repository by ADR-005 §3: working tree without .git and ignored files,
    total with .git, LFS content apart."""
    repo = _open(repo_root)
    root = os.fsencode(str(Path(repo_root).absolute()))
    paths = _listed_files(repo_root)
    lfs_paths = _lfs_tracked(repo_root, paths, root)
    worktree = on_disk_lfs = lfs_bytes = lfs_files = count = 0
    for p in paths:
        full = os.path.join(root, p)
        try:
            st = os.lstat(full)
        except OSError:
            continue  # tracked but deleted in the working tree
        if not stat.S_ISREG(st.st_mode):
            continue  # symlinks and submodules (gitlinks) take no content of their own
        count += 1
        if p in lfs_paths:
            lfs_files += 1
            on_disk_lfs += st.st_size
            lfs_bytes += _lfs_content_size(full, st.st_size)
        else:
            worktree += st.st_size
    git_bytes, _ = _dir_usage(_common_dir(repo))
    if lfs_files == 0:
        # No attributes say LFS (yet objects were fetched): still report the store.
        lfs_bytes, lfs_files = _dir_usage(_common_dir(repo) / "lfs" / "objects")
    return RepoSize(
        worktree_bytes=worktree,
        total_bytes=worktree + on_disk_lfs + git_bytes,
        lfs_bytes=lfs_bytes,
        lfs_files=lfs_files,
        file_count=count,
    )


class SizePolicy(msgspec.Struct, frozen=True):
    """What ADR-005 §3 says to do with a repository of a given size."""

    warnings: list[str]
    light: bool  # use a shallow light workspace instead of a full worktree
    refusal: str | None = None  # set when cocode must not start; the message names the fix
    refusal_exit: int = EXIT_ERROR

    def check(self) -> None:
        """Raise the refusal as a CocodeError, if there is one."""
        if self.refusal is not None:
            raise CocodeError(self.refusal, self.refusal_exit)


def size_policy(size: RepoSize, max_repo_size_mb: int, force: bool) -> SizePolicy:
    """Warnings, refusal and workspace kind for a repository size (pure)."""
    warnings: list[str] = []
    wt = human_size(size.worktree_bytes)
    if size.worktree_bytes > WARN_WORKTREE_BYTES:
        warnings.append(
            f"working tree is {wt} (over 1 GB): each run's checkout is slow and large; "
            "consider a sparse checkout"
        )
    if size.lfs_files:
        warnings.append(
            f"{size.lfs_files} Git LFS file(s), {human_size(size.lfs_bytes)}, are not counted "
            "in the working tree size; runs fetch them only if git-lfs is installed"
        )
    refusal: str | None = None
    refusal_exit = EXIT_ERROR
    if size.total_bytes > MAX_TOTAL_BYTES:
        # Over the total limit even --force does not help: disk and clone time explode.
        refusal = (
            f"repository is {human_size(size.total_bytes)} including .git (limit 10.0 GB): "
            "shrink it (git gc, git lfs prune) or run cocode in a smaller clone"
        )
    elif size.worktree_bytes > max_repo_size_mb * MB:
        if force:
            warnings.append(f"working tree is {wt}, over max_repo_size_mb={max_repo_size_mb}: going on because of --force")
        else:
            refusal = (
                f"working tree is {wt}, over max_repo_size_mb={max_repo_size_mb}: "
                "pass --force to run anyway, or raise performance.max_repo_size_mb"
            )
            refusal_exit = EXIT_CONFIG
    return SizePolicy(
        warnings=warnings,
        light=size.worktree_bytes > LIGHT_WORKTREE_BYTES,
        refusal=refusal,
        refusal_exit=refusal_exit,
    )


# ----------------------------------------------------------------- light workspaces


def _light_workspace_branch(repo_root: Path, workspace: Path) -> str | None:
    """The branch of a light workspace cloned from `repo_root`, else None."""
    try:
        ws = pygit2.Repository(str(workspace))
        url = ws.remotes["origin"].url
    except (pygit2.GitError, KeyError):
        return None
    if url != Path(repo_root).resolve().as_uri():
        return None
    head = ws.lookup_reference("HEAD")
    if head.type != pygit2.enums.ReferenceType.SYMBOLIC:
        return None
    return head.target.removeprefix("refs/heads/")


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
    repo = _open(repo_root)
    path = Path(path).absolute()
    if _light_workspace_branch(repo_root, path) == branch:
        return
    if path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} already exists and is not a cocode workspace: move it away or delete it", EXIT_ERROR)
    base = _commit(repo, base_sha)
    if branch not in repo.branches.local:
        repo.branches.local.create(branch, base)
    tip = str(repo.branches.local[branch].target)

    path.mkdir(parents=True, exist_ok=True)
    try:
        _git(path, "init", "--quiet")
        _git(path, "remote", "add", "origin", Path(repo_root).resolve().as_uri())
        # Single branch: the workspace never fetches anything but what we ask for.
        _git(path, "config", "--unset-all", "remote.origin.fetch")
        # upload-pack ignores --filter unless the serving side allows it; the serving
        # side is the user's repository, whose config we do not touch.
        _git(path, "config", "remote.origin.uploadpack", "git -c uploadpack.allowFilter=true upload-pack")
        fetch = ["fetch", "--quiet", "--no-tags", "--depth", "1"]
        if sparse:
            fetch.append("--filter=blob:none")
        _git(path, *fetch, "origin", str(base.id), timeout=timeout)
        if tip != str(base.id):
            # Without --depth the fetch stops at the shallow base: exactly the run's commits.
            _git(path, "fetch", "--quiet", "--no-tags", "origin", tip, timeout=timeout)
        if sparse:
            _git(path, "sparse-checkout", "set", *sparse)
        _git(path, "checkout", "--quiet", "-b", branch, tip, timeout=timeout)
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
        _git(repo_root, "fetch", "--no-tags", url, f"{ref}:{ref}", timeout=timeout)
    except CocodeError as e:
        if "rejected" not in e.message:
            raise
        raise CocodeError(
            f"git fetch failed: {branch} moved in {repo_root} since the run began; its commits are "
            f"safe in {workspace}: bring them over with `git fetch {url} {branch}` and merge",
            EXIT_ERROR,
        ) from None
