"""cocode.gitops against real git repositories in tmp_path."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from cocode import gitops
from cocode.errors import CocodeError
from support import GitRepo, isolated_env

MARKER = "cocode ready for check"


def worktree_paths(repo: GitRepo) -> list[str]:
    out = repo.git("worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


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
    base = gitrepo.head()
    wt = tmp_path / "wt" / "job1-a"
    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/a", base)
    work = gitrepo.commit("agent work", {"fix.txt": "fixed\n"}, cwd=wt)
    (wt / "scratch.txt").write_text("uncommitted\n")

    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/a", base)

    assert gitrepo.head(cwd=wt) == work
    assert (wt / "scratch.txt").read_text() == "uncommitted\n"


def test_create_worktree_keeps_commits_of_surviving_branch(gitrepo, tmp_path):
    base = gitrepo.head()
    wt = tmp_path / "wt" / "job1-a"
    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/a", base)
    work = gitrepo.commit("agent work", {"fix.txt": "fixed\n"}, cwd=wt)
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
    base = gitrepo.head()
    wt = tmp_path / "wt" / "j-a"
    gitops.create_worktree(gitrepo.path, wt, "cocode/j/a", base)
    work = gitrepo.commit("agent work", {"fix.txt": "fixed\n"}, cwd=wt)

    gitops.remove_worktree(gitrepo.path, wt)

    assert not wt.exists()
    assert str(wt) not in worktree_paths(gitrepo)
    assert gitrepo.git("rev-parse", "cocode/j/a") == work


def test_remove_worktree_refuses_the_repository_itself(gitrepo):
    with pytest.raises(CocodeError, match="refusing"):
        gitops.remove_worktree(gitrepo.path, gitrepo.path)
    assert (gitrepo.path / "README.md").exists()


# -------------------------------------------------------------- branch watcher


def test_branch_watcher_follows_commits_made_in_worktree(gitrepo, tmp_path):
    base = gitrepo.head()
    watcher = gitops.BranchWatcher(gitrepo.path, "cocode/j/a")
    assert watcher.head() is None

    wt = tmp_path / "wt"
    gitops.create_worktree(gitrepo.path, wt, "cocode/j/a", base)
    assert watcher.head() == base
    work = gitrepo.commit("agent work", {"f.txt": "1\n"}, cwd=wt)
    assert watcher.head() == work
    gitrepo.git("pack-refs", "--all")  # after gc the loose ref file is gone
    assert watcher.head() == work


def test_branch_watcher_read_costs_microseconds_not_a_fork(gitrepo):
    watcher = gitops.BranchWatcher(gitrepo.path, "main")
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        watcher.head()
    per_read = (time.perf_counter() - start) / n
    # Measured ~5 µs; a `git rev-parse` subprocess is ~1.4 ms. Generous for noisy CI.
    assert per_read < 200e-6, f"{per_read * 1e6:.1f} µs per read"


def test_branch_watcher_keeps_last_answer_while_a_ref_is_rewritten(gitrepo):
    first = gitrepo.head()
    second = gitrepo.commit("second")
    ref = gitrepo.path / ".git" / "refs" / "heads" / "main"
    watcher = gitops.BranchWatcher(gitrepo.path, "main")
    assert watcher.head() == second
    for torn in (b"", first.encode()[:17], b"ref: refs/hea"):  # caught mid-write
        ref.write_bytes(torn)
        assert watcher.head() == second
    ref.write_text(first + "\n")
    assert watcher.head() == first

    # A writer that rewrites the file in place (git renames a new file into place).
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            for sha in (first, second):
                with open(ref, "wb") as f:
                    f.write(sha[:20].encode())
                    f.flush()
                    f.write(sha[20:].encode() + b"\n")

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = {watcher.head() for _ in range(20_000)}
    finally:
        stop.set()
        writer.join()
    assert seen <= {first, second}


def test_branch_watcher_rereads_packed_refs_when_it_changes(gitrepo):
    first = gitrepo.head()
    gitrepo.git("branch", "cocode/j/a", first)
    gitrepo.git("pack-refs", "--all")
    assert not (gitrepo.path / ".git" / "refs" / "heads" / "cocode" / "j" / "a").exists()
    watcher = gitops.BranchWatcher(gitrepo.path, "cocode/j/a")
    assert watcher.head() == first
    second = gitrepo.commit("second")
    gitrepo.git("update-ref", "refs/heads/cocode/j/a", second)
    assert watcher.head() == second  # loose again
    gitrepo.git("pack-refs", "--all")
    assert watcher.head() == second  # packed again, packed-refs re-read
    gitrepo.git("branch", "-D", "cocode/j/a")  # only packed-refs changes
    assert watcher.head() is None
    assert gitops.BranchWatcher(gitrepo.path, "cocode/j").head() is None  # refs/heads/cocode/j/ is a directory


def test_branch_watcher_follows_a_symbolic_ref(gitrepo):
    (gitrepo.path / ".git" / "refs" / "heads" / "alias").write_text("ref: refs/heads/main\n")
    watcher = gitops.BranchWatcher(gitrepo.path, "alias")
    assert watcher.head() == gitrepo.head()
    work = gitrepo.commit("work")
    assert watcher.head() == work


def test_read_head_follows_head_from_files_detached_symbolic_or_packed(gitrepo):
    from cocode.gitops.refs import read_head

    git_dir, common = gitrepo.path / ".git", gitrepo.path / ".git"
    first = gitrepo.head()
    assert read_head(gitrepo.path, git_dir, common) == first  # on main, a loose ref
    second = gitrepo.commit("second", {"b.txt": "b\n"})
    assert read_head(gitrepo.path, git_dir, common) == second
    gitrepo.git("pack-refs", "--all")
    assert read_head(gitrepo.path, git_dir, common) == second  # main only in packed-refs
    gitrepo.git("checkout", "-q", "--detach", first)
    assert read_head(gitrepo.path, git_dir, common) == first
    gitrepo.git("checkout", "-q", "--orphan", "unborn")
    assert read_head(gitrepo.path, git_dir, common) is None


def test_branch_watcher_asks_git_when_refs_live_in_a_reftable(gitrepo):
    # git here still reads ref files and ignores the directory: this checks the
    # fallback's answers, not reftable itself.
    (gitrepo.path / ".git" / "reftable").mkdir()
    assert gitops.BranchWatcher(gitrepo.path, "main").head() == gitrepo.head()
    assert gitops.BranchWatcher(gitrepo.path, "nope").head() is None


# The worker must stay small: pygit2 costs ~18 MiB of RSS per process.
_WORKER_PATH = r"""
import subprocess, sys
from pathlib import Path

