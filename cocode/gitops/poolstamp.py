"""A pool entry's stamp: with `git diff-files`, the proof at the take that nothing
changed in the entry since it was filled, instead of `git status`.

`git status --ignored --untracked-files=all` of a 2,000-file entry reads every
directory and matches every name against the ignore rules: ~10 ms of CPU, 13-60 ms
on a loaded machine, on the way from submit to the agent's start. The proof is split:
- names: a file or directory made, deleted or renamed anywhere changes its parent
  directory's ctime (ctime, unlike mtime, cannot be set back by a program), so the
  stat of every directory of the entry shows any untracked or ignored file since;
- contents: `git diff-files` compares each tracked file's stat with the index (~1 ms
  of CPU), which the fill refreshed after its racy second;
- `.git` (HEAD, refs, the index, config, hooks) is recorded path by path: git replaces
  what it writes (a new inode), and a new file changes its directory.
The fill records the stamp, then asks `git status` once (pool._settle, in the
background): only if that finds the entry clean does the stamp go into its ready
marker, so what the stamp recorded is a clean entry. A directory whose ctime is
within RACY_S of the recording could change again within the same tick of the
kernel's coarse clock unseen: no stamp then, nor past MAX_PATHS paths, and the take
asks `git status` as before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

RACY_S = 0.1  # many ticks of the coarse clock that stamps ctime (1-10 ms)
MAX_PATHS = 20_000

Entry = tuple[str, int, int, int, int, int]  # relative path, inode, mode, size, mtime_ns, ctime_ns


def _stat(root: str, rel: str) -> Entry | None:
    try:
        st = os.lstat(os.path.join(root, rel) if rel else root)
    except OSError:
        return None
    return (rel, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _walk(root: str) -> list[str] | None:
    """Every directory under root (root itself as "") and everything under .git; None
    past MAX_PATHS."""
    paths, stack = [""], [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                name = f"{rel}/{e.name}" if rel else e.name
                if e.is_dir(follow_symlinks=False):
                    paths.append(name)
                    stack.append(name)
                elif name.startswith(".git/"):
                    paths.append(name)
        if len(paths) > MAX_PATHS:
            return None
    return paths


def record(path: Path) -> bytes | None:
    """The entry's stamp, or None when a directory changed too recently to trust (or
    there are too many). Only a `git status` after it, finding the entry clean, makes
    it proof."""
    root = str(path)
    try:
        paths = _walk(root)
    except OSError:
        return None
    if paths is None:
        return None
    newest = time.time_ns() - int(RACY_S * 1e9)
    entries: list[Entry] = []
    for rel in paths:
        e = _stat(root, rel)
        if e is None:
            return None
        # git's own files are replaced, never written in place: a new inode shows it.
        if e[5] > newest and not (rel == ".git" or rel.startswith(".git/")):
            return None
        entries.append(e)
    return msgspec.json.encode(entries)


def holds(path: Path, stamp: bytes) -> bool:
    """Whether every path recorded in `stamp` is as it was (a new one would have changed
    its recorded directory). False for an unreadable stamp. The tracked files' contents
    are `git diff-files`'s to check."""
    try:
        entries = msgspec.json.decode(stamp, type=list[Entry])
    except msgspec.MsgspecError:  # empty or cut short (read while being written): not trusted
        return False
    if not entries:
        return False
    root = str(path)
    return all(_stat(root, e[0]) == e for e in entries)
