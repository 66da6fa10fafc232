"""Git operations for agent runs: worktrees, light workspaces, branch heads, readiness, diffs, sizes.

This module owns every touch of git that cocode makes on behalf of a run: creating
and removing the run's worktree (or, for big repositories, a shallow "light
workspace" clone and bringing its commits back), reading a branch head cheaply and
often, finding the commit that carries the ready marker, measuring a run's change,
and sizing a repository by ADR-005 §3.

Why (almost) no pygit2: the worker process must stay small, and importing pygit2
costs ~18 MiB of RSS and ~80 ms per process. So everything the worker calls
(create_worktree, create_light_workspace, fetch_back, git_common_dir,
BranchWatcher, find_ready_commit, count_commits, changed_lines) uses the git CLI,
one short subprocess per question (~2-5 ms), or plain file reads: a branch head
is read straight from the loose ref file or packed-refs (~3 µs, faster than
pygit2). Only resolve_commit and diff_text, which run in short-lived CLI
processes, still use pygit2, and import it inside the function. Keep it that way:
no module-level `import pygit2` here (tests/test_gitops.py checks).

Nothing here knows about events or sockets: callers turn the results into events.
Errors a user can act on are `CocodeError`s with a one-line message naming the fix.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from cocode.errors import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_MISSING_DEPENDENCY,
    EXIT_TIMEOUT,
    CocodeError,
)

if TYPE_CHECKING:
    import pygit2

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
        # Also raised when `cwd` is missing: that is not a missing git.
        if not os.path.isdir(cwd):
            raise CocodeError(f"{cwd} does not exist: cannot run git {args[0]} there", EXIT_ERROR) from None
        raise CocodeError("git is not on PATH: install git (2.25 or newer)", EXIT_MISSING_DEPENDENCY) from None
    except subprocess.TimeoutExpired:
        raise CocodeError(
            f"git {args[0]} took over {timeout:.0f}s in {cwd}: check disk and load, then retry",
            EXIT_TIMEOUT,
        ) from None
    if proc.returncode != 0:
        raise CocodeError(f"git {args[0]} failed in {cwd}: {_last_line(proc.stderr)}", EXIT_ERROR)
    return proc.stdout


def _git_dirs(repo_root: Path | str) -> tuple[Path, Path]:
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
        out = _git(root, "rev-parse", "--absolute-git-dir", "--git-common-dir")
    except CocodeError as e:
        if e.exit_code != EXIT_ERROR:  # git missing or hanging: say that instead
            raise
        raise not_repo from None
    git_dir, common = os.fsdecode(out).split("\n")[:2]
    # --git-common-dir may be relative to the directory git ran in.
    return Path(git_dir).resolve(), (root / common).resolve()


_OID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256, as git prints them


def _resolve(repo_root: Path | str, *names: str) -> list[str | None]:
    """The object id each revision name stands for, or None where it names nothing.

    One `git cat-file --batch-check` answers them all; `X^{commit}` also checks
    that X is (or peels to) a commit.
    """
    out = _git(repo_root, "cat-file", "--batch-check=%(objectname)", input="".join(n + "\n" for n in names).encode())
    lines = os.fsdecode(out).splitlines()
    if len(lines) != len(names):
        raise CocodeError(f"git cat-file answered {len(lines)} of {len(names)} names in {repo_root}", EXIT_ERROR)
    # A name that resolves to nothing comes back as "<name> missing" (or "ambiguous").
    return [ln if _OID.fullmatch(ln) else None for ln in lines]


def _open(repo_root: Path | str) -> pygit2.Repository:
    import pygit2  # deferred: see the module docstring

    try:
        return pygit2.Repository(str(repo_root))
    except pygit2.GitError:
        raise CocodeError(
            f"{repo_root} is not a git repository: run cocode inside one or pass -C DIR", EXIT_CONFIG
        ) from None


def _commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit:
    import pygit2  # deferred: see the module docstring

    try:
        return repo.revparse_single(sha).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise CocodeError(f"{sha!r} is not a commit in {repo.workdir or repo.path}", EXIT_ERROR) from None


def git_common_dir(repo_root: Path | str) -> Path:
    """The .git directory a run's commits are written to (agents' sandboxes must allow it)."""
    return _git_dirs(repo_root)[1]


def human_size(n: int) -> str:
    for unit, size in (("GB", GB), ("MB", MB), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------------- commits


def resolve_commit(repo_root: Path, ref: str) -> str:
    """The full sha of `ref` (branch, tag, sha, `HEAD~2`...), for `--base`."""
    import pygit2  # deferred: see the module docstring

    repo = _open(repo_root)
    try:
        return str(repo.revparse_single(ref).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        raise CocodeError(
            f"bad --base '{ref}': not a commit in {repo_root}; pass a branch, tag or sha from `git log`",
            EXIT_CONFIG,
        ) from None


# ----------------------------------------------------------------------- worktrees


def _checked_out_branch(common: Path, path: Path) -> str | None:
    """The branch a linked worktree of the repository whose common dir is `common`
    has checked out at `path`, else None (not a worktree, another repository's, or
    a detached HEAD)."""
    if not (path / ".git").is_file():
        return None
    try:
        out = _git(path, "rev-parse", "--git-common-dir", "--symbolic-full-name", "HEAD")
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
    _, common = _git_dirs(repo_root)
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
    tip, base = _resolve(repo_root, f"refs/heads/{branch}", f"{base_sha}^{{commit}}")
    if tip is not None:
        _git(repo_root, "worktree", "add", "--quiet", str(path), branch)
    elif base is None:
        raise CocodeError(f"{base_sha!r} is not a commit in {repo_root}", EXIT_ERROR)
    else:
        _git(repo_root, "worktree", "add", "--quiet", "-b", branch, str(path), base)


def _toplevel(repo_root: Path) -> Path:
    """The working tree holding `repo_root` (its git dir for a bare repository)."""
    try:
        return Path(os.fsdecode(_git(repo_root, "rev-parse", "--show-toplevel")).strip()).resolve()
    except CocodeError:
        return _git_dirs(repo_root)[0]


def remove_worktree(repo_root: Path, path: Path) -> None:
    """Delete a run's worktree (or light workspace) and its entry; the branch stays.

    A light workspace's branch is fetched back into `repo_root` first, so removing it
    can never lose commits: if the fetch fails, nothing is deleted.
    """
    _, common = _git_dirs(repo_root)
    path = Path(path).absolute()
    top = _toplevel(repo_root)
    if path.resolve() == top or path.resolve() in top.parents:
        raise CocodeError(f"refusing to delete {path}: it holds the repository itself", EXIT_ERROR)
    admin = _worktree_admin(common, path)
    if admin is not None:
        if (admin / "locked").exists():
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
    if admin is not None:
        _prune_missing(common, path)


# -------------------------------------------------------------------- branch heads


# A loose ref file: an object id, then a newline (git and libgit2 accept any
# whitespace or the end of the file), or "ref: <refname>" for a symbolic ref.
_LOOSE_OID = re.compile(rb"([0-9a-f]{40}(?:[0-9a-f]{24})?)(?:\s|\Z)")
_HEX_DIGITS = b"0123456789abcdef"
_SYMREF_DEPTH = 5  # git's own limit is 5 as well


class _Unreadable(Exception):
    """A ref file was caught mid-write (empty, partial) or could not be read."""


def _read_loose(path: str) -> bytes | None:
    """A loose ref file's bytes, or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        raise _Unreadable from None
    try:
        return os.read(fd, 512)
    except IsADirectoryError:
        return None  # refs/heads/a is a directory when branches a/... exist: no branch a
    except OSError:
        raise _Unreadable from None
    finally:
        os.close(fd)


