"""Waking the worker the moment a run's branch moves, instead of at its next poll.

Each run's branch is a loose ref file that git replaces by renaming `<branch>.lock`
onto it; an inotify watch on its directory reports that rename. `fired()` names the
runs whose ref file changed, and the worker reads those branches at once. Polling
stays the ground truth: the worker still reads every branch on its tick, which sees
what a watch cannot (packed refs, a reftable, a directory deleted and made again,
inotify missing or out of watches), so nothing is lost when a watch is; a dead watch
is tried again every REARM_S.
"""

from __future__ import annotations

import os
import time
from typing import Hashable

from cocode import inotify

REARM_S = 1.0


class RefWake:
    """Watches for the ref files of runs, keyed by anything hashable (the worker's RunKey)."""

    def __init__(self) -> None:
        self._ino = inotify.Inotify()
        self.fd = self._ino.fd  # None: no inotify here, polling only
        self._files: dict[Hashable, tuple[str, str]] = {}  # key -> (directory, file name)
        self._wd_keys: dict[int, set[Hashable]] = {}
        self._key_wd: dict[Hashable, int] = {}
        self._dead: set[Hashable] = set()  # wanted, but not watched now
        self._rearm_at = 0.0

    def add(self, key: Hashable, ref_file: str | None) -> None:
        if ref_file is None or self.fd is None:
            return
        self._files[key] = os.path.split(ref_file)
        self._arm(key)

    def discard(self, key: Hashable) -> None:
        self._files.pop(key, None)
        self._dead.discard(key)
        wd = self._key_wd.pop(key, None)
        if wd is not None:
            keys = self._wd_keys.get(wd, set())
            keys.discard(key)
            if not keys:
                self._wd_keys.pop(wd, None)
                self._ino.remove(wd)

    def fired(self) -> set[Hashable]:
        """The runs whose ref file may have changed since the last call (all on an overflow)."""
        out: set[Hashable] = set()
        for wd, mask, name in self._ino.read():
            if wd == inotify.OVERFLOW:
                return set(self._files)
            keys = self._wd_keys.get(wd, ())
            if mask & inotify.IN_IGNORED:  # its directory went (branches packed, pruned)
                self._wd_keys.pop(wd, None)
                for key in keys:
                    self._key_wd.pop(key, None)
                    self._dead.add(key)
                out.update(keys)
                continue
            out.update(k for k in keys if self._files[k][1] == name)
        return out

    def rearm(self, now: float | None = None) -> None:
        """Try again, at most every REARM_S, to watch what could not be watched."""
        now = time.monotonic() if now is None else now
        if not self._dead or now < self._rearm_at:
            return
        self._rearm_at = now + REARM_S
        for key in list(self._dead):
            self._arm(key)

    def watched(self, key: Hashable) -> bool:
        return key in self._key_wd

    def _arm(self, key: Hashable) -> None:
        wd = self._ino.add(self._files[key][0])
        if wd is None:
            self._dead.add(key)
            return
        self._dead.discard(key)
        self._key_wd[key] = wd
        self._wd_keys.setdefault(wd, set()).add(key)

    def close(self) -> None:
        self._ino.close()
        self.fd = None
