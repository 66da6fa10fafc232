"""Bad input to the real CLI, with no service started: one line on stderr naming the
fix, the ADR-003 exit code, no traceback, and nothing left running or written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cocode.paths import Paths
from support import ISSUE, cocode, cocode_processes, ipc_files, kill_all, make_repo, one_line_error, status


def test_agent_with_a_missing_binary_is_refused_at_submit(jobs_repo):
    repo = jobs_repo
    config = repo / ".cocode" / "config.yaml"
    cfg = json.loads(config.read_text())
    cfg["agents"]["ghost"] = {"command": ["no-such-binary-4242", "--go"]}
    config.write_text(json.dumps(cfg))
    line = one_line_error(cocode(repo, "submit", "--text", ISSUE, "--agent", "ghost", timeout=30))
    assert "no-such-binary-4242" in line


def test_submit_when_not_running_says_cocode_up(jobs_repo):
    repo = jobs_repo
    line = one_line_error(cocode(repo, "submit", "--text", ISSUE, "--agent", "adr003", timeout=30))
    assert "cocode up" in line
    assert status(repo) == []
    assert not cocode_processes(repo)


def test_not_a_git_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    line = one_line_error(cocode(plain, "submit", "--text", ISSUE, "--agent", "demo", timeout=30))
    assert "git" in line and str(plain.resolve()) in line
    assert not (plain / ".cocode").exists()


def test_bad_config_exits_2_with_one_line_and_starts_nothing(repo):
    paths = Paths(repo)
    paths.home.mkdir()
    paths.config.write_text("performance:\n  max_concurrent_agents: 50\n")
    try:
        for args in (("up", "--detach"), ("up",)):
            proc = cocode(repo, *args, timeout=20)
            assert proc.returncode == 2, (proc.returncode, proc.stderr)
            line = one_line_error(proc)
            assert "performance.max_concurrent_agents = 50 is above the maximum 20" in line
            assert "config.yaml" in line
            assert not cocode_processes(repo)
            assert ipc_files(paths) == []
            assert not paths.db.exists()
    finally:
        kill_all(repo)


def test_outside_a_git_repository_exits_2_with_one_line(tmp_path):
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    probe = subprocess.run(["git", "-C", str(plain), "rev-parse"], capture_output=True)
    assert probe.returncode != 0, "precondition: the temp dir is outside any git repository"
    for args in (("ps",), ("events", "--json"), ("up", "--detach"), ("down",)):
        proc = cocode(plain, *args, timeout=20)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert "git" in one_line_error(proc)
    # The same without -C, from inside the directory.
    proc = subprocess.run([sys.executable, "-m", "cocode", "ps"], cwd=plain,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and str(plain) in one_line_error(proc)
    assert not (plain / ".cocode").exists()


@pytest.mark.parametrize("text, key", [
    ("performance:\n  memory_limit_mb: 10\n", "performance.memory_limit_mb = 10 is below the minimum 64"),
    ("performance:\n  memory_limit_mb: 70000\n", "performance.memory_limit_mb = 70000 is above the maximum 65536"),
    ("agents:\n  x: {command: [a], memory_limit_mb: 32}\n", "agents.x.memory_limit_mb = 32 is below the minimum 64"),
    ("performance:\n  monitor_interval_ms: 5\n", "performance.monitor_interval_ms = 5 is below the minimum 100"),
])
def test_memory_limit_out_of_range_exits_2_with_one_line(tmp_path, text, key):
    repo = make_repo(tmp_path / "repo")
    (repo / ".cocode").mkdir()
    (repo / ".cocode" / "config.yaml").write_text(text)
    proc = cocode(repo, "up", "--detach", timeout=30)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and key in lines[0], proc.stderr
    assert not cocode_processes(repo)


