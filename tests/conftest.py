"""Fixtures: real git repositories, private ZeroMQ contexts and a real running cocode,
always cleaned up. The helpers they use are in support.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from support import GitRepo, down, make_repo, up


@pytest.fixture
def ctx():
    """A private ZeroMQ context for a test's own sockets."""
    c = zmq.Context()
    try:
        yield c
    finally:
        c.destroy(linger=0)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def running(repo: Path):
    """cocode up --detach in a fresh repository; always brought down after."""
    paths = up(repo)
    try:
        yield paths
    finally:
        down(repo)


@pytest.fixture
def gitrepo(tmp_path: Path) -> GitRepo:
    return GitRepo.init(tmp_path / "repo", {"README.md": "hello\n", "src/app.py": "print('hi')\n"})