def _loose_oid(data: bytes) -> str | None:
    """The object id a loose ref file holds, None if it holds something else."""
    if len(data) in (41, 65) and data.translate(None, _HEX_DIGITS) == b"\n":
        return data[:-1].decode()  # what git writes: the id and a newline
    m = _LOOSE_OID.match(data)
    return m.group(1).decode() if m else None


class BranchWatcher:
    """Repeated cheap reads of one branch head: ~3 µs, one small file read, no fork.

    The ref is read the way git stores it, without libgit2 (which would cost the
    worker ~18 MiB): the loose file <common dir>/refs/heads/<branch> (worktrees share
    the common dir; a light workspace is its own repository), else its line in
    packed-refs (after `git pack-refs`/gc), which is re-read only when that file
    changes. A read that catches a file mid-write (git renames refs into place, but
    other tools may not) or fails for another passing reason returns the last good
    answer, so the caller sees "unchanged" and the next poll retries; head() never
    raises. A repository using the reftable format (git 2.45+, no ref files) is
    read with `git rev-parse` instead, ~1.5 ms a read.

    Not thread-safe: give each thread its own watcher.
    """

    __slots__ = ("_root", "_common", "_ref", "_loose", "_packed", "_packed_key", "_packed_oid",
                 "_reftable", "_last", "_raw", "_loose_gone")

    def __init__(self, repo_root: Path, branch: str):
        _, common = _git_dirs(repo_root)
        self._root = Path(repo_root)
        self._common = str(common)
        self._ref = f"refs/heads/{branch}"
        self._loose = os.path.join(self._common, self._ref)
        self._packed = os.path.join(self._common, "packed-refs")
        self._packed_key: tuple[int, int, int, int] | None = None  # packed-refs stat when last parsed
        self._packed_oid: dict[str, str | None] = {}  # ref -> oid in that packed-refs
        self._reftable = os.path.isdir(os.path.join(self._common, "reftable"))
        self._last: str | None = None  # the last good answer
        self._raw: bytes | None = None  # the loose file's bytes when they gave _last
        self._loose_gone = False  # no loose file at the last read

    def head(self) -> str | None:
        """The branch's commit sha, or None while the branch does not exist."""
        try:
            if self._reftable:
                oid = self._rev_parse()
            elif self._loose_gone and not os.access(self._loose, os.F_OK):
                # Packed (or no branch): access() says "still missing" without the
                # cost of a raised FileNotFoundError; the next commit brings the file back.
                oid = self._read_packed(self._ref)
            else:
                data = _read_loose(self._loose)
                if data is not None and data == self._raw:
                    return self._last  # most polls: nothing moved, nothing to parse
                self._loose_gone = data is None
                if data is None:
                    oid = self._read_packed(self._ref)
                elif (oid := _loose_oid(data)) is not None:
                    self._raw, self._last = data, oid
                    return oid
                else:
                    oid = self._follow(data, 1)
        except _Unreadable:
            return self._last
        self._raw, self._last = None, oid
        return oid

    def _follow(self, data: bytes, depth: int) -> str | None:
        """The oid at the end of a symbolic ref's chain."""
        if not (data.startswith(b"ref: ") and data.endswith(b"\n")):
            raise _Unreadable  # empty or partial: being rewritten by something that is not git
        target = data[5:].strip().decode(errors="replace")
        if depth > _SYMREF_DEPTH or not target.startswith("refs/") or ".." in target.split("/"):
            return None  # not a branch head we can follow
        data = _read_loose(os.path.join(self._common, target))
        if data is None:
            return self._read_packed(target)
        oid = _loose_oid(data)
        return oid if oid is not None else self._follow(data, depth + 1)

    def _read_packed(self, ref: str) -> str | None:
        try:
            st = os.stat(self._packed)
        except FileNotFoundError:
            return None
        except OSError:
            raise _Unreadable from None
        # packed-refs is replaced by rename, so a rewrite changes the inode; mtime, ctime
        # and size are there in case an inode number is reused.
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if key == self._packed_key and ref in self._packed_oid:
            return self._packed_oid[ref]
        try:
            with open(self._packed, "rb") as f:
                st = os.fstat(f.fileno())  # the stat of what is read, if it changed meanwhile
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError:
            raise _Unreadable from None
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if key != self._packed_key:
            self._packed_key, self._packed_oid = key, {}
        oid = self._packed_oid[ref] = _packed_lookup(data, ref)
        return oid

    def _rev_parse(self) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"{self._ref}^{{commit}}"],
                cwd=self._root, capture_output=True, env=_git_env(), timeout=5.0,  # polled: never hang
            )
        except (OSError, subprocess.SubprocessError):
            raise _Unreadable from None
        if proc.returncode == 1 and not proc.stderr:
            return None  # --verify --quiet: the ref does not exist
        oid = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0 or not _OID.fullmatch(oid):
            raise _Unreadable
        return oid


