"""`cocode demo`: the whole job end to end on built-in parts, no network, no keys.

It makes a small sample repository with an issue, starts cocode there, submits
the issue to three built-in demo agents (one fixes the bug, one fails with a
reason, one is slower and gets ready without fixing it), streams their output,
runs the repository's real test suite on each ready run (a configured check),
prints the ranked comparison and the one `pick` command that lands the best
run, and stops everything, whatever happens.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cocode import updown
from cocode.configload import load_config
from cocode.configfile import init_config
from cocode.gitops.runner import init_repo
from cocode.paths import Paths

DEMO_AGENTS = ["demo", "demo-fail", "demo-slow"]

ISSUE = """greet() says "Helo" instead of "Hello"

Calling `greet("Ada")` returns `Helo, Ada!`. It should return `Hello, Ada!`.
The test in tests/test_greet.py shows the expected behaviour.
"""

FILES = {
    "README.md": "# greeter\n\nA tiny sample project for `cocode demo`.\n",
    "greet.py": 'def greet(name: str) -> str:\n    return f"Helo, {name}!"\n',
    "tests/__init__.py": "",
    "tests/test_greet.py": (
        "import unittest\n\nfrom greet import greet\n\n\nclass GreetTest(unittest.TestCase):\n"
        "    def test_greet(self):\n"
        '        self.assertEqual(greet("Ada"), "Hello, Ada!")\n\n'
        "    def test_other_name(self):\n"
        '        self.assertEqual(greet("Grace"), "Hello, Grace!")\n\n'
        "    def test_returns_text(self):\n"
        '        self.assertIsInstance(greet("x"), str)\n'
    ),
    "ISSUE.md": ISSUE,
}


def make_sample_repo(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / ".git").exists():
        return directory
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    init_repo(directory, "greeter: first version", name="cocode-demo", email="demo@cocode.invalid")
    # The test suite as a check, run on every ready run (written after the commit:
    # .cocode/ is this clone's, never the project's).
    init_config(directory)
    config = Paths(directory).config
    config.write_text(config.read_text().replace(
        "checks: {}", f"checks:\n  tests: {sys.executable} -m unittest discover -s tests -t ."))
    return directory


def default_directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="cocode-demo-"))


def run(directory: Path, echo, submit_and_watch) -> int:
    """Start, submit, watch, stop. `submit_and_watch(paths, config)` returns the job
    view and the recommended agent (it prints the comparison while cocode runs)."""
    repo = make_sample_repo(directory)
    paths = Paths(repo)
    echo(f"demo repository: {repo}")
    config = load_config(paths.config, builtin_agents=DEMO_AGENTS)
    elapsed = updown.start_detached(paths)
    echo(f"cocode up: all services ready in {elapsed * 1000:.0f} ms")
    try:
        job, best = submit_and_watch(paths, config)
    finally:
        updown.stop(paths)
        echo("cocode down: stopped")
    if best:
        echo(f"land it on main: cd {repo} && cocode up -d && cocode pick {job.job} {best} --merge --yes")
    return 0 if best else 1
