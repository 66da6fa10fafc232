"""Git for agent runs: every touch of git cocode makes, split by concern.

- `runner`: the one way git is run (one environment policy) and where a
  repository's directories are;
- `worktrees`: a run's worktree or light workspace, created, removed, fetched back;
- `pool`: ready worktrees a run takes instead of checking out a whole tree
  (imported directly, by the worker's jobs/pool.py);
- `clones`: a run's own clone (its own refs), whose commits the worker takes back;
- `refs`: branch heads read cheaply and often (`BranchWatcher`), revisions resolved;
- `history`: a run's ready commit, commit and line counts, its diff;
- `size`: a repository's size by ADR-005 §3 and the policy that follows from it;
- `libgit`: pygit2, for the questions asked in short-lived CLI processes.

The worker must stay small: pygit2 costs ~18 MiB of RSS and ~80 ms per process,
so nothing imported here loads it; `libgit` is imported only inside
`refs.resolve_commit` (tests/unit/test_gitops.py checks).
Nothing here knows about events or sockets: callers turn the results into events.
Errors a user can act on are `CocodeError`s with a one-line message naming the fix.

This module only re-exports the public names, so callers write `gitops.X`.
"""

from cocode.gitops.clones import create_run_clone, fetch_head, is_run_clone, move_branch, take_head
from cocode.gitops.history import (
    History,
    changed_lines,
    count_commits,
    descends_from,
    diff_text,
    find_ready_commit,
    read_history,
)
from cocode.gitops.refs import BranchWatcher, resolve_commit
from cocode.gitops.runner import CLONE_TIMEOUT, GIT_TIMEOUT, git_common_dir, git_dir, init_repo
from cocode.gitops.size import (
    GB,
    LIGHT_WORKTREE_BYTES,
    MAX_TOTAL_BYTES,
    MB,
    WARN_WORKTREE_BYTES,
    RepoSize,
    SizePolicy,
    human_size,
    repo_size,
    size_policy,
)
from cocode.gitops.worktrees import create_light_workspace, create_worktree, fetch_back, remove_worktree

__all__ = [
    "BranchWatcher", "CLONE_TIMEOUT", "GB", "GIT_TIMEOUT", "LIGHT_WORKTREE_BYTES", "MAX_TOTAL_BYTES",
    "MB", "RepoSize", "SizePolicy", "WARN_WORKTREE_BYTES", "changed_lines", "count_commits", "descends_from",
    "create_light_workspace", "create_run_clone", "create_worktree", "diff_text", "fetch_back", "find_ready_commit",
    "git_common_dir", "git_dir", "human_size", "init_repo", "is_run_clone", "remove_worktree", "repo_size",
    "resolve_commit", "size_policy", "take_head", "fetch_head", "move_branch", "History", "read_history",
]
