"""A pool entry's stamp: the proof, without `git status`, that nothing but git's files
changed in it since it was filled.

`git status --ignored --untracked-files=all` of a 2,000-file entry reads every
directory and matches every name against the ignore rules: 6-15 ms on a quiet
machine, 20-40 ms loaded, on the way from submit to the agent's start. The stamp
splits that proof in two:
- names: a file or directory made, deleted or renamed anywhere changes its parent
  directory's ctime (and a new directory's parent's), so the stat of every
  directory of the entry, recorded when it was filled, shows every untracked or
  ignored file since (ctime, unlike mtime, cannot be set back by a program);
- contents: `git diff-files` compares each tracked file's stat with the index,
  which the fill refreshed after its racy second (pool._settle), so a file written
  since differs.
Everything in `.git` (HEAD, refs, the index, config, hooks) is recorded file by file:
git replaces what it writes, a new inode.

A directory whose ctime is within RACY_S of the recording could change again within
the same tick of the kernel's coarse clock (a few ms) unseen: no stamp then, and the
take asks `git status`. The fill waits that long anyway (pool._settle).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

RACY_S = 0.1  # many ticks of the coarse clock that stamps ctime (1-10 ms)

Entry = tuple[str, int, int, int, int, int]  # relative path, inode, mode, size, mtime_ns, ctime_ns


def _stat(root: str, rel: str) -> Entry | None:
    try:
        st = os.lstat(os.path.join(root, rel) if rel else root)
    except OSError:
        return None
    return (rel, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _walk(root: str) -> tuple[list[str], list[str]]:
    """(worktree directories, everything under .git), relative to root."""
    dirs, gitfiles = [""], []
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for e in it:
                name = f"{rel}/{e.name}" if rel else e.name
                in_git = name == ".git" or name.startswith(".git/")
                if e.is_dir(follow_symlinks=False):
                    (gitfiles if in_git else dirs).append(name)
                    stack.append(name)
                elif in_git:
                    gitfiles.append(name)
    return dirs, gitfiles


def record(path: Path) -> bytes | None:
    """The entry's stamp, or None when a directory changed too recently to trust."""
    root = str(path)
    try:
        dirs, gitfiles = _walk(root)
    except OSError:
        return None
    newest = time.time_ns() - int(RACY_S * 1e9)
    entries: list[Entry] = []
    for rel in dirs:
        e = _stat(root, rel)
        if e is None or e[5] > newest:
            return None
        entries.append(e)
    for rel in gitfiles:
        e = _stat(root, rel)
        if e is None:
            return None
        entries.append(e)
    return msgspec.json.encode(entries)


def holds(path: Path, stamp: bytes) -> bool:
    """Whether every directory and git file recorded in `stamp` is as it was (a new
    one would have changed its recorded parent). False for an unreadable stamp."""
    try:
        entries = msgspec.json.decode(stamp, type=list[Entry])
    except msgspec.MsgspecError:  # empty or cut short (read while being written): not trusted
        return False
    if not entries:
        return False
    root = str(path)
    return all(_stat(root, e[0]) == tuple(e) for e in entries)