def _packed_lookup(data: bytes, ref: str) -> str | None:
    """The oid of `ref` in a packed-refs file's bytes ("<oid> <refname>" lines)."""
    if not data.endswith(b"\n"):
        data += b"\n"
    # Refnames hold no spaces, so " <ref>\n" can only be that ref's own line.
    at = data.find(b" " + ref.encode() + b"\n")
    if at == -1:
        return None
    oid = data[data.rfind(b"\n", 0, at) + 1:at].decode(errors="replace")
    return oid if _OID.fullmatch(oid) else None


def find_ready_commit(repo_root: Path, base_sha: str, head_sha: str, marker: str) -> str | None:
    """The oldest commit after base on head's first-parent line whose message has `marker`.

    Only the message (subject or body) counts, never file contents, so an agent that
    merely writes the marker into a file is not "ready". First-parent, because a
    merged-in side branch (e.g. someone else's ready commit) is not this run's claim.
    One `git log`; base hides its whole ancestry, not only its first parents.
    """
    out = _git(
        repo_root, "log", "--first-parent", "--reverse", "--no-show-signature", "--encoding=UTF-8",
        "-z", "--format=%H%n%B", "--end-of-options", f"{base_sha}..{head_sha}", "--",
    )
    want = marker.encode()
    for record in out.split(b"\0"):
        oid, _, message = record.partition(b"\n")
        if oid and want in message:
            return oid.decode()
    return None


