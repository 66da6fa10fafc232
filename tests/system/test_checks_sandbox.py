"""A check runs the agent's code (a conftest.py, a test file), so a sandboxed run's
checks run in its sandbox (issue 11): a check that tries to write into the main
checkout and into `.cocode/` and to read the other run's workspace reaches none
of them, while a check writing JUnit XML still reports its counts from it. With
`sandbox: off` the same check does escape: what shows the test can fail.
Real services, real bubblewrap, real git.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from cocode.jobs import sandbox
from cocode.paths import Paths
from cocode.runkey import RunKey
from support import (
    AGENT_GIT_ENV, GitRepo, agents, cocode, down, events, procs_matching, submit, up, wait_until, write_config,
)

# Each agent commits a file naming itself: what the other run's check must not read.
AGENT = 'cd "$COCODE_REPO_PATH"; echo "$COCODE_AGENT_NAME" > mark.txt; git add mark.txt; ' \
        'git commit -q -m mark -m "$COCODE_READY_MARKER"'
XML = "<testsuite tests='7' failures='2' errors='0' skipped='0'/>"


def escape(repo: Path) -> str:
    worktrees = Paths(repo).worktrees
    return (f"echo out > {repo}/escaped-main.txt; echo out > {repo}/.cocode/escaped.txt; "
            f"cat {worktrees}/*/mark.txt > seen.txt; true")


def test_a_check_is_confined_to_its_run_when_runs_are_sandboxed(calc: GitRepo, sandbox_mode: str):
    mode = sandbox_mode
    repo = calc.path
    (repo / ".git" / "info" / "exclude").write_text(".cocode/\nescaped-main.txt\n")
    junit = f"echo \"{XML}\" > \"$COCODE_JUNIT_XML\"; echo \"xml=$COCODE_JUNIT_XML\"; exit 1"
    write_config(repo, {
        "agents": {name: {"command": ["bash", "-c", AGENT], "env": AGENT_GIT_ENV} for name in ("a", "b")},
        "checks": {"escape": escape(repo), "junit": junit},
        "performance": {"max_concurrent_agents": 4}, "sandbox": mode})
    up(repo)
    try:
        submit(repo, *agents("a", "b"))
        done = wait_until(lambda: (f := events(repo, "check_finished"))[3:] and f, 60,
                          what="both checks of both runs finished")
    finally:
        down(repo)
    by = {(e["agent"], e["name"]): e for e in done}
    for agent in ("a", "b"):
        j = by[(agent, "junit")]
        assert (j["status"], j["passed"], j["failed"], j["exit_code"]) == ("failed", 5, 2, 1), j
        assert j["summary"] == "5 passed, 2 failed (JUnit XML)"
        assert by[(agent, "escape")]["status"] == "passed", by[(agent, "escape")]
    seen = {a: (RunKey(by[(a, "escape")]["job"], a).worktree(Paths(repo)) / "seen.txt").read_text().split()
            for a in ("a", "b")}
    escaped = [p for p in (repo / "escaped-main.txt", repo / ".cocode" / "escaped.txt") if p.exists()]
    # The run ready last had its check run after the other's mark was committed: unconfined,
    # it reads it (what shows the test sees an escape when there is one).
    if mode == "off":
        assert len(escaped) == 2 and ["a", "b"] in seen.values(), (escaped, seen)
        return
    assert not escaped, "a sandboxed check wrote outside its run's workspace"
    assert seen == {"a": ["a"], "b": ["b"]}, f"a sandboxed check read another run's workspace: {seen}"
    leftover = Paths(repo).tmp / "checks"
    assert not leftover.exists() or not any(leftover.iterdir()), "a check's scratch HOME was left behind"


def test_a_sandboxed_check_keeps_its_timeout_and_its_processes_end_with_it(calc: GitRepo):
    """The check's group is bwrap's: its timeout kills the group, and what the check
    started in a session of its own (a daemon) ends with the sandbox's pid namespace."""
    if why := sandbox.unavailable():
        pytest.skip(f"sandbox unavailable: {why}")
    repo = calc.path
    (repo / ".git" / "info" / "exclude").write_text(".cocode/\n")
    daemon, hang = f"311.{os.getpid()}", f"312.{os.getpid()}"
    write_config(repo, {
        "agents": {"a": {"command": ["bash", "-c", AGENT], "env": AGENT_GIT_ENV}},
        "checks": {"hang": {"command": f"(setsid sleep {daemon} &); sleep {hang}", "timeout": 2}},
        "sandbox": "bwrap"})
    up(repo)
    try:
        submit(repo, *agents("a"))
        wait_until(lambda: sleeping(daemon) and sleeping(hang), 30, what="the check and its daemon")
        done = wait_until(lambda: events(repo, "check_finished"), 30, what="the hanging check finished")
        assert done[0]["status"] == "timeout" and "timed out after 2 s" in done[0]["reason"], done
        wait_until(lambda: not sleeping(daemon) and not sleeping(hang), 15,
                   what="the check's processes gone with its sandbox")
    finally:
        down(repo)


def sleeping(arg: str) -> list[psutil.Process]:
    return procs_matching(lambda argv: argv == ["sleep", arg])


def test_sandbox_bwrap_without_bubblewrap_records_the_check_an_error(calc: GitRepo, tmp_path: Path):
    """A ready run's checks (made while `sandbox: off`) asked again once the config says
    `sandbox: bwrap` where bubblewrap is missing: recorded an error naming why, never run
    bare (its command would leave a file in the main checkout)."""
    repo = calc.path
    (repo / ".git" / "info" / "exclude").write_text(".cocode/\nbare.txt\n")
    config = {"agents": {"a": {"command": ["bash", "-c", AGENT], "env": AGENT_GIT_ENV}},
              "checks": {"t": f"echo ran > {repo}/bare.txt"}, "sandbox": "off"}
    write_config(repo, config)
    up(repo)
    try:
        job = submit(repo, *agents("a"))
        wait_until(lambda: events(repo, "check_finished"), 30, what="the check run unsandboxed")
    finally:
        down(repo)
    (repo / "bare.txt").unlink()
    # This machine's programs, bubblewrap left out (/bin is /usr/bin here or a subset of it).
    farm = tmp_path / "bin"
    farm.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name != "bwrap":
            (farm / entry.name).symlink_to(entry)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{farm}"}
    write_config(repo, {**config, "sandbox": "bwrap"})
    up(repo, env=env)
    try:
        proc = cocode(repo, "check", job, "a", "--name", "t", timeout=60, env=env)
        assert proc.returncode == 1, proc
        e = events(repo, "check_finished")[1:]
        assert e and e[0]["status"] == "error" and "sandbox: bwrap, but" in e[0]["reason"], e
        assert "bubblewrap" in e[0]["reason"] and not (repo / "bare.txt").exists()
    finally:
        down(repo)
