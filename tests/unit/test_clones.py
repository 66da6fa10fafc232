"""A run's own clone (cocode/gitops/clones.py), in real repositories: objects borrowed,
refs its own, heads taken back only when they descend from the run's base."""

from __future__ import annotations

import pytest

from cocode import gitops
from cocode.errors import CocodeError
from support import GitRepo

BRANCH = "cocode/j1/a"


@pytest.fixture
def clone(gitrepo: GitRepo, tmp_path):
    base = gitrepo.head()
    path = tmp_path / "ws"
    gitops.create_run_clone(gitrepo.path, path, BRANCH, base)
    return GitRepo(path), base


def test_a_clone_borrows_objects_and_has_the_runs_branch(gitrepo, clone):
    ws, base = clone
    assert gitops.is_run_clone(gitrepo.path, ws.path)
    assert gitrepo.git("rev-parse", f"refs/heads/{BRANCH}") == base  # created in the repository
    assert ws.git("symbolic-ref", "HEAD") == f"refs/heads/{BRANCH}"
    assert ws.head() == base
    assert not list((ws.path / ".git" / "objects" / "pack").glob("*.pack")), "objects copied, not borrowed"
    # Only the run's branch: no other branch of the repository is in the clone.
    gitrepo.git("branch", "cocode/other/b")
    assert "other" not in ws.git("for-each-ref")


def test_a_ref_moved_in_the_clone_moves_nothing_in_the_repository(gitrepo, clone):
    ws, base = clone
    gitrepo.git("branch", "cocode/j2/victim")
    ws.commit("hostile", {"x.txt": "x\n"})
    ws.git("update-ref", "refs/heads/cocode/j2/victim", ws.head())
    assert gitrepo.git("rev-parse", "refs/heads/cocode/j2/victim") == base
    assert gitrepo.git("rev-parse", f"refs/heads/{BRANCH}") == base  # until the worker takes it


def test_take_head_copies_the_runs_commits_and_refuses_other_history(gitrepo, clone):
    ws, base = clone
    mine = ws.commit("work", {"a.txt": "1\n"})
    assert gitops.take_head(gitrepo.path, ws.path, BRANCH, base, mine)
    assert gitrepo.git("rev-parse", f"refs/heads/{BRANCH}") == mine
    orphan = ws.git("commit-tree", ws.git("rev-parse", "HEAD^{tree}"), "-m", "not from base")
    assert not gitops.take_head(gitrepo.path, ws.path, BRANCH, base, orphan)
    assert gitrepo.git("rev-parse", f"refs/heads/{BRANCH}") == mine  # left where it was
    with pytest.raises(CocodeError):
        gitops.take_head(gitrepo.path, ws.path, BRANCH, base, "1" * 40)


def test_a_requeued_run_keeps_its_clone_and_a_new_clone_resumes_from_the_branch(gitrepo, clone, tmp_path):
    ws, base = clone
    mine = ws.commit("work", {"a.txt": "1\n"})
    gitops.create_run_clone(gitrepo.path, ws.path, BRANCH, base)
    assert ws.head() == mine  # kept as it was
    assert gitops.take_head(gitrepo.path, ws.path, BRANCH, base, mine)
    again = tmp_path / "again"
    gitops.create_run_clone(gitrepo.path, again, BRANCH, base)
    assert GitRepo(again).head() == mine


def test_removing_a_clone_takes_its_last_head_first(gitrepo, clone):
    ws, base = clone
    mine = ws.commit("work not yet taken", {"a.txt": "1\n"})
    gitops.remove_worktree(gitrepo.path, ws.path)
    assert not ws.path.exists()
    assert gitrepo.git("rev-parse", f"refs/heads/{BRANCH}") == mine
