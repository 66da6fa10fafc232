"""Reading refs: a branch head polled cheaply and often, a revision resolved once.

`BranchWatcher` reads a branch head the way git stores it (a loose ref file, else
its line in packed-refs), with no process and no libgit2, so the worker can poll
every run's branch for ~3 µs a read. `resolve_names` resolves many revision names
with one `git cat-file`; `resolve_commit` (CLI only) uses pygit2 through `libgit`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cocode.errors import EXIT_CONFIG, EXIT_ERROR, CocodeError
from cocode.gitops.runner import git, git_dirs, run

OID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256, as git prints them


def resolve_names(repo_root: Path | str, *names: str) -> list[str | None]:
    """The object id each revision name stands for, or None where it names nothing.

    One `git cat-file --batch-check` answers them all; `X^{commit}` also checks
    that X is (or peels to) a commit.
    """
    out = git(repo_root, "cat-file", "--batch-check=%(objectname)", input="".join(n + "\n" for n in names).encode())
    lines = os.fsdecode(out).splitlines()
    if len(lines) != len(names):
        raise CocodeError(f"git cat-file answered {len(lines)} of {len(names)} names in {repo_root}", EXIT_ERROR)
    # A name that resolves to nothing comes back as "<name> missing" (or "ambiguous").
    return [ln if OID.fullmatch(ln) else None for ln in lines]



def resolve_commit(repo_root: Path, ref: str) -> str:
    """The full sha of `ref` (branch, tag, sha, `HEAD~2`...), for `--base`."""
    from cocode.gitops import libgit  # deferred: pygit2 is for CLI processes only (see libgit)

    repo = libgit.open_repo(repo_root)
    try:
        return str(libgit.peel_commit(repo, ref).id)
    except (KeyError, ValueError, libgit.GitError):
        raise CocodeError(
            f"bad --base '{ref}': not a commit in {repo_root}; pass a branch, tag or sha from `git log`",
            EXIT_CONFIG,
        ) from None


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


def read_head(repo_root: Path, git_dir: Path, common: Path) -> str | None:
    """The commit HEAD of `git_dir` is at, read from files (no process): detached, or
    the branch it names; None when it cannot be read so (unborn, or not a branch)."""
    data = _read_loose(os.path.join(git_dir, "HEAD"))
    if data is None:
        return None
    oid = _loose_oid(data)
    if oid is not None:
        return oid
    if not (data.startswith(b"ref: refs/heads/") and data.endswith(b"\n")):
        return None
    return BranchWatcher(repo_root, data[16:-1].decode(errors="replace"), common=common).head()


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

    def __init__(self, repo_root: Path, branch: str, common: Path | None = None):
        if common is None:  # a caller that knows it saves a `git rev-parse`
            _, common = git_dirs(repo_root)
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

    @property
    def loose_path(self) -> str | None:
        """The file git renames into place when the branch moves (None with a reftable):
        watching its directory wakes a reader at once (cocode.inotify); packing, and a
        reftable, are seen by polling head()."""
        return None if self._reftable else self._loose

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
            proc = run(self._root, "rev-parse", "--verify", "--quiet", f"{self._ref}^{{commit}}",
                       timeout=5.0)  # polled: never hang
        except CocodeError:
            raise _Unreadable from None
        if proc.returncode == 1 and not proc.stderr:
            return None  # --verify --quiet: the ref does not exist
        oid = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0 or not OID.fullmatch(oid):
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
    return oid if OID.fullmatch(oid) else None

