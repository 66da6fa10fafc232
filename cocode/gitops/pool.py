"""A pool of ready run workspaces, so a run starts without checking out a whole tree.

A fresh checkout writes every file of the repository (178-620 ms on a 2,000-file
repository); the pool pays that in the background. Each entry is what a run works
in (gitops/clones.py): a clone under `.cocode/pool/<id>` that borrows the
repository's objects (`--shared`) and has refs of its own, checked out at the
commit the next job most likely starts from (the repository's HEAD), and ready
once `<id>.ready` exists next to it. A run `take`s one: it claims it (the marker
goes first), creates the run's branch in the repository at its base (as
`clones.create_run_clone` does), moves the entry to that branch and base with
`git checkout --force -B`, removes every untracked and ignored file with
`git clean -ffdx`, drops every other ref, and renames the directory to the run's
path. Only the files that differ between the pool's commit and the run's base are
written. What the agent sees is what `create_run_clone` at the base gives: the
same files, modes and index (tests/unit/test_pool.py compares them file by file,
junk left in the entry included). Git runs inside an entry only before any agent
has had it: the entry's config is still the one cocode wrote.

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
import time
from collections.abc import Callable
from pathlib import Path

from cocode.errors import CocodeError
from cocode.gitops.clones import ensure_branch
from cocode.gitops.refs import resolve_names
from cocode.gitops.runner import CLONE_TIMEOUT, git, git_dirs, run
from cocode.gitops.worktrees import _worktree_admin

READY = ".ready"


class WorktreePool:
    """The pool of one repository. Not thread-safe: the worker calls it under its
    worktree lock (creating a run's branch in the repository must not race)."""

    def __init__(self, repo_root: Path, pool_dir: Path) -> None:
        self.root = Path(repo_root)
        self.dir = Path(pool_dir).absolute()
        self._common: Path | None = None

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
        """One new entry, a clone sharing the repository's objects, detached at `base`,
        without its files yet. `fill` then checks it out; it needs no lock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"p-{os.urandom(5).hex()}"
        repo = Path(self.root).resolve()
        try:
            git(self.dir, "clone", "--quiet", "--shared", "--no-checkout", "--no-tags", str(repo), str(path),
                timeout=CLONE_TIMEOUT)
            git(path, "remote", "set-url", "origin", repo.as_uri())
            git(path, "update-ref", "--no-deref", "HEAD", git(self.root, "rev-parse", "--verify", f"{base}^{{commit}}").decode().strip())
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
        # Files written in the same second as the index are "racily clean": git must
        # re-read every one of them at the take (measured 74-181 ms vs 21-37 ms for a
        # 2,000-file entry). Refreshing the index once that second is over records
        # their stat data for good; it is the background's time, not the run's.
        if pause(1.05 - time.time() % 1.0):
            return False
        git(path, "update-index", "-q", "--refresh")
        marker = path.with_name(path.name + READY)
        marker.touch()
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

    # -- taking --------------------------------------------------------------------------

    def take(self, dest: Path, branch: str, base_sha: str) -> bool:
        """Make a ready entry the run's clone at `dest`, on a new `branch` at
        `base_sha`. False (nothing changed, the caller makes its clone itself) when
        the pool is empty, `dest` exists, or the branch exists already."""
        dest = Path(dest).absolute()
        if dest.exists() or os.path.lexists(dest) or not self.ready():
            return False
        if resolve_names(self.root, f"refs/heads/{branch}")[0] is not None:
            return False  # a requeued run: it goes on from its branch as it is
        for path in self.ready():
            marker = path.with_name(path.name + READY)
            try:
                marker.unlink()  # claimed: a crash from here on makes `recover` delete it
            except FileNotFoundError:
                continue
            if not path.is_dir():
                self.discard(path)
                continue
            tip, _ = ensure_branch(self.root, branch, base_sha)
            # checkout -f, not switch --discard-changes: only it also overwrites untracked
            # files in the way (a file someone `git rm --cached` in the entry).
            switched = run(path, "checkout", "--quiet", "--force", "--no-guess", "-B", branch, tip)
            if switched.returncode != 0:
                self.discard(path)  # e.g. an entry broken by hand: do not offer it again
                continue
            try:
                git(path, "clean", "--quiet", "-ffdx")
                self._only_branch(path, branch)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, dest)  # a clone is self-contained: its objects are found by absolute path
            except CocodeError:
                self.discard(path)
                # The branch was made by the checkout, at the base: a fresh add would make
                # it again, so drop it (it holds no commit but the base).
                run(self.root, "branch", "--quiet", "-D", branch)
                raise
            return True
        return False

    @staticmethod
    def _only_branch(path: Path, branch: str) -> None:
        """Drop every ref of the entry but the run's branch, as a single-branch clone of
        it would have: other branches are not the agent's business."""
        refs = git(path, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes").decode().split()
        drop = "".join(f"delete {r}\n" for r in refs if r != f"refs/heads/{branch}")
        if drop:
            git(path, "update-ref", "--no-deref", "--stdin", input=drop.encode())

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
