"""A repository's size by ADR-005 §3, and what cocode does about it.

`repo_size` measures (one `git ls-files`, LFS content counted apart); `size_policy`
decides, as a pure function, the warnings, a refusal, and whether runs get a
light workspace instead of a full worktree.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from cocode.errors import EXIT_CONFIG, EXIT_ERROR, CocodeError
from cocode.gitops.runner import git, git_dirs

MB = 1024 * 1024
GB = 1024 * MB

# ADR-005 §3 thresholds, on the working tree (LFS content counted apart).
LIGHT_WORKTREE_BYTES = 100 * MB
WARN_WORKTREE_BYTES = 1 * GB
MAX_TOTAL_BYTES = 10 * GB

_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
# A pointer file is ~130 bytes; anything much bigger is real (smudged) content.
_LFS_POINTER_MAX = 1024


def human_size(n: int) -> str:
    """`n` bytes for people: 1.5 GB, 12.0 MB, 3.2 KB, 17 B."""
    for unit, size in (("GB", GB), ("MB", MB), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class RepoSize(msgspec.Struct, frozen=True):
    """A repository's size by ADR-005 §3. Bytes are on-disk sizes unless noted."""

    worktree_bytes: int  # tracked + untracked-not-ignored files, minus LFS-tracked ones
    total_bytes: int  # every listed working file (LFS included) + the .git directory
    lfs_bytes: int  # LFS content size: pointer's declared size, or the file if smudged
    lfs_files: int
    file_count: int  # listed files that exist as regular files (LFS included)


def _listed_files(repo_root: Path) -> list[bytes]:
    out = git(repo_root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
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
    out = git(repo_root, "check-attr", "-z", "--stdin", "filter", input=b"\0".join(paths) + b"\0")
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
    _, common = git_dirs(repo_root)
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

