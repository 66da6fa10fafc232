"""A pool of ready run workspaces, so a run starts without checking out a whole tree.

A fresh checkout writes every file of the repository (178-620 ms on a 2,000-file
repository); the pool pays that in the background. Each entry is what a run works
in (gitops/clones.py): a clone under `.cocode/pool/<id>` that borrows the
repository's objects (`--shared`), checked out at the commit the next job most
likely starts from (the repository's HEAD) on its one branch, a placeholder
(`PLACEHOLDER`), and ready once `<id>.ready` exists next to it. An entry left
behind by a commit is moved to the new HEAD in the background (`refresh`).

A run `take`s one: it claims it (the marker goes first) and creates the run's
branch in the repository at its base (as `clones.create_run_clone` does). An
entry as its fill left it (HEAD on the placeholder, nothing for `git status` to
show, ignored files included: proven by its stamp (gitops/poolstamp.py) and `git
diff-files`, or by `git status` when the stamp cannot tell) has its
placeholder renamed to the run's branch,
is moved with `git reset --hard` only when the base is another commit (writing
only the files that differ), and its directory renamed to the run's path. Any
other entry (junk left in it, its HEAD moved) is made right the long way:
`git checkout --force -B`, `git clean -ffdx`, every other ref dropped. Either way
the agent sees what `create_run_clone` at the base gives: the same files, modes
and index (tests/unit/test_pool.py compares them file by file, junk left in the
entry included). Git runs inside an entry only before any agent has had it: the
entry's config is still the one cocode wrote.

Crash safety: an entry without its marker is unfinished or half-taken, so
`recover` deletes it; nothing else is trusted. A run's branch a half-done take
created stays at the run's base, where `create_run_clone` takes it up again.

Not pooled: light workspaces (their own clones, sparse and shallow), and runs
whose branch already exists (a requeued run continues on its branch as it is).

All git goes through `runner.git`; nothing here loads pygit2 (the worker imports it).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cocode.errors import CocodeError
from cocode.gitops import poolstamp
from cocode.gitops.refs import BranchWatcher, read_head
from cocode.gitops.runner import CLONE_TIMEOUT, git, git_dirs, run
from cocode.gitops.worktrees import _worktree_admin

READY = ".ready"
PLACEHOLDER = "cocode-pool"  # an entry's one branch until a take renames it to the run's


class WorktreePool:
    """The pool of one repository. Not thread-safe: the worker calls it under its
    worktree lock (creating a run's branch in the repository must not race)."""

    def __init__(self, repo_root: Path, pool_dir: Path) -> None:
        self.root = Path(repo_root)
        self.dir = Path(pool_dir).absolute()
        self._common: Path | None = None
        self._git_dir: Path | None = None
        self.last_take = ""  # "short", "moved" or "cleaned": the way the last take went (tests, bench)
        self.last_proof = ""  # "stamp" or "status": how the last take's entry was proven untouched

    # -- what is there ------------------------------------------------------------------

    @property
    def common(self) -> Path:
        if self._common is None:
            self._common = git_dirs(self.root)[1]
        return self._common

    def ready(self) -> list[Path]:
        """Ready entries, oldest first (the order they are taken in)."""
        try:
            markers = [p for p in self.dir.iterdir() if p.name.endswith(READY)]
        except FileNotFoundError:
            return []
        markers.sort(key=lambda p: (_mtime(p), p.name))
        return [m.with_name(m.name[: -len(READY)]) for m in markers]

    def entries(self) -> list[Path]:
        """Every entry directory, ready or not (what counts toward max_worktrees)."""
        try:
            return sorted(p for p in self.dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    # -- filling -------------------------------------------------------------------------

    def add(self, base: str = "HEAD") -> Path:
        """One new entry, a clone sharing the repository's objects, its one branch the
        placeholder at `base`, without its files yet. `fill` then checks it out; it
        needs no lock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"p-{os.urandom(5).hex()}"
        repo = Path(self.root).resolve()
        try:
            git(self.dir, "clone", "--quiet", "--shared", "--no-checkout", "--no-tags", str(repo), str(path),
                timeout=CLONE_TIMEOUT)
            git(path, "remote", "set-url", "origin", repo.as_uri())
            commit = git(self.root, "rev-parse", "--verify", f"{base}^{{commit}}").decode().strip()
            # The clone's refs are the repository's branches, none the agent's business:
            # dropped now, in the background's time, a take has none left to drop.
            _drop_refs(path, keep=None)
            git(path, "symbolic-ref", "HEAD", f"refs/heads/{PLACEHOLDER}")
            git(path, "update-ref", f"refs/heads/{PLACEHOLDER}", commit)
        except CocodeError:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path

    def fill(self, path: Path, pause: Callable[[float], object] = time.sleep) -> bool:
        """Check the entry's files out and mark it ready: what the rest of a fresh
        `git worktree add` does (git runs the same `reset --hard` there). Touches only
        the entry's own index and files, so it needs no lock. `pause` waits (a
        stopping worker's returns early, true): then the entry is left unready, for
        `recover` to delete, and False returned."""
        git(path, "reset", "--quiet", "--hard", "--no-recurse-submodules")
        return self._settle(path, pause)

    def _settle(self, path: Path, pause: Callable[[float], object]) -> bool:
        # Files written in the same second as the index are "racily clean": git must
        # re-read every one of them at the take (measured 74-181 ms vs 21-37 ms for a
        # 2,000-file entry). Refreshing the index once that second is over records
        # their stat data for good; it is the background's time, not the run's.
        # At least RACY_S too: the stamp trusts only directories older than that.
        if pause(max(1.05 - time.time() % 1.0, poolstamp.RACY_S + 0.05)):
            return False
        git(path, "update-index", "-q", "--refresh")
        # The stamp, then one status (writing nothing: no optional locks) that finds the
        # entry clean, make half the proof the take checks (gitops/poolstamp.py).
        stamp = poolstamp.record(path)
        if stamp is not None and not self._clean(path):
            stamp = None
        # The marker holds it; written in place, so a take that reads it half-written
        # finds it unreadable and asks `git status` instead.
        path.with_name(path.name + READY).write_bytes(stamp or b"")
        return True

    def refill(self, base: str = "HEAD") -> Path:
        """One new ready entry (add + fill), for callers that hold no lock of their own."""
        path = self.add(base)
        try:
            self.fill(path)
        except CocodeError:
            self.discard(path)
            raise
        return path

    def head(self) -> str | None:
        """The repository's HEAD commit, read from files (None when it cannot be)."""
        git_dir, common = git_dirs(self.root) if self._git_dir is None else (self._git_dir, self.common)
        self._git_dir, self._common = git_dir, common
        return read_head(self.root, git_dir, common)

    def stale(self) -> list[Path]:
        """Ready entries at another commit than the repository's HEAD (a commit was
        made since they were filled): `refresh` moves them. Read from files."""
        head = self.head()
        if head is None:
            return []
        return [p for p in self.ready() if BranchWatcher(p, PLACEHOLDER, common=p / ".git").head() != head]

    def refresh(self, path: Path, pause: Callable[[float], object] = time.sleep) -> bool:
        """Move a ready entry to the repository's HEAD in place, writing only the files
        that differ; unready meanwhile (claimed like a take). False if it was taken
        first or `pause` was cut short (then `recover` deletes it)."""
        try:
            path.with_name(path.name + READY).unlink()
        except FileNotFoundError:
            return False
        head = self.head() or "HEAD"
        git(path, "reset", "--quiet", "--hard", "--no-recurse-submodules", head)
        return self._settle(path, pause)

    # -- taking --------------------------------------------------------------------------

    def take(self, dest: Path, branch: str, base_sha: str) -> bool:
        """Make a ready entry the run's clone at `dest`, on a new `branch` at
        `base_sha`. False (nothing changed, the caller makes its clone itself) when
        the pool is empty, `dest` exists, or the branch exists already."""
        dest = Path(dest).absolute()
        if dest.exists() or os.path.lexists(dest) or not self.ready():
            return False
        if self._branch(branch) is not None:
            return False  # a requeued run: it goes on from its branch as it is
        for path in self.ready():
            marker = path.with_name(path.name + READY)
            try:
                stamp = marker.read_bytes()
                marker.unlink()  # claimed: a crash from here on makes `recover` delete it
            except FileNotFoundError:
                continue
            if not path.is_dir():
                self.discard(path)
                continue
            # Whether the entry is untouched (a status in the entry) and the run's branch
            # in the repository are independent: asked at the same time.
            seen: dict[str, str | None] = {}
            looking = threading.Thread(target=lambda: seen.update(at=self._untouched(path, stamp)))
            looking.start()
            # The run's branch in the repository at its base, created only if still
            # missing: git refuses a branch that exists or a base that is no commit.
            made = run(self.root, "update-ref", "-m", f"branch: Created from {base_sha}",
                       f"refs/heads/{branch}", base_sha, "")
            looking.join()
            at = seen.get("at")
            if made.returncode != 0:
                marker.write_bytes(stamp)  # given back as it was; create_run_clone says what is wrong
                return False
            try:
                if at is not None:
                    _rename_branch(path / ".git", branch)
                    if at != base_sha:  # only the files that differ are written
                        git(path, "reset", "--quiet", "--hard", "--no-recurse-submodules", base_sha)
                    self.last_take = "short" if at == base_sha else "moved"
                else:
                    # checkout -f, not switch --discard-changes: only it also overwrites untracked
                    # files in the way (a file someone `git rm --cached` in the entry).
                    git(path, "checkout", "--quiet", "--force", "--no-guess", "-B", branch, base_sha)
                    git(path, "clean", "--quiet", "-ffdx")
                    _drop_refs(path, keep=f"refs/heads/{branch}")
                    self.last_take = "cleaned"
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, dest)  # a clone is self-contained: its objects are found by absolute path
            except CocodeError:
                self.discard(path)  # e.g. an entry broken by hand: do not offer it again
                # The branch was made above, at the base: a fresh clone would make it
                # again, so drop it (it holds no commit but the base).
                run(self.root, "branch", "--quiet", "-D", branch)
                raise
            return True
        return False

    def _branch(self, branch: str) -> str | None:
        """The repository's `branch` tip, read from its ref files (no process)."""
        return BranchWatcher(self.root, branch, common=self.common).head()

    def _untouched(self, path: Path, stamp: bytes = b"") -> str | None:
        """The entry's commit if it is as `fill` left it (HEAD on the placeholder, and
        nothing for `git status` to show, untracked and ignored files included), else
        None: then the take cleans it the long way. A stamp that still holds and `git
        diff-files` are that proof at a tenth of the CPU; else `git status` is asked."""
        self.last_proof = "status"
        try:
            if (path / ".git" / "HEAD").read_bytes() != f"ref: refs/heads/{PLACEHOLDER}\n".encode():
                return None
        except OSError:
            return None
        if not (path / ".git" / "refs" / "heads" / PLACEHOLDER).is_file():
            return None  # packed, or gone: not as `add` wrote it
        at = BranchWatcher(path, PLACEHOLDER, common=path / ".git").head()
        if stamp and poolstamp.holds(path, stamp):
            self.last_proof = "stamp"
            files = run(path, "--no-optional-locks", "diff-files", "--quiet")
            return at if files.returncode == 0 else None
        return at if at is not None and self._clean(path) else None

    @staticmethod
    def _clean(path: Path) -> bool:
        """Nothing for `git status` to show, untracked and ignored files included; it
        writes nothing (no optional locks: the index is not refreshed)."""
        status = run(path, "--no-optional-locks", "status", "--porcelain", "-z", "--ignored",
                     "--untracked-files=all")
        return status.returncode == 0 and not status.stdout

    # -- shrinking, recovery -------------------------------------------------------------

    def discard(self, path: Path) -> None:
        """Delete one entry: its directory, its marker, and git's entry for it."""
        path.with_name(path.name + READY).unlink(missing_ok=True)
        admin = _worktree_admin(self.common, path)
        shutil.rmtree(path, ignore_errors=True)
        if admin is not None:
            shutil.rmtree(admin, ignore_errors=True)

    def trim(self, keep: int) -> int:
        """Delete entries until at most `keep` remain (ready ones last); how many went."""
        entries = self.entries()
        ready = set(self.ready())
        entries.sort(key=lambda p: p in ready)
        gone = 0
        while len(entries) > max(0, keep):
            self.discard(entries.pop(0))
            gone += 1
        return gone

    def recover(self) -> int:
        """After a crash: delete entries that are not ready (being filled or taken when
        the process died), stray markers, and git entries whose pool directory is
        gone. Returns how many were deleted."""
        gone = 0
        ready = set(self.ready())
        for path in self.entries():
            if path not in ready:
                self.discard(path)
                gone += 1
        for path in ready:
            if not path.is_dir():
                self.discard(path)
                gone += 1
        try:
            admins = list((self.common / "worktrees").iterdir())
        except OSError:
            admins = []
        for admin in admins:
            try:
                target = Path((admin / "gitdir").read_text().strip()).parent
            except (OSError, UnicodeDecodeError):
                continue
            if target.parent == self.dir and not target.exists() and not (admin / "locked").exists():
                shutil.rmtree(admin, ignore_errors=True)
                gone += 1
        return gone

    def clear(self) -> int:
        """Delete every entry (`cocode clean --hard`): the pool refills when needed."""
        gone = self.trim(0)
        self.recover()
        return gone


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _drop_refs(path: Path, keep: str | None) -> None:
    """Drop every branch and remote ref of the entry but `keep`, as a single-branch
    clone of the run's branch would have: other branches are not the agent's business."""
    refs = git(path, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes").decode().split()
    drop = "".join(f"delete {r}\n" for r in refs if r != keep)
    if drop:
        git(path, "update-ref", "--no-deref", "--stdin", input=drop.encode())


def _rename_branch(git_dir: Path, branch: str) -> None:
    """What `git branch -m PLACEHOLDER branch` does in an untouched entry, in file
    renames (a git process costs 6-35 ms on a loaded machine): its loose ref and its
    reflog move to the new name, then HEAD names it. `_untouched` checked that the
    entry's HEAD is the placeholder's and its ref a loose file, as `add` wrote them."""
    for where in (git_dir / "refs" / "heads", git_dir / "logs" / "refs" / "heads"):
        old, new = where / PLACEHOLDER, where / branch
        if old.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            os.rename(old, new)
    head = git_dir / "HEAD.cocode"
    head.write_text(f"ref: refs/heads/{branch}\n")
    os.rename(head, git_dir / "HEAD")  # whole or not at all, as git writes it
