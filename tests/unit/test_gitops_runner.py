"""cocode.gitops.runner: one environment policy for every git command, one-line errors."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from cocode.errors import CocodeError
from cocode.gitops import runner
from support import GitRepo, git, isolated_env


def test_a_git_dir_in_the_callers_environment_does_not_redirect_the_runner(tmp_path, monkeypatch):
    mine = GitRepo.init(tmp_path / "mine")
    other = GitRepo.init(tmp_path / "other", {"other.txt": "x\n"})
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other.path))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other.path / ".git" / "index"))
    # git itself obeys them (as from a hook or an IDE terminal): the runner must not.
    raw = subprocess.run(["git", "rev-parse", "HEAD"], cwd=mine.path, capture_output=True, text=True)
    assert raw.stdout.strip() == other.head()

    assert runner.git(mine.path, "rev-parse", "HEAD").decode().strip() == mine.head()
    assert runner.git(mine.path, "ls-files").decode().split() == ["README.md"]
    assert runner.git_common_dir(mine.path) == (mine.path / ".git").resolve()


def test_git_never_prompts_speaks_plain_english_and_keeps_the_rest(gitrepo, monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")
    monkeypatch.setenv("COCODE_TEST_KEPT", "yes")  # e.g. SSH_AUTH_SOCK must still reach git
    # A shell alias prints the environment git and its children get.
    out = runner.git(gitrepo.path, "showenv", config=["alias.showenv=!env"])
    lines = os.fsdecode(out).splitlines()
    assert "LC_ALL=C" in lines and "GIT_TERMINAL_PROMPT=0" in lines
    assert "COCODE_TEST_KEPT=yes" in lines


def test_a_failing_git_command_is_one_line_with_gits_last_stderr_line(gitrepo, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "junk.txt").write_text("x\n")
    raw = subprocess.run(
        ["git", "worktree", "add", str(taken)], cwd=gitrepo.path, capture_output=True, text=True,
        env=isolated_env(LC_ALL="C"),
    )
    said = raw.stderr.strip().splitlines()
    assert raw.returncode != 0 and len(said) > 1  # git says more than its reason

    with pytest.raises(CocodeError) as err:
        runner.git(gitrepo.path, "worktree", "add", str(taken))
    assert err.value.message == f"git worktree failed in {gitrepo.path}: {said[-1]}"
    assert said[-1] == f"fatal: '{taken}' already exists"
    assert err.value.exit_code == 1

    # run() leaves judging the answer to the caller.
    proc = runner.run(gitrepo.path, "rev-parse", "--verify", "--quiet", "refs/heads/nope")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, b"", b"")


def test_a_missing_directory_and_a_missing_git_are_told_apart(tmp_path, monkeypatch):
    with pytest.raises(CocodeError) as err:
        runner.git(tmp_path / "gone", "status")
    assert err.value.message == f"{tmp_path / 'gone'} does not exist: cannot run git status there"
    assert err.value.exit_code == 1

    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    with pytest.raises(CocodeError) as err:
        runner.git(tmp_path, "status")
    assert err.value.message == "git is not on PATH: install git (2.25 or newer)"
    assert err.value.exit_code == 3


def test_a_hanging_git_command_is_stopped_at_its_timeout(gitrepo, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # git blocks opening it until a writer comes: none will
    t0 = time.monotonic()
    with pytest.raises(CocodeError) as err:
        runner.git(gitrepo.path, "hash-object", str(fifo), timeout=0.5)
    assert time.monotonic() - t0 < 30
    assert err.value.message == f"git hash-object took over 0.5s in {gitrepo.path}: check disk and load, then retry"
    assert err.value.exit_code == 124


def test_git_dir_finds_a_worktrees_common_dir_and_a_plain_one_without_git(gitrepo, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    gitrepo.git("worktree", "add", "-q", str(tree))
    assert runner.git_dir(tree) == (gitrepo.path / ".git").resolve()
    monkeypatch.setenv("PATH", str(tmp_path))  # no git: the common case needs none
    assert runner.git_dir(gitrepo.path) == gitrepo.path / ".git"


def test_init_repo_commits_everything_once_as_the_given_identity(tmp_path, monkeypatch):
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)  # they would win over the identity given
    root = tmp_path / "sample"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a = 1\n")
    runner.init_repo(root, "first", name="sampler", email="s@cocode.invalid")
    assert git(root, "log", "--format=%an <%ae> %cn %s") == "sampler <s@cocode.invalid> sampler first"
    assert git(root, "ls-files") == "src/a.py"
    assert git(root, "branch", "--show-current") == "main"
