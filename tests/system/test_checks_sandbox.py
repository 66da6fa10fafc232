"""A check runs the agent's code (a conftest.py, a test file), so a sandboxed run's
checks run in its sandbox (issue 11): a check that tries to write into the main
checkout and into `.cocode/` and to read the other run's workspace reaches none
of them, while a check writing JUnit XML still reports its counts from it. With
`sandbox: off` the same check does escape: what shows the test can fail.
Real services, real bubblewrap, real git.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cocode.jobs import sandbox
from cocode.paths import Paths
from cocode.runkey import RunKey
from support import AGENT_GIT_ENV, GitRepo, agents, down, events, submit, up, wait_until, write_config

# Each agent commits a file naming itself: what the other run's check must not read.
AGENT = 'cd "$COCODE_REPO_PATH"; echo "$COCODE_AGENT_NAME" > mark.txt; git add mark.txt; ' \
        'git commit -q -m mark -m "$COCODE_READY_MARKER"'
XML = "<testsuite tests='7' failures='2' errors='0' skipped='0'/>"


def escape(repo: Path) -> str:
    worktrees = Paths(repo).worktrees
    return (f"echo out > {repo}/escaped-main.txt; echo out > {repo}/.cocode/escaped.txt; "
            f"cat {worktrees}/*/mark.txt > seen.txt; true")


@pytest.mark.parametrize("mode", ["bwrap", "off"])
def test_a_check_is_confined_to_its_run_when_runs_are_sandboxed(calc: GitRepo, mode: str):
    if mode == "bwrap" and (why := sandbox.unavailable()):
        pytest.skip(f"sandbox unavailable: {why}")
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
    if mode == "off":  # nothing holds it back: the test sees an escape when there is one
        assert len(escaped) == 2 and seen == {"a": ["a", "b"], "b": ["a", "b"]}, (escaped, seen)
        return
    assert not escaped, "a sandboxed check wrote outside its run's workspace"
    assert seen == {"a": ["a"], "b": ["b"]}, f"a sandboxed check read another run's workspace: {seen}"
    leftover = Paths(repo).tmp / "checks"
    assert not leftover.exists() or not any(leftover.iterdir()), "a check's scratch HOME was left behind"
