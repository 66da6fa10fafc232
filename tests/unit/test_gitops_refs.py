"""cocode.gitops' ref reading against real git repositories in tmp_path: the
branch watcher (files, packed refs, symbolic refs, reftable) and the worker's
path that must never import pygit2."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from cocode import gitops
from support import isolated_env


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
