"""Real git repositories for tests, with the user's git config shut out: GitRepo and
its one-line helpers, and the identities tests and agents commit with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Agents commit with a fixed identity and without the user's git config (hooks, signing).
AGENT_GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}

IDENTITY = {
    "GIT_AUTHOR_NAME": "cocode-test", "GIT_AUTHOR_EMAIL": "test@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-test", "GIT_COMMITTER_EMAIL": "test@cocode.invalid",
}


def isolated_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", **IDENTITY, **extra)
    return env


class GitRepo:
    """A git repository in a directory, with one-line helpers to change and commit."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def init(cls, path: Path, files: dict[str, str] | None = None) -> "GitRepo":
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        repo.commit("initial", files or {"README.md": "hello\n"})
        return repo

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=isolated_env(), capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, files: dict[str, str | bytes], cwd: Path | None = None) -> None:
        for name, content in files.items():
            p = (cwd or self.path) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)

    def commit(self, message: str, files: dict[str, str | bytes] | None = None, cwd: Path | None = None) -> str:
        """Write `files`, commit everything (empty commits allowed), return the sha."""
        if files:
            self.write(files, cwd)
        self.git("add", "-A", cwd=cwd)
        self.git("commit", "-q", "--allow-empty", "-m", message, cwd=cwd)
        return self.head(cwd)

    def head(self, cwd: Path | None = None) -> str:
        return self.git("rev-parse", "HEAD", cwd=cwd)


def git(repo: Path, *args: str) -> str:
    return GitRepo(repo).git(*args)


def make_repo(path: Path, files: int = 3) -> Path:
    """A repository on `main` with one commit of `files` small files."""
    GitRepo.init(path, {f"file{i}.txt": f"line {i}\n" for i in range(files)})
    return path


def rev_parse(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", ref)


def subjects(repo: Path, base: str, ref: str) -> list[str]:
    return git(repo, "log", "--format=%s", f"{base}..{ref}").splitlines()