def count_commits(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Commits in head not in base: `git rev-list --count base..head`."""
    return int(_git(repo_root, "rev-list", "--count", "--end-of-options", f"{base_sha}..{head_sha}", "--"))


def changed_lines(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Insertions + deletions between base and head (ADR-005 §4 adaptive timeouts).

    `git diff-tree --numstat -M`: renames detected (a moved file is not all-new
    lines), binary files count 0. The plumbing command, so the user's diff.* settings
    (external tools, textconv, algorithm) do not change the count.
    """
    out = _git(repo_root, "diff-tree", "-r", "--numstat", "-M", "--end-of-options", base_sha, head_sha, "--")
    total = 0
    for line in out.splitlines():
        added, deleted, _ = line.split(b"\t", 2)
        total += (int(added) if added != b"-" else 0) + (int(deleted) if deleted != b"-" else 0)
    return total


def _diff(repo_root: Path, base_sha: str, head_sha: str) -> pygit2.Diff:
    repo = _open(repo_root)
    diff = repo.diff(_commit(repo, base_sha), _commit(repo, head_sha), context_lines=3, interhunk_lines=0)
    # git diff detects renames by default; a moved file should not count as all-new lines.
    diff.find_similar()
    return diff


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
    _, common = _git_dirs(repo_root)
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
    git_bytes, _ = _dir_usage(common)
    if lfs_files == 0:
        # No attributes say LFS (yet objects were fetched): still report the store.
        lfs_bytes, lfs_files = _dir_usage(common / "lfs" / "objects")
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
    # Its own repository: a .git directory (a worktree has a .git file). Checked first
    # also so git cannot wander up into an enclosing repository.
    if not (workspace / ".git").is_dir():
        return None
    try:
        url = os.fsdecode(_git(workspace, "config", "--get", "remote.origin.url")).strip()
        if url != Path(repo_root).resolve().as_uri():
            return None
        head = os.fsdecode(_git(workspace, "symbolic-ref", "--quiet", "HEAD")).strip()
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
    _git_dirs(repo_root)  # a clear error if it is no repository
    path = Path(path).absolute()
    if _light_workspace_branch(repo_root, path) == branch:
        return
    if path.exists() and not _is_empty_dir(path):
        raise CocodeError(f"{path} already exists and is not a cocode workspace: move it away or delete it", EXIT_ERROR)
    tip, base = _resolve(repo_root, f"refs/heads/{branch}", f"{base_sha}^{{commit}}")
    if base is None:
        raise CocodeError(f"{base_sha!r} is not a commit in {repo_root}", EXIT_ERROR)
    if tip is None:
        # The empty old value: create it, and fail rather than move it if it appeared meanwhile.
        _git(repo_root, "update-ref", "-m", f"branch: Created from {base}", f"refs/heads/{branch}", base, "")
        tip = base

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
        _git(path, *fetch, "origin", base, timeout=timeout)
        if tip != base:
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
