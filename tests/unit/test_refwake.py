"""RefWake (and cocode.inotify) against real git commands in a real repository: a moved
branch is named at once, other git activity is not, a lost watch comes back."""

from __future__ import annotations

import select

import pytest

from cocode import gitops
from cocode.jobs.refwake import RefWake

BRANCH = "cocode/j1/a"


@pytest.fixture
def wake():
    w = RefWake()
    if w.fd is None:
        pytest.skip("no inotify here")
    yield w
    w.close()


def readable(fd: int, timeout: float = 5.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_a_commit_on_the_branch_names_its_run_and_other_git_work_does_not(gitrepo, wake):
    gitrepo.git("checkout", "-q", "-b", BRANCH)
    watcher = gitops.BranchWatcher(gitrepo.path, BRANCH)
    other = gitops.BranchWatcher(gitrepo.path, "cocode/j1/b")
    gitrepo.git("branch", "cocode/j1/b")
    wake.add("a", watcher.loose_path)
    wake.add("b", other.loose_path)  # the same directory: one watch serves both
    assert wake.watched("a") and wake.watched("b")
    head = gitrepo.commit("work", {"a.txt": "1\n"})
    assert readable(wake.fd)
    assert wake.fired() == {"a"}
    assert watcher.head() == head
    # Amend, then a quick second commit: each replaces the ref file, each is named.
    gitrepo.git("commit", "-q", "--amend", "-m", "amended")
    assert wake.fired() == {"a"}
    gitrepo.git("status")  # index.lock comes and goes in .git, not in the ref's directory
    gitrepo.git("tag", "t1")
    assert wake.fired() == set()
    gitrepo.git("branch", "-f", "cocode/j1/b", "HEAD")
    assert wake.fired() == {"b"}
    wake.discard("b")
    gitrepo.git("branch", "-f", "cocode/j1/b", "HEAD~1")
    gitrepo.commit("more")
    assert wake.fired() == {"a"}


def test_a_watch_lost_to_pack_refs_is_named_then_rearmed_when_the_directory_returns(gitrepo, wake):
    gitrepo.git("checkout", "-q", "-b", BRANCH)
    gitrepo.commit("work", {"a.txt": "1\n"})
    watcher = gitops.BranchWatcher(gitrepo.path, BRANCH)
    wake.add("a", watcher.loose_path)
    gitrepo.git("pack-refs", "--all")  # the loose file goes, and its emptied directories
    assert not (gitrepo.path / ".git/refs/heads/cocode/j1").exists()
    assert "a" in wake.fired()  # a deletion, then the watch's end: read it (packed now)
    assert not wake.watched("a")
    wake.rearm(now=0.0)  # nothing to watch yet: stays lost, polling sees the branch
    assert not wake.watched("a")
    head = gitrepo.commit("after packing", {"a.txt": "2\n"})
    assert watcher.head() == head
    wake.rearm(now=10.0)
    assert wake.watched("a")
    gitrepo.commit("watched again", {"a.txt": "3\n"})
    assert wake.fired() == {"a"}


def test_without_a_ref_file_nothing_is_watched(wake):
    wake.add("x", None)  # a reftable repository: polling only
    assert not wake.watched("x")
    assert wake.fired() == set()
