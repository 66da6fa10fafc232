"""jobs/setup.py's commands through the run's sandbox (real bubblewrap): its own
process group and timeout still hold, and whatever a command left running ends with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from cocode.jobs import sandbox, setup

pytestmark = pytest.mark.skipif(sandbox.unavailable() is not None, reason="bubblewrap cannot confine runs here")


def confine(tmp: Path):
    root = tmp / "repo"
    workspace = root / ".cocode" / "worktrees" / "j-a"
    workspace.mkdir(parents=True)
    (root / ".git").mkdir()
    issue = tmp / "issue.md"
    issue.write_text("# t\n")
    home = tmp / "home"
    home.mkdir()

    def wrap(argv: list[str]) -> list[str]:
        return sandbox.wrap(argv, root=root, worktree=workspace, git_common=root / ".git", job="j",
                            issue_file=issue, home=None, run_home=home, env=dict(os.environ))
    return workspace, home, wrap


def sleeps(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def test_a_sandboxed_setup_command_times_out_and_leaves_nothing_running(tmp_path):
    workspace, home, wrap = confine(tmp_path)
    marker = f"77.{os.getpid()}"
    t0 = time.monotonic()
    with pytest.raises(setup.SetupFailed, match="timed out"):
        setup.run_commands([f"sleep {marker} & echo started; sleep {marker}"], workspace, dict(os.environ), 1.0, wrap)
    assert time.monotonic() - t0 < 10
    assert sleeps(marker) == [], "a setup command's child outlived its timeout"


def test_a_sandboxed_setup_command_writes_its_workspace_and_home_only(tmp_path):
    workspace, home, wrap = confine(tmp_path)
    outside = tmp_path / "repo" / "outside.txt"
    out, _ = setup.run_commands([f"echo in > made.txt; echo h > $HOME/h.txt; echo out > {outside}; true"],
                                workspace, dict(os.environ), 30.0, wrap)
    assert (workspace / "made.txt").read_text() == "in\n" and (home / "h.txt").read_text() == "h\n"
    assert not outside.exists(), out
