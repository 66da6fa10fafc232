"""cocode.gitops, a run's place to work, against real git repositories in tmp_path:
resolving its base, linked worktrees made, reused, refused and removed, and the
light (shallow, sparse) workspace that fetches its commits back."""

from __future__ import annotations

import pytest

from cocode import gitops
from cocode.errors import CocodeError
from support import GitRepo

MARKER = "cocode ready for check"


def worktree_paths(repo: GitRepo) -> list[str]:
    out = repo.git("worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def worktree_with_work(gitrepo: GitRepo, wt, branch: str) -> tuple[str, str]:
    """(base, the agent's commit): a run's worktree at HEAD on `branch`, one commit made in it."""
    base = gitrepo.head()
    gitops.create_worktree(gitrepo.path, wt, branch, base)
    return base, gitrepo.commit("agent work", {"fix.txt": "fixed\n"}, cwd=wt)


# ---------------------------------------------------------------- resolve_commit


def test_resolve_commit_accepts_branch_short_sha_and_relative_refs(gitrepo):
    first = gitrepo.head()
    second = gitrepo.commit("second", {"a.txt": "a\n"})
    assert gitops.resolve_commit(gitrepo.path, "main") == second
    assert gitops.resolve_commit(gitrepo.path, second[:8]) == second
    assert gitops.resolve_commit(gitrepo.path, "HEAD~1") == first


def test_resolve_commit_rejects_unknown_ref_with_config_exit(gitrepo):
    with pytest.raises(CocodeError) as err:
        gitops.resolve_commit(gitrepo.path, "xyz")
    assert err.value.message.startswith(f"bad --base 'xyz': not a commit in {gitrepo.path}")
    assert err.value.exit_code == 2


# ------------------------------------------------------------------ worktrees


def test_create_worktree_checks_out_new_branch_at_base(gitrepo, tmp_path):
    base = gitrepo.head()
    gitrepo.commit("later on main", {"later.txt": "x\n"})
    wt = tmp_path / "wt" / "job1-claude"
    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/claude", base)

    assert (wt / "src" / "app.py").read_text() == "print('hi')\n"
    assert not (wt / "later.txt").exists(), "worktree must start at base, not at main's tip"
    assert gitrepo.git("rev-parse", "cocode/job1/claude") == base
    assert gitrepo.git("symbolic-ref", "HEAD", cwd=wt) == "refs/heads/cocode/job1/claude"
    assert str(wt) in worktree_paths(gitrepo)


def test_create_worktree_reuses_requeued_run_untouched(gitrepo, tmp_path):
    wt = tmp_path / "wt" / "job1-a"
    base, work = worktree_with_work(gitrepo, wt, "cocode/job1/a")
    (wt / "scratch.txt").write_text("uncommitted\n")

    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/a", base)

    assert gitrepo.head(cwd=wt) == work
    assert (wt / "scratch.txt").read_text() == "uncommitted\n"


def test_create_worktree_keeps_commits_of_surviving_branch(gitrepo, tmp_path):
    wt = tmp_path / "wt" / "job1-a"
    base, work = worktree_with_work(gitrepo, wt, "cocode/job1/a")
    gitops.remove_worktree(gitrepo.path, wt)

    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/a", base)

    assert gitrepo.head(cwd=wt) == work
    assert (wt / "fix.txt").read_text() == "fixed\n"


def test_create_worktree_refuses_foreign_directory_and_other_branch(gitrepo, tmp_path):
    base = gitrepo.head()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "keep.txt").write_text("mine\n")
    with pytest.raises(CocodeError, match="already exists"):
        gitops.create_worktree(gitrepo.path, junk, "cocode/j/a", base)
    assert (junk / "keep.txt").read_text() == "mine\n"

    wt = tmp_path / "wt"
    gitops.create_worktree(gitrepo.path, wt, "cocode/j/a", base)
    with pytest.raises(CocodeError, match="is a worktree on cocode/j/a, not cocode/j/b"):
        gitops.create_worktree(gitrepo.path, wt, "cocode/j/b", base)


def test_create_worktree_rejects_a_base_that_is_not_a_commit(gitrepo, tmp_path):
    with pytest.raises(CocodeError, match="'nope' is not a commit in"):
        gitops.create_worktree(gitrepo.path, tmp_path / "wt", "cocode/j/a", "nope")
    assert "cocode/j/a" not in gitrepo.git("branch", "--list")


def test_outside_a_repository_is_a_config_error(tmp_path):
    for call in (lambda: gitops.git_common_dir(tmp_path), lambda: gitops.BranchWatcher(tmp_path, "main")):
        with pytest.raises(CocodeError, match="is not a git repository") as err:
            call()
        assert err.value.exit_code == 2


