"""pygit2, for the few questions asked in short-lived CLI processes only.

Importing pygit2 costs ~18 MiB of RSS and ~80 ms, so the worker and the other
long-running services never load this module: everything they call uses the git
CLI (`runner`) or plain file reads (`refs.BranchWatcher`). Only
`refs.resolve_commit` comes here, importing this module inside the function
(tests/unit/test_gitops.py checks the worker's path).
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from cocode.errors import EXIT_CONFIG, CocodeError

GitError = pygit2.GitError


def open_repo(repo_root: Path | str) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(repo_root))
    except pygit2.GitError:
        raise CocodeError(
            f"{repo_root} is not a git repository: run cocode inside one or pass -C DIR", EXIT_CONFIG
        ) from None


def peel_commit(repo: pygit2.Repository, name: str) -> pygit2.Commit:
    """The commit `name` (branch, tag, sha, `HEAD~2`...) stands for; KeyError,
    ValueError or GitError when it names none."""
    return repo.revparse_single(name).peel(pygit2.Commit)