import cocode.gitops as gitops
import cocode.jobs.runner
import cocode.services.worker

print("pygit2" in sys.modules)
root, tmp, base = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
marker = "cocode ready for check"


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


wt, ws = tmp / "wt", tmp / "ws"
gitops.create_worktree(root, wt, "cocode/j/a", base)
gitops.create_worktree(root, wt, "cocode/j/a", base)  # requeued: already there
git("commit", "-q", "--allow-empty", "-m", f"done\n\n{marker}", cwd=wt)
head = gitops.BranchWatcher(root, "cocode/j/a").head()
assert head == git("rev-parse", "HEAD", cwd=wt)
assert gitops.find_ready_commit(root, base, head, marker) == head
assert gitops.count_commits(root, base, head) == 1
assert gitops.changed_lines(root, base, head) == 0
assert gitops.git_common_dir(root) == (root / ".git").resolve()
gitops.create_light_workspace(root, ws, "cocode/j/b", base, ["src"])
git("commit", "-q", "--allow-empty", "-m", "light work", cwd=ws)
light_head = gitops.BranchWatcher(ws, "cocode/j/b").head()
gitops.fetch_back(root, ws, "cocode/j/b")
assert git("rev-parse", "cocode/j/b", cwd=root) == light_head
print("pygit2" in sys.modules)
"""


def test_worker_path_never_imports_pygit2(gitrepo, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER_PATH, str(gitrepo.path), str(tmp_path), gitrepo.head()],
        capture_output=True, text=True, env=isolated_env(), timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"], "pygit2 was imported on the worker's path"


# ------------------------------------------------------------- ready detection


def test_find_ready_commit_returns_oldest_marker_commit_after_base(gitrepo):
    base = gitrepo.commit(f"base also says {MARKER}")
    gitrepo.commit("wip", {"a.txt": "1\n"})
    ready = gitrepo.commit(f"fix: the bug\n\n{MARKER}", {"a.txt": "2\n"})
    head = gitrepo.commit(f"{MARKER} again", {"a.txt": "3\n"})
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) == ready
    assert gitops.find_ready_commit(gitrepo.path, base, base, MARKER) is None


def test_descends_from_tells_a_runs_own_history_from_a_moved_branch(gitrepo):
    base = gitrepo.head()
    mine = gitrepo.commit("work", {"a.txt": "1\n"})
    assert gitops.descends_from(gitrepo.path, base, mine)
    assert gitops.descends_from(gitrepo.path, base, base)
    # An orphan commit with the marker, as a forger's `git update-ref` would point a branch at.
    tree = gitrepo.git("rev-parse", f"{mine}^{{tree}}")
    orphan = gitrepo.git("commit-tree", tree, "-m", f"forged\n\n{MARKER}")
    assert not gitops.descends_from(gitrepo.path, base, orphan)
    assert gitops.find_ready_commit(gitrepo.path, base, orphan, MARKER) == orphan  # why the check is needed
    with pytest.raises(CocodeError, match="git merge-base failed"):
        gitops.descends_from(gitrepo.path, base, "0" * 40)


def test_find_ready_commit_ignores_marker_in_file_content(gitrepo):
    base = gitrepo.head()
    head = gitrepo.commit("chore: status", {"STATUS.txt": MARKER + "\n"})
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) is None


def merge_a_marked_side_branch(gitrepo) -> tuple[str, str]:
    """(base, the merge): a side branch whose commit has the marker, merged into main."""
    base = gitrepo.head()
    gitrepo.git("checkout", "-q", "-b", "side")
    gitrepo.commit(f"side work\n\n{MARKER}", {"side.txt": "s\n"})
    gitrepo.git("checkout", "-q", "main")
    gitrepo.commit("main work", {"main.txt": "m\n"})
    gitrepo.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
    return base, gitrepo.head()


def test_find_ready_commit_follows_first_parent_only(gitrepo):
    base, head = merge_a_marked_side_branch(gitrepo)
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) is None
    ready = gitrepo.commit(f"done\n\n{MARKER}")
    assert gitops.find_ready_commit(gitrepo.path, base, ready, MARKER) == ready


# ---------------------------------------------------------------------- diffs


def test_count_changed_lines_and_diff_match_git(gitrepo):
    base = gitrepo.commit("base", {"a.txt": "one\ntwo\nthree\n"})
    gitrepo.commit("edit", {"a.txt": "one\n2\nthree\nfour\n"})
    head = gitrepo.commit("add", {"b.txt": "new\n", "bin.dat": b"\x00\x01\xff"})

    assert gitops.count_commits(gitrepo.path, base, head) == 2
    # a.txt: -two +2 +four; b.txt: +new  -> 3 insertions, 1 deletion
    assert gitops.changed_lines(gitrepo.path, base, head) == 4
    expected = gitrepo.git("diff", f"{base}..{head}") + "\n"
    assert gitops.diff_text(gitrepo.path, base, head) == expected
    assert gitops.diff_text(gitrepo.path, head, head) == ""


def test_changed_lines_counts_a_rename_as_a_rename(gitrepo):
    base = gitrepo.commit("base", {"big.txt": "".join(f"line {i}\n" for i in range(50))})
    gitrepo.git("mv", "big.txt", "moved.txt")
    head = gitrepo.commit("move")
    assert gitops.changed_lines(gitrepo.path, base, head) == 0


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


def test_read_history_answers_descent_ready_and_count_with_one_log(gitrepo):
    base = gitrepo.head()
    gitrepo.commit("wip", {"a.txt": "1\n"})
    ready = gitrepo.commit(f"fix\n\n{MARKER}", {"a.txt": "2\n"})
    head = gitrepo.commit(f"{MARKER} again", {"a.txt": "3\n"})
    h = gitops.read_history(gitrepo.path, base, head, MARKER)
    assert (h.descends, h.ready, h.commits) == (True, ready, 3)
    assert h.ready == gitops.find_ready_commit(gitrepo.path, base, head, MARKER)
    assert h.commits == gitops.count_commits(gitrepo.path, base, head)
    assert gitops.read_history(gitrepo.path, base, base, MARKER) == gitops.History(True, None, 0)
    # Reset below the base: reachable from it, so listed as nothing, and not its work.
    assert not gitops.read_history(gitrepo.path, head, base, MARKER).descends
    # A forged orphan with the marker, and a commit on top of another line of history.
    tree = gitrepo.git("rev-parse", f"{head}^{{tree}}")
    orphan = gitrepo.git("commit-tree", tree, "-m", f"forged\n\n{MARKER}")
    h = gitops.read_history(gitrepo.path, base, orphan, MARKER)
    assert not h.descends and h.ready == orphan  # found, and refused by the caller for not descending
    other = gitrepo.git("commit-tree", tree, "-p", f"{base}~0", "-m", "x")
    assert gitops.read_history(gitrepo.path, ready, other, MARKER).descends is False


def test_read_history_agrees_with_the_three_commands_across_merges(gitrepo):
    base, merged = merge_a_marked_side_branch(gitrepo)
    ready = gitrepo.commit(f"done\n\n{MARKER}")
    # Base brought in through a merge's second parent: git merge-base decides, as before.
    gitrepo.git("checkout", "-q", "--orphan", "elsewhere")
    gitrepo.commit("unrelated root", {"u.txt": "u\n"})
    gitrepo.git("merge", "-q", "--allow-unrelated-histories", "-m", f"merge main\n\n{MARKER}", "main")
    via_second = gitrepo.head()
    for start, head in ((base, merged), (base, ready), (base, via_second), (ready, via_second), (merged, ready)):
        h = gitops.read_history(gitrepo.path, start, head, MARKER)
        assert h.descends == gitops.descends_from(gitrepo.path, start, head), (start, head)
        assert h.ready == gitops.find_ready_commit(gitrepo.path, start, head, MARKER), (start, head)
        assert h.commits == gitops.count_commits(gitrepo.path, start, head), (start, head)
