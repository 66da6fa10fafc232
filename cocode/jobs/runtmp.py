"""A run's private files in the worker's temp dir (.cocode/tmp), and when they go.

Per run (`<job>-<agent>`, RunKey.dir_name): its issue file (`-issue.md`, made for
each attempt, removed by the runner at the attempt's end) and, when runs are
sandboxed, its own HOME (`-home`, jobs/prepare.py; the agent's and its setup
commands', kept across its attempts: a requeued attempt resumes its session
from there). The sandbox's /tmp is a tmpfs and leaves nothing behind.

- A run that ends (run_finished) loses its HOME at once, unless a follow-up
  (`cocode say`, jobs/followup.py) may resume the agent's session from it: its
  agent has a `resume` command and reported a session. The worker renames it
  aside on its loop (instant, so a later attempt's new HOME is never the one being
  deleted) and deletes it off the loop.
- `cocode clean` removes what final runs left (a worker killed before it could
  tidy, a HOME kept for a resume once the run's worktree is gone, a file of a
  run compacted out of the log). A run that is not final is never touched.

Deciding is pure (keeps_home, leftovers); the rest is the filesystem.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from cocode.runkey import RunKey

HOME_SUFFIX = "-home"
ISSUE_SUFFIX = "-issue.md"
TRASH_PREFIX = ".gone-"  # a HOME renamed aside, being deleted


def keeps_home(resume: Iterable[str] | None, session_id: str) -> bool:
    """Whether a final run's HOME stays for a follow-up that resumes its session."""
    return bool(resume) and bool(session_id)


def leftovers(state, names: Iterable[str], resume_of: Callable[[str], list[str] | None],
              worktree_going: set[str] = frozenset()) -> list[str]:
    """The entries of the temp dir (`names`) that may go: every run file that is
    not a non-final run's, and not the HOME a final run keeps for a resume (while
    its worktree stays: `worktree_going` holds the keys of runs whose worktree this
    cleanup removes). `resume_of(agent)` is the agent's resume command (None if
    unknown). Names that are not run files are left alone."""
    keep: set[str] = set()
    for job in state.jobs.values():
        for run in job.runs.values():
            key = RunKey(job.job, run.agent)
            if not run.final:
                keep |= {key.dir_name + HOME_SUFFIX, key.dir_name + ISSUE_SUFFIX}
            elif (keeps_home(resume_of(run.agent), run.session_id) and not run.worktree_removed
                  and key.key not in worktree_going):
                keep.add(key.dir_name + HOME_SUFFIX)
    return sorted(n for n in names if n not in keep and (
        n.endswith(HOME_SUFFIX) or n.endswith(ISSUE_SUFFIX) or n.startswith(TRASH_PREFIX)))


def set_aside(tmp: Path, key: RunKey) -> Path | None:
    """Rename the run's HOME aside (to delete it with remove()); None if it has none."""
    home = key.run_home(tmp)
    aside = tmp / f"{TRASH_PREFIX}{home.name}.{time.time_ns()}"
    try:
        os.rename(home, aside)
    except FileNotFoundError:
        return None
    return aside


def tidy(tmp: Path, key: RunKey, resume, session_id: str, run_later: Callable) -> None:
    """At a final run's end: its HOME renamed aside now, then deleted through
    `run_later(remove, path)` (off the caller's loop), unless keeps_home()."""
    if keeps_home(resume, session_id):
        return
    aside = set_aside(tmp, key)
    if aside is None:
        return
    try:
        run_later(remove, aside)
    except RuntimeError:  # the executor is shut down (stopping): here, then
        remove(aside)


def remove(path: Path) -> None:
    """Delete a file or a directory tree; what an agent made read-only included."""
    if path.is_dir() and not path.is_symlink():
        def writable(func, p, _exc):
            try:
                os.chmod(os.path.dirname(p), 0o700)
                os.chmod(p, 0o700)
                func(p)
            except OSError:
                pass

        shutil.rmtree(path, **({"onexc": writable} if sys.version_info >= (3, 12) else {"onerror": writable}))
    else:
        path.unlink(missing_ok=True)
