"""A run's identity and every name built from it: the formats other tests and
existing repositories rely on, and the parsers that read them back."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocode.core import wire
from cocode.logs.files import RunFiles
from cocode.paths import Paths
from cocode.runkey import RunKey


def test_every_name_of_a_run():
    run = RunKey("1a", "claude")
    assert run.key == str(run) == "1a/claude"
    assert run.branch == "cocode/1a/claude"
    assert run.topic == wire.log_topic("1a", "claude") == b"log.1a.claude"
    assert run.worktree(Paths(Path("/r"))) == Path("/r/.cocode/worktrees/1a-claude")
    assert run.issue_file(Path("/t")) == Path("/t/1a-claude-issue.md")
    assert RunKey.job_topic("1a") == b"log.1a." and run.topic.startswith(RunKey.job_topic("1a"))


def test_log_files_escape_what_could_leave_the_directory():
    run = RunKey("1a", "../a/b")
    assert run.file_stem == "1a-..%2Fa%2Fb" and "/" not in run.file_stem
    assert RunFiles(Path("/logs"), *run).live == Path("/logs/1a-..%2Fa%2Fb.log")


def test_parsed_back_and_equal_to_the_plain_tuple():
    run = RunKey("1a", "x/y")
    assert RunKey.parse(run.key) == run == ("1a", "x/y") and hash(run) == hash(("1a", "x/y"))
    assert RunKey.from_branch(run.branch) == run
    assert RunKey.from_branch("refs/heads/cocode/1a/claude") == ("1a", "claude")
    assert RunKey.from_branch("main") is None and RunKey.from_branch("cocode/") is None
    for bad in ("nojob", "/agent", ""):
        with pytest.raises(ValueError):
            RunKey.parse(bad)
