"""Fixtures: real git repositories, private ZeroMQ contexts and a real running cocode,
always cleaned up; and, around every test, the check that it left no process behind.
The helpers they use are in the support package (tests/support/)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
import zmq

from review_support import CALC, CALC_TESTS
from support import (
    AGENT_GIT_ENV, AGENTS_DIR, PASSED, SECRET, GitRepo, agent_processes, down, isolated_env, live, make_repo,
    reap, up, write_config,
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


@pytest.fixture(params=["bwrap", "off"])
def sandbox_mode(request) -> str:
    """A test that takes it runs twice: its runs confined by bubblewrap (`sandbox:
    bwrap`, skipped where bwrap cannot confine here, saying why) and not (`off`)."""
    from cocode.jobs import sandbox

    if request.param == "bwrap" and (why := sandbox.unavailable()):
        pytest.skip(f"sandbox unavailable: {why}")
    return request.param


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


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One running cocode for a module's tests that leave it healthy (saves start-ups)."""
    repo = make_repo(tmp_path_factory.mktemp("shared") / "repo")
    try:
        yield up(repo)
    finally:
        down(repo)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch):
    """config_file(text): .cocode/config.yaml written in a fresh cwd; its path relative
    to that cwd, as a CLI would have it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cocode").mkdir()
    rel = Path(".cocode/config.yaml")

    def write(text: str) -> Path:
        rel.write_text(text, encoding="utf-8")
        return rel

    return write


@pytest.fixture
def gitrepo(tmp_path: Path) -> GitRepo:
    return GitRepo.init(tmp_path / "repo", {"README.md": "hello\n", "src/app.py": "print('hi')\n"})


@pytest.fixture
def limits() -> dict:
    """`performance:` for the test's config; override with parametrize."""
    return {}


def agent_table(tmp: Path) -> dict:
    """The job tests' agents (scripts in tests/agents/), keyed by name."""
    def bash(script: str, *args: str, **env: str) -> dict:
        return {"command": ["bash", str(AGENTS_DIR / script), *args], "env": {**AGENT_GIT_ENV, **env}}

    return {
        "adr003": bash("adr003_example.sh"),
        "marker_in_file": bash("marker_in_file.sh"),
        "exit1": bash("exit_with.sh", "1"),
        "exit3": bash("exit_with.sh", "3"),
        "sleeper": bash("sleeper.sh"),
        "sleeper_big": bash("sleeper.sh", "150"),
        "gate": bash("gate.sh", GATE_FILE=str(tmp / "gate")),
        "resumable": bash("resumable.sh"),
        "lingerer": bash("ready_then_hang.sh"),
        "ticker": bash("ticker.sh", "25"),
        **{f"moves_{m}": bash("ready_moves.sh", m) for m in ("burst", "amend", "switch", "restart")},
        # A binary of its own that a test creates, and may delete before dispatch.
        "vanish": {"command": [str(tmp / "bin" / "vanish.sh")], "env": AGENT_GIT_ENV},
        "envdump": {
            "command": ["{python}", str(AGENTS_DIR / "env_dump.py")],
            "env": {**AGENT_GIT_ENV, "DUMP_FILE": str(tmp / "dump-{job}.json"), "AGENT_FLAVOUR": "vanilla"},
        },
        **{f"c{i}": bash("counted.sh", ACTIVE_DIR=str(tmp / "active")) for i in range(1, 5)},
    }


@pytest.fixture
def jobs_repo(tmp_path: Path, limits: dict, monkeypatch) -> Path:
    """A real repository whose .cocode/config.yaml names the job tests' agents
    (agent_table above), written before `running` starts cocode. The environment
    `cocode up` inherits holds a secret-looking variable and one listed in
    env_passthrough. A module uses it as its `repo`:
    `@pytest.fixture` `def repo(jobs_repo): return jobs_repo`."""
    path = make_repo(tmp_path / "repo")
    (tmp_path / "active").mkdir()
    # These agents talk to the test through files outside their worktree (gates, dumps,
    # counters), which the sandbox hides: sandbox off here; test_hardening tests the sandbox.
    config = {"agents": agent_table(tmp_path), "env_passthrough": ["MY_PASSED"], "sandbox": "off"}
    if limits:
        config["performance"] = limits
    write_config(path, config)
    monkeypatch.setenv("MY_SECRET", SECRET)
    monkeypatch.setenv("MY_PASSED", PASSED)
    return path


@pytest.fixture
def calc(tmp_path: Path, monkeypatch) -> GitRepo:
    """A repository whose unittest suite fails on an off-by-one bug (issue 10's tests);
    git here and in every cocode the test starts runs with a fixed identity."""
    for k in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(k)
    for k, v in isolated_env().items():
        if k.startswith("GIT_"):
            monkeypatch.setenv(k, v)
    return GitRepo.init(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": CALC_TESTS})
