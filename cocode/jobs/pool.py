"""The worker's side of the worktree pool: when to refill it, how big it may be,
and a run's workspace made from it (the git of it is gitops/pool.py).

The pool counts toward `max_worktrees`: it only ever fills the room the runs'
worktrees leave (`target`), and gives entries back when a run needs that room.
It refills in the background, one entry at a time, only while no run is being
prepared, so a refill never competes with a start it could have served; entries
a commit left behind are moved to the new HEAD the same way, so a take stays the
short one (gitops/pool.py). A repository big enough for light workspaces gets no
pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path

from cocode.core.views import State
from cocode.gitops.pool import WorktreePool
from cocode.gitops.size import LIGHT_WORKTREE_BYTES, repo_size

CHECK_S = 0.25  # how often an idle worker looks at its pool (a directory listing)


def run_worktrees(state: State) -> int:
    """Worktrees runs hold now (what the scheduler counts against max_worktrees)."""
    return sum(1 for j in state.jobs.values() for r in j.runs.values() if r.worktree and not r.worktree_removed)


def target(size: int, max_worktrees: int, held: int) -> int:
    """How many entries the pool may hold beside `held` run worktrees."""
    return max(0, min(size, max_worktrees - held))


class PoolKeeper:
    """Owns one repository's pool inside the worker. `lock` is the worker's worktree
    lock (git's worktree bookkeeping takes no concurrent adds); `executor` runs
    the background work."""

    def __init__(self, root: Path, pool_dir: Path, size: int, max_worktrees: int,
                 lock: threading.Lock, executor: Executor) -> None:
        self.pool = WorktreePool(root, pool_dir)
        self.size, self.max_worktrees = size, max_worktrees
        self.lock, self.executor = lock, executor
        self.busy: Future | None = None
        self.recovered = False
        self.failures = 0
        self.checked = 0.0
        self.stopping = threading.Event()

    def idle(self, held: Callable[[], int]) -> None:
        """Called from the worker's loop while no run is being prepared: start one
        piece of background work if due. `held` counts the runs' worktrees."""
        now = time.monotonic()
        if now - self.checked < CHECK_S:
            return
        self.checked = now
        if self.busy is not None:
            if not self.busy.done():
                return
            # Failing in a row means git cannot add here; one failure (an entry trimmed
            # while it filled) must not stop the pool for good.
            self.failures = self.failures + 1 if self.busy.exception() is not None else 0
            self.busy = None
        if not self.recovered:
            self.busy = self.executor.submit(self._recover)
            return
        if self.failures >= 3 or self.stopping.is_set():  # a repository git cannot add to: stop trying
            return
        want = target(self.size, self.max_worktrees, held())
        have = len(self.pool.entries())
        if have < want:
            self.busy = self.executor.submit(self._refill)
        elif have > want:
            self.busy = self.executor.submit(self._trim, want)
        elif stale := self.pool.stale():  # a commit since they were filled: moved to it, one at a time
            self.busy = self.executor.submit(self._refresh, stale[0])

    def _recover(self) -> None:
        with self.lock:
            self.pool.recover()
        # Runs in repositories this big get light workspaces (ADR-005 §3), never a
        # worktree: a pool there would only hold gigabytes. Measured once per start.
        if self.size and repo_size(self.pool.root).worktree_bytes > LIGHT_WORKTREE_BYTES:
            self.size = 0
        self.recovered = True

    def _refill(self) -> None:
        with self.lock:
            path = self.pool.add()
        # The checkout (the slow part) touches only the entry: no lock, a start may take another.
        try:
            self.pool.fill(path, pause=self.stopping.wait)
        except Exception:
            with self.lock:
                self.pool.discard(path)
            raise

    def _refresh(self, path: Path) -> None:
        # Touches only the entry, which it claimed first: no lock, like a fill.
        try:
            self.pool.refresh(path, pause=self.stopping.wait)
        except Exception:
            with self.lock:
                self.pool.discard(path)
            raise

    def stop(self) -> None:
        """The worker stops: a refill in progress ends at once (its entry unready)."""
        self.stopping.set()

    def _trim(self, keep: int) -> None:
        with self.lock:
            self.pool.trim(keep)

    def take(self, dest: Path, branch: str, base_sha: str, room: int, pooled: bool = True) -> bool:
        """Under the worktree lock: the run's worktree from the pool, if it can be
        (`pooled`: not for light workspaces). When not, the pool is first cut to `room`
        entries, so the workspace the caller then makes keeps the total within
        max_worktrees."""
        if pooled and self.size and self.pool.take(dest, branch, base_sha):
            return True
        self.pool.trim(room)
        return False
