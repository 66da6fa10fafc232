"""Fixtures: real git repositories, private ZeroMQ contexts and a real running cocode,
always cleaned up; and, around every test, the check that it left no process behind.
The helpers they use are in support.py."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import zmq

from support import (
    PASSED, SECRET, GitRepo, agent_processes, agent_table, down, live, make_repo, reap, up, write_config,
)


@pytest.fixture(autouse=True)
def leaves_no_process(request):
    """Every test reaps what it starts: no child of this process, and nothing working
    in the test's temporary directory, may outlive it (killed, then the test fails).
    Torn down after the test's own fixtures (`running` brings cocode down first)."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    me = psutil.Process()
    children = [p for p in me.children(recursive=True) if live(p)]
    reap(children, "child processes outlived the test")
    if tmp is not None:
        reap(agent_processes(tmp), "processes working in the test's directory outlived it")


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


@pytest.fixture
def limits() -> dict:
    """`performance:` for the test's config; override with parametrize."""
    return {}


@pytest.fixture
def jobs_repo(tmp_path: Path, limits: dict, monkeypatch) -> Path:
    """A real repository whose .cocode/config.yaml names the job tests' agents
    (support.agent_table), written before `running` starts cocode. The environment
    `cocode up` inherits holds a secret-looking variable and one listed in
    env_passthrough. A module uses it as its `repo`:
    `@pytest.fixture` `def repo(jobs_repo): return jobs_repo`."""
    path = make_repo(tmp_path / "repo")
    (tmp_path / "active").mkdir()
    config = {"agents": agent_table(tmp_path), "env_passthrough": ["MY_PASSED"]}
    if limits:
        config["performance"] = limits
    write_config(path, config)
    monkeypatch.setenv("MY_SECRET", SECRET)
    monkeypatch.setenv("MY_PASSED", PASSED)
    return path
