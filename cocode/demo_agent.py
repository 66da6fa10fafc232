"""A demo agent that follows the agent protocol, for trying cocode without an AI CLI.

`python -m cocode.demo_agent [--mode ready|fail|slow]` reads the COCODE_*
variables, prints progress (stdout, plus one stderr line), and:

- ready: edits a file in the worktree, commits once without and once with the
  ready marker (in the message body), exits 0 — well under a second; in the
  demo repository it also fixes the bug (greet.py), so its tests pass;
- fail: gives a reason and exits 1 without any commit;
- slow: prints progress for ~4 s (`--seconds`), commits midway, then commits ready
  (without fixing the bug: its tests fail, so `cocode compare` ranks it lower).

It commits with its own identity and without hooks or signing, so it works on a
machine with no git identity and in repositories with strict hooks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cocode import envnames
from cocode.errors import CocodeError
from cocode.gitops import runner
from cocode.jobs.agents import READY_MARKER

DEMO_FILE = "COCODE_DEMO.md"
FAIL_REASON = "demo-fail: cannot reproduce the bug: tests/test_x.py missing"

_IDENTITY = ("user.name=cocode-demo", "user.email=demo@cocode.invalid", "commit.gpgsign=false")


def say(line: str) -> None:
    # Flushed per line: a pipe would otherwise hold the output until exit.
    print(line, flush=True)


def git(repo: Path, *args: str) -> str:
    try:
        out = runner.git(repo, *args, config=_IDENTITY)
    except CocodeError as err:
        sys.stderr.write(f"demo: {err.message}\n")
        raise SystemExit(1) from None
    return os.fsdecode(out).strip()


def read_issue(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def edit(repo: Path, agent: str, issue: str, step: str) -> None:
    with open(repo / DEMO_FILE, "a") as f:
        f.write(f"- {agent}: {step} for issue #{issue}\n")


def fix_greeting(repo: Path) -> None:
    """The demo issue's fix, where the demo repository's greet.py has the bug."""
    path = repo / "greet.py"
    if path.exists() and "Helo," in path.read_text():
        path.write_text(path.read_text().replace("Helo,", "Hello,"))
        git(repo, "add", "greet.py")


def commit(repo: Path, *messages: str) -> str:
    git(repo, "add", DEMO_FILE)
    args = [a for m in messages for a in ("-m", m)]
    git(repo, "commit", "--quiet", "--no-verify", *args)
    return git(repo, "rev-parse", "--short", "HEAD")


def run(mode: str, seconds: float) -> int:
    repo = Path(os.environ.get(envnames.REPO_PATH) or os.getcwd())
    issue = os.environ.get(envnames.ISSUE_NUMBER) or "?"
    agent = os.environ.get(envnames.AGENT_NAME) or "demo"
    marker = os.environ.get(envnames.READY_MARKER) or READY_MARKER
    body = read_issue(os.environ.get(envnames.ISSUE_BODY_FILE))
    title = body.strip().splitlines()[0] if body.strip() else "(empty issue)"

    say(f"demo: {agent} working on issue #{issue} in {repo}")
    say(f"demo: issue says: {title[:80]}")
    sys.stderr.write("demo: (stderr) this line goes to stderr\n")
    sys.stderr.flush()

    if mode == "fail":
        say("demo: looking for the failing test")
        sys.stderr.write(FAIL_REASON + "\n")
        say(FAIL_REASON)
        return 1

    steps = 8 if mode == "slow" else 1
    for i in range(steps):
        if mode == "slow":
            say(f"demo: thinking ({i + 1}/{steps})")
            time.sleep(seconds / steps)
        if i == steps // 2:
            edit(repo, agent, issue, "first attempt")
            say(f"demo: committed progress {commit(repo, f'demo: work in progress on #{issue}')}")
    edit(repo, agent, issue, "done")
    if mode == "ready":
        fix_greeting(repo)
    sha = commit(repo, f"demo: resolve issue #{issue}", marker)
    say(f"demo: committed {sha} with the ready marker")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cocode.demo_agent", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("ready", "fail", "slow"), default="ready")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long slow mode takes")
    args = parser.parse_args(argv)
    try:
        return run(args.mode, args.seconds)
    except KeyboardInterrupt:
        # ADR-003: 130 means interrupted.
        return 130


if __name__ == "__main__":
    sys.exit(main())
