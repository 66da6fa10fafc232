"""The workspace pool (gitops/pool.py) against real git: a taken entry is exactly what
a fresh run clone (`clones.create_run_clone`) gives (files, modes, symlinks, index,
HEAD), junk left in the entry included, and a pool killed -9 while filling recovers
to nothing broken."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocode.gitops.clones import create_run_clone
from cocode.gitops import poolstamp
from cocode.gitops.pool import READY, WorktreePool
from cocode.gitops.runner import run
from cocode.jobs.pool import target
from support import ROOT, GitRepo, isolated_env, wait_until


@pytest.fixture(autouse=True)
def _no_user_git_config(monkeypatch):
    # cocode's git runner uses our environment: keep the user's hooks and config out.
    for k, v in isolated_env().items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo.init(tmp_path / "repo", {
        "README.md": "hello\n",
        "src/a.py": "print('a')\n",
        "src/deep/b.txt": "b\n",
        "run.sh": "#!/bin/sh\necho run\n",
        ".gitignore": "*.log\nbuild/\n",
    })
    os.chmod(r.path / "run.sh", 0o755)
    (r.path / "link").symlink_to("src/a.py")
    # A submodule as a fresh add leaves it: its gitlink in the index, an empty directory.
    r.write({".gitmodules": '[submodule "sub"]\n\tpath = sub\n\turl = ./sub\n'})
    r.git("add", "-A")
    r.git("update-index", "--add", "--cacheinfo", f"160000,{r.head()},sub")
    r.git("commit", "-q", "-m", "modes, link, submodule")
    return r


def snapshot(wt: Path) -> dict:
    """Everything an agent could see in a worktree, but git's own pointer file."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(wt):
        if Path(dirpath) == wt and ".git" in dirnames:
            dirnames.remove(".git")  # git's own directory: not the tree the agent works on
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(wt))
            if rel == ".git":
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                files[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                files[rel] = ("dir",)
            else:
                files[rel] = ("file", stat.S_IMODE(st.st_mode) & 0o111, p.read_bytes())
    g = GitRepo(wt)
    return {
        "files": files,
        "index": g.git("ls-files", "--stage", "-v", "--eol"),
        "status": g.git("status", "--porcelain=v2", "--ignored", "--untracked-files=all"),
        "head": g.git("symbolic-ref", "HEAD"),
        "commit": g.head(),
        "staged": g.git("diff", "--cached", "--name-status"),
    }


def fresh(repo: GitRepo, tmp: Path, branch: str, sha: str) -> dict:
    path = tmp / f"fresh-{branch.replace('/', '-')}"
    create_run_clone(repo.path, path, branch, sha)
    return snapshot(path)


def rename_branch(snap: dict, old: str, new: str) -> dict:
    return {**snap, "head": snap["head"].replace(old, new)}


def test_taken_entry_equals_fresh_add_at_the_pool_commit(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    pool.refill()
    dest = tmp_path / "wt" / "job-a"
    assert pool.take(dest, "cocode/j/a", repo.head())
    assert pool.last_take == "short"  # a rename of its branch and of its directory, nothing written
    assert rename_branch(snapshot(dest), "cocode/j/a", "f") == fresh(repo, tmp_path, "f", repo.head())
    assert pool.entries() == []
    assert GitRepo(dest).git("for-each-ref", "--format=%(refname)") == "refs/heads/cocode/j/a"  # its refs only
    assert repo.git("rev-parse", "cocode/j/a") == repo.head()  # the run's branch, at its base


def test_taken_entry_equals_fresh_add_at_another_commit(repo, tmp_path):
    old = repo.head()
    pool = WorktreePool(repo.path, tmp_path / "pool")
    pool.refill()
    pool.refill()
    os.chmod(repo.path / "run.sh", 0o644)
    (repo.path / "src/deep/b.txt").unlink()
    new = repo.commit("later", {"src/a.py": "print('A')\n", "new/c.txt": "c\n"})
    for branch, sha in (("x/new", new), ("x/old", old)):
        dest = tmp_path / branch.replace("/", "-")
        assert pool.take(dest, branch, sha)
        assert pool.last_take == ("moved" if sha == new else "short")
        assert rename_branch(snapshot(dest), branch, "f" + branch) == fresh(repo, tmp_path, "f" + branch, sha)


def test_an_entry_left_behind_by_a_commit_is_refreshed_in_place(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    assert pool.stale() == []
    (repo.path / "src/deep/b.txt").unlink()
    new = repo.commit("later", {"src/a.py": "print('A')\n", "new/c.txt": "c\n"})
    assert pool.stale() == [entry]
    assert pool.refresh(entry)
    assert pool.stale() == [] and pool.ready() == [entry]
    dest = tmp_path / "run"
    assert pool.take(dest, "cocode/j/n", new)
    assert pool.last_take == "short"
    assert rename_branch(snapshot(dest), "cocode/j/n", "f") == fresh(repo, tmp_path, "f", new)


# Each alone, HEAD left where the fill put it: what `git status` must see for the take
# to go the long way (the short way would hand the junk to the agent).
JUNK = {
    "untracked": lambda wt: (wt / "untracked.txt").write_text("junk\n"),
    "untracked in a new dir": lambda wt: ((wt / "src/deep/more").mkdir(), (wt / "src/deep/more/u.txt").write_text("j")),
    "ignored": lambda wt: (wt / "debug.log").write_text("ignored\n"),
    "ignored dir": lambda wt: ((wt / "build").mkdir(), (wt / "build/out.o").write_bytes(b"\0")),
    "modified": lambda wt: (wt / "README.md").write_text("modified\n"),
    "same size, modified": lambda wt: (wt / "README.md").write_text("HELLO\n"),
    "mode": lambda wt: os.chmod(wt / "run.sh", 0o644),
    "deleted link": lambda wt: (wt / "link").unlink(),
    "staged": lambda wt: ((wt / "staged.txt").write_text("s\n"), GitRepo(wt).git("add", "staged.txt")),
    "unstaged from the index": lambda wt: GitRepo(wt).git("rm", "-q", "--cached", "src/a.py"),
    "nested repository": lambda wt: GitRepo.init(wt / "nested"),
}


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_each_kind_of_junk_sends_the_take_the_long_way(repo, tmp_path, kind):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    JUNK[kind](entry)
    dest = tmp_path / "run"
    assert pool.take(dest, "cocode/j/k", repo.head())
    assert pool.last_take == "cleaned"
    assert rename_branch(snapshot(dest), "cocode/j/k", "f") == fresh(repo, tmp_path, "f", repo.head())
    assert GitRepo(dest).git("for-each-ref", "--format=%(refname)") == "refs/heads/cocode/j/k"


def stamp_proof(entry: Path) -> bool:
    """The take's cheap proof alone: the stamp in the marker holds and diff-files is clean."""
    stamp = entry.with_name(entry.name + READY).read_bytes()
    return poolstamp.holds(entry, stamp) and run(entry, "diff-files", "--quiet").returncode == 0


def test_an_untouched_entry_is_proven_by_its_stamp_not_by_git_status(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    assert stamp_proof(entry)
    assert pool.take(tmp_path / "run", "cocode/j/s", repo.head())
    assert (pool.last_take, pool.last_proof) == ("short", "stamp")


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_each_kind_of_junk_fails_the_stamp_proof_alone(repo, tmp_path, kind):
    """Without `git status` to fall back on, the stamp and diff-files see every kind."""
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    JUNK[kind](entry)
    assert not stamp_proof(entry)


def test_junk_in_git_files_or_a_new_hook_fails_the_stamp(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    with open(entry / ".git" / "config", "a") as f:  # written in place, no new inode
        f.write("[core]\n\thooksPath = /tmp\n")
    assert not stamp_proof(entry)
    entry = pool.refill()
    (entry / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\n")
    assert not stamp_proof(entry)


@pytest.mark.parametrize("kind", ["untracked", "modified", "ignored dir"])
def test_junk_left_while_the_entry_fills_leaves_it_no_stamp(repo, tmp_path, kind):
    """Junk from before the stamp is recorded is in what it records: the status after
    it finds the junk, so the stamp is not written, and the take cleans the entry."""
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.add()

    def pause(seconds: float) -> bool:
        JUNK[kind](entry)  # during the fill's wait, long enough before the stamp
        time.sleep(max(seconds, poolstamp.RACY_S + 0.05))  # pacing: the junk is older than the racy limit
        return False

    assert pool.fill(entry, pause=pause)
    assert entry.with_name(entry.name + READY).read_bytes() == b""
    dest = tmp_path / "run"
    assert pool.take(dest, "cocode/j/f", repo.head())
    assert (pool.last_take, pool.last_proof) == ("cleaned", "status")
    assert rename_branch(snapshot(dest), "cocode/j/f", "f") == fresh(repo, tmp_path, "f", repo.head())


def test_an_entry_settled_too_soon_has_no_stamp_and_is_proven_by_status(repo, tmp_path, monkeypatch):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.add()
    with monkeypatch.context() as m:
        m.setattr(poolstamp, "RACY_S", 3600.0)  # every directory is too fresh to trust
        assert pool.fill(entry, pause=lambda s: False)
    assert entry.with_name(entry.name + READY).read_bytes() == b""
    assert pool.take(tmp_path / "run", "cocode/j/r", repo.head())
    assert (pool.last_take, pool.last_proof) == ("short", "status")
    entry = pool.refill()
    entry.with_name(entry.name + READY).write_bytes(b'[["", 1')  # cut short while written
    assert pool.take(tmp_path / "run2", "cocode/j/r2", repo.head())
    assert (pool.last_take, pool.last_proof) == ("short", "status")


def test_a_base_that_is_no_commit_gives_the_entry_back(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    tree = repo.git("rev-parse", "HEAD^{tree}")
    assert not pool.take(tmp_path / "run", "cocode/j/t", tree)
    assert pool.ready() == [entry] and not (tmp_path / "run").exists()
    assert repo.git("branch", "--list", "cocode/j/t") == ""


def leave_junk(repo: GitRepo, wt: Path, other: str) -> None:
    """What a previous user of the directory could leave: every kind of change."""
    g = GitRepo(wt)
    g.git("checkout", "-q", "--detach", other)  # a detached HEAD elsewhere
    (wt / "untracked.txt").write_text("junk\n")
    (wt / "src/deep/more").mkdir()
    (wt / "src/deep/more/u.txt").write_text("junk\n")
    (wt / "debug.log").write_text("ignored\n")
    (wt / "build").mkdir()
    (wt / "build/out.o").write_bytes(b"\0ignored")
    (wt / "README.md").write_text("modified\n")
    os.chmod(wt / "run.sh", 0o644)
    (wt / "staged.txt").write_text("staged\n")
    g.git("add", "staged.txt")
    g.git("rm", "-q", "--cached", "src/a.py")
    (wt / "link").unlink()
    (wt / "nested").mkdir()
    GitRepo.init(wt / "nested")  # an untracked repository inside: only -ff removes it


def test_junk_left_in_an_entry_is_gone_after_take(repo, tmp_path):
    first = repo.head()
    second = repo.commit("second", {"src/a.py": "print('2')\n"})
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    leave_junk(repo, entry, first)
    dest = tmp_path / "run"
    assert pool.take(dest, "cocode/j/b", second)
    assert rename_branch(snapshot(dest), "cocode/j/b", "f") == fresh(repo, tmp_path, "f", second)


def test_take_leaves_the_pool_alone_when_the_branch_exists(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    repo.git("branch", "cocode/j/c")
    assert not pool.take(tmp_path / "run", "cocode/j/c", repo.head())
    assert pool.ready() == [entry]
    assert not (tmp_path / "run").exists()
    assert not pool.take(entry, "cocode/j/d", repo.head())  # an existing path: not ours to fill
    assert WorktreePool(repo.path, tmp_path / "empty").take(tmp_path / "r2", "cocode/j/e", repo.head()) is False


def test_trim_and_target_keep_the_pool_within_max_worktrees(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    for _ in range(3):
        pool.refill()
    assert pool.trim(1) == 2
    assert len(pool.entries()) == 1
    assert pool.clear() == 1
    assert [ln for ln in repo.git("worktree", "list", "--porcelain").splitlines()
            if ln.startswith("worktree ")] == [f"worktree {repo.path}"]
    assert target(size=2, max_worktrees=10, held=3) == 2
    assert target(size=2, max_worktrees=10, held=9) == 1
    assert target(size=4, max_worktrees=10, held=12) == 0


def test_kill_9_while_filling_leaves_nothing_broken(repo, tmp_path):
    # A slow smudge filter makes the checkout take seconds, so the kill lands inside it.
    repo.write({f"slow/f{i}.txt": f"{i}\n" for i in range(40)})
    repo.write({".gitattributes": "slow/* filter=slow\n"})
    repo.commit("slow files")
    # The entry is a clone: it reads the filter from the (test's) global config, not the repository's.
    slow_config = tmp_path / "slow.gitconfig"
    slow_config.write_text('[filter "slow"]\n\tsmudge = sleep 0.1; cat\n\tclean = cat\n')
    pool_dir = tmp_path / "pool"
    code = ("import sys; from pathlib import Path; from cocode.gitops.pool import WorktreePool; "
            "WorktreePool(Path(sys.argv[1]), Path(sys.argv[2])).refill()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(repo.path), str(pool_dir)],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "GIT_CONFIG_GLOBAL": str(slow_config)},
                            start_new_session=True)
    try:
        pool = WorktreePool(repo.path, pool_dir)
        wait_until(lambda: any((e / "slow").is_dir() for e in pool.entries()), 30, what="the entry's slow checkout")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert pool.ready() == []  # killed mid-checkout: never marked ready
    assert pool.recover() >= 1
    assert pool.entries() == []
    assert "prunable" not in repo.git("worktree", "list", "--porcelain")
    assert repo.git("worktree", "prune", "--dry-run", "-v") == ""
    pool.refill()
    dest = tmp_path / "after"
    assert pool.take(dest, "cocode/j/k", repo.head())
    assert rename_branch(snapshot(dest), "cocode/j/k", "f") == fresh(repo, tmp_path, "f", repo.head())


def test_a_claimed_but_unfinished_take_is_recovered(repo, tmp_path):
    pool = WorktreePool(repo.path, tmp_path / "pool")
    entry = pool.refill()
    (entry.with_name(entry.name + READY)).unlink()  # claimed, then the process died
    GitRepo(entry).git("switch", "-q", "-c", "cocode/j/z")
    assert pool.recover() == 1
    assert not entry.exists()
    # The run's clone is made afresh (a requeued run's path).
    create_run_clone(repo.path, tmp_path / "again", "cocode/j/z", repo.head())
    assert GitRepo(tmp_path / "again").head() == repo.head()
