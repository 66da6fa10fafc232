"""What the review tests (tests/system/test_review.py, test_checks.py) share: a
repository with a real unittest suite and a bug, agent scripts that fix it or do
not, the config naming them, and one-line CLI helpers that fail with the output.
"""

from __future__ import annotations

import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

from support import agents as agent_args
from support import cocode, down, status, up, wait_until
from support import submit as submit_job
from support import write_config as write_config_file

CALC = "def add(a, b):\n    return a + b + 1\n"
CALC_TESTS = textwrap.dedent("""\
    import unittest
    from calc import add


    class AddTest(unittest.TestCase):
        def test_small(self):
            self.assertEqual(add(2, 2), 4)

        def test_zero(self):
            self.assertEqual(add(0, 0), 0)

        def test_negative(self):
            self.assertEqual(add(-1, 1), 0)
""")
AGENT = textwrap.dedent("""\
    #!/usr/bin/env bash
    # {what}, then commits with the ready marker.
    set -euo pipefail
    cd "$COCODE_REPO_PATH"
    {edit}
    git add -A
    git commit -q -m "{what}" -m "$COCODE_READY_MARKER"
""")
AGENTS = {
    "good": ("fix add()", "printf 'def add(a, b):\\n    return a + b\\n' > calc.py"),
    "bad": ("add notes instead", "echo 'add() is off by one' > NOTES.md; echo more >> NOTES.md"),
}
UNITTEST = f"{sys.executable} -m unittest -q test_calc"


def write_config(repo: Path, tmp: Path, checks: dict, performance: dict | None = None) -> None:
    agents = {}
    for name, (what, edit) in AGENTS.items():
        script = tmp / f"{name}.sh"
        script.write_text(AGENT.format(what=what, edit=edit))
        agents[name] = {"command": ["bash", str(script)], "env": {
            "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "a@cocode.invalid",
            "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "a@cocode.invalid"}}
    # sandbox off: the agents run scripts from the test's temp dir, which the sandbox hides
    # (tests/system/test_hostile.py and test_real_agents.py run agents sandboxed).
    write_config_file(repo, {"agents": agents, "checks": checks, "performance": performance or {}, "sandbox": "off"})
    # .cocode/ is this clone's business, not the project's: keep the checkout clean.
    (repo / ".git" / "info" / "exclude").write_text(".cocode/\n")


def ok(repo: Path, *args: str, timeout: float = 60) -> str:
    return cocode(repo, *args, timeout=timeout, check=True).stdout


FIX_ISSUE = "Fix add()\n\nadd(2, 2) returns 5."


def submit(repo: Path, *names: str, extra: tuple[str, ...] = ()) -> str:
    """The calc bug (or the issue `extra` names, e.g. ("--issue", "7")) to these agents; the job id."""
    return submit_job(repo, *extra, *agent_args(*names), text=FIX_ISSUE)


def checks_done(repo: Path, job: str, agents: tuple[str, ...], name: str = "tests"):
    def done():
        runs = {r["agent"]: r for r in status(repo, job)["runs"]}
        cs = [runs[a]["checks"].get(name) for a in agents]
        return all(c and c["status"] != "running" for c in cs) and runs
    return done


@contextmanager
def good_and_bad_checked(repo: Path, tmp: Path):
    """cocode up with the calc `tests` check, the bug given to good and bad, both runs'
    check finished: (job, runs by agent from `status --json`); cocode down after."""
    write_config(repo, tmp, {"tests": UNITTEST})
    up(repo)
    try:
        job = submit(repo, "good", "bad")
        runs = wait_until(checks_done(repo, job, ("good", "bad")), 60, what="both runs' tests check finished")
        yield job, runs
    finally:
        down(repo)