def test_create_worktree_recovers_from_hand_deleted_worktree(gitrepo, tmp_path):
    import shutil

    base = gitrepo.head()
    wt = tmp_path / "wt"
    gitops.create_worktree(gitrepo.path, wt, "cocode/j/a", base)
    shutil.rmtree(wt)  # the admin entry in .git/worktrees is left behind
    gitops.create_worktree(gitrepo.path, wt, "cocode/j/a", base)
    assert (wt / "README.md").exists()


def test_remove_worktree_deletes_directory_and_entry_but_keeps_branch(gitrepo, tmp_path):
    wt = tmp_path / "wt" / "j-a"
    _, work = worktree_with_work(gitrepo, wt, "cocode/j/a")

    gitops.remove_worktree(gitrepo.path, wt)

    assert not wt.exists()
    assert str(wt) not in worktree_paths(gitrepo)
    assert gitrepo.git("rev-parse", "cocode/j/a") == work


def test_remove_worktree_refuses_the_repository_itself(gitrepo):
    with pytest.raises(CocodeError, match="refusing"):
        gitops.remove_worktree(gitrepo.path, gitrepo.path)
    assert (gitrepo.path / "README.md").exists()


# ------------------------------------------------------------- light workspace


def test_light_workspace_is_shallow_sparse_and_fetches_back(gitrepo, tmp_path):
    gitrepo.commit("history 1", {"docs/a.md": "a\n", "src/lib.py": "x = 1\n"})
    base = gitrepo.commit("history 2", {"docs/a.md": "b\n"})
    ws = tmp_path / "ws" / "j-a"
    gitops.create_light_workspace(gitrepo.path, ws, "cocode/j/a", base, sparse=["src"])

    assert gitrepo.git("rev-list", "--count", "HEAD", cwd=ws) == "1", "depth 1"
    assert gitrepo.git("rev-parse", "HEAD", cwd=ws) == base
    assert gitrepo.git("symbolic-ref", "HEAD", cwd=ws) == "refs/heads/cocode/j/a"
    assert (ws / "src" / "lib.py").exists() and not (ws / "docs").exists(), "sparse checkout"
    assert gitrepo.git("rev-parse", "cocode/j/a") == base, "branch exists in main from the start"

    ready = gitrepo.commit(f"fix\n\n{MARKER}", {"src/lib.py": "x = 2\n"}, cwd=ws)
    head = gitops.BranchWatcher(ws, "cocode/j/a").head()
    assert head == ready
    assert gitops.find_ready_commit(ws, base, head, MARKER) == ready

    gitops.fetch_back(gitrepo.path, ws, "cocode/j/a")
    assert gitrepo.git("rev-parse", "cocode/j/a") == ready
    assert gitops.diff_text(gitrepo.path, base, ready).count("+x = 2") == 1


def test_removing_light_workspace_fetches_its_commits_first(gitrepo, tmp_path):
    base = gitrepo.head()
    ws = tmp_path / "ws"
    gitops.create_light_workspace(gitrepo.path, ws, "cocode/j/b", base, sparse=None)
    last = gitrepo.commit("late work", {"late.txt": "1\n"}, cwd=ws)

    gitops.remove_worktree(gitrepo.path, ws)

    assert not ws.exists()
    assert gitrepo.git("rev-parse", "cocode/j/b") == last

    # A requeued light run resumes from the branch, commits included.
    gitops.create_light_workspace(gitrepo.path, ws, "cocode/j/b", base)
    assert gitrepo.head(cwd=ws) == last
    assert gitops.count_commits(ws, base, last) == 1


def test_fetch_back_refuses_to_overwrite_a_moved_branch(gitrepo, tmp_path):
    base = gitrepo.head()
    ws = tmp_path / "ws"
    gitops.create_light_workspace(gitrepo.path, ws, "cocode/j/c", base)
    gitrepo.commit("agent", {"a.txt": "agent\n"}, cwd=ws)
    gitrepo.git("branch", "-f", "cocode/j/c", gitrepo.commit("someone else on main", {"m.txt": "m\n"}))
    moved = gitrepo.git("rev-parse", "cocode/j/c")
    with pytest.raises(CocodeError, match="moved in .* its commits are safe in") as err:
        gitops.fetch_back(gitrepo.path, ws, "cocode/j/c")
    assert "\n" not in err.value.message
    assert gitrepo.git("rev-parse", "cocode/j/c") == moved
