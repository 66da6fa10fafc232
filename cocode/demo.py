"""`cocode demo`: the whole job end to end on built-in parts, no network, no keys.

It makes a small sample repository with an issue, starts cocode there, submits
the issue to three built-in demo agents (one gets ready, one fails with a
reason, one is slower), streams their output, prints the final table and stops
everything, whatever happens.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cocode import supervisor
from cocode.config import load_config
from cocode.gitops.runner import init_repo
from cocode.paths import Paths
from cocode.runkey import RunKey

DEMO_AGENTS = ["demo", "demo-fail", "demo-slow"]

ISSUE = """greet() says "Helo" instead of "Hello"

Calling `greet("Ada")` returns `Helo, Ada!`. It should return `Hello, Ada!`.
The test in tests/test_greet.py shows the expected behaviour.
"""

FILES = {
    "README.md": "# greeter\n\nA tiny sample project for `cocode demo`.\n",
    "greet.py": 'def greet(name: str) -> str:\n    return f"Helo, {name}!"\n',
    "tests/test_greet.py": (
        "from greet import greet\n\n\ndef test_greet():\n"
        '    assert greet("Ada") == "Hello, Ada!"\n'
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
    return directory


def default_directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="cocode-demo-"))


def run(directory: Path, echo, submit_and_watch) -> int:
    """Start, submit, watch, stop. `submit_and_watch(paths, config)` returns the job view."""
    repo = make_sample_repo(directory)
    paths = Paths(repo)
    echo(f"demo repository: {repo}")
    config = load_config(paths.config, builtin_agents=DEMO_AGENTS)
    elapsed = supervisor.start_detached(paths)
    echo(f"cocode up: all services ready in {elapsed * 1000:.0f} ms")
    try:
        job = submit_and_watch(paths, config)
    finally:
        supervisor.stop(paths)
        echo("cocode down: stopped")
    ready = [r.agent for r in job.runs.values() if r.state == "ready"]
    if ready:
        echo(f"pick a result: cd {repo} && git diff main {RunKey(job.job, ready[0]).branch}")
    return 0 if ready else 1
