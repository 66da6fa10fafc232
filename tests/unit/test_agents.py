"""cocode.jobs.agents (protocol, presets, env, prompt) and real agent processes in real worktrees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocode import gitops
from cocode.jobs import agents
from cocode.jobs.agents import READY_MARKER
from support import AGENTS_DIR, IDENTITY, GitRepo



# ---------------------------------------------------------------- exit reasons


@pytest.mark.parametrize("code, signaled, reason", [
    (0, None, "no_ready_marker"),
    (1, None, "exit_1"),
    (2, None, "bad_config"),
    (3, None, "missing_dependency"),
    (124, None, "timeout_exceeded"),
    (130, None, "interrupted"),
    (42, None, "exit_42"),
    (None, 9, "signal_9"),
    (-15, None, "signal_15"),
    (1, 15, "signal_15"),
    (None, None, "exit_unknown"),
])
def test_reason_for_exit(code, signaled, reason):
    assert agents.reason_for_exit(code, signaled) == reason


# --------------------------------------------------------------------- presets


def test_presets_cover_the_builtin_agents():
    assert {"claude", "codex", "demo", "demo-fail", "demo-slow"} <= set(agents.PRESETS)
    claude = agents.PRESETS["claude"].command
    assert claude[:3] == ["claude", "-p", "{prompt}"]
    assert "ANTHROPIC_API_KEY" in agents.PRESETS["claude"].passthrough
    codex = agents.PRESETS["codex"].command
    assert codex[:2] == ["codex", "exec"] and codex[-1] == "{prompt}"
    assert agents.PRESETS["demo-fail"].command[-2:] == ["--mode", "fail"]


def test_merge_agents_overrides_presets_by_name():
    from cocode.config import AgentSpec

    table = agents.merge_agents({
        "demo": AgentSpec(command=["my-demo", "{prompt}"]),
        "mine": AgentSpec(command=["./agent.sh"], passthrough=["MY_TOKEN"]),
    })
    assert table["demo"].command == ["my-demo", "{prompt}"]
    assert table["mine"].passthrough == ["MY_TOKEN"]
    assert table["codex"] is agents.PRESETS["codex"]
    assert "mine" not in agents.PRESETS, "the built-in table is never mutated"


# ---------------------------------------------------------------- command line


def test_render_command_fills_placeholders_as_single_arguments():
    prompt = 'Fix "the bug"\nin $HOME; rm -rf /'
    cmd = agents.render_command(
        ["{python}", "-c", "echo ${HOME} {}", "--p={prompt}", "{git_common_dir}", "{unknown}"],
        prompt, {"git_common_dir": "/repo/.git"},
    )
    assert cmd == [sys.executable, "-c", "echo ${HOME} {}", f"--p={prompt}", "/repo/.git", "{unknown}"]


def test_render_command_leaves_the_preset_table_untouched():
    before = list(agents.PRESETS["claude"].command)
    rendered = agents.render_command(agents.PRESETS["claude"].command, "do it")
    assert rendered[2] == "do it"
    assert agents.PRESETS["claude"].command == before


def test_missing_binary(tmp_path):
    assert agents.missing_binary(["sh", "-c", "true"], os.environ.get("PATH")) is None
    assert agents.missing_binary([sys.executable, "-V"], None) is None
    assert agents.missing_binary(["no-such-agent-binary"], os.environ.get("PATH")) == "no-such-agent-binary"
    assert agents.missing_binary(["sh"], str(tmp_path)) == "sh"
    assert agents.missing_binary([], None)


# ---------------------------------------------------------------------- prompt


def test_build_prompt_carries_issue_and_marker_rule():
    prompt = agents.build_prompt("Crash on empty input", "Steps:\n1. run with ''\n", READY_MARKER)
    assert "Crash on empty input" in prompt
    assert "1. run with ''" in prompt
    assert f'git commit -m "fix: <what you changed>" -m "{READY_MARKER}"' in prompt
    assert "commit message" in prompt and "into a file does nothing" in prompt


def test_build_prompt_clips_huge_issue_to_fit_one_argv_string():
    prompt = agents.build_prompt("Big", "é" * 200_000, READY_MARKER)
    assert len(prompt.encode()) < 128 * 1024  # Linux MAX_ARG_STRLEN
    assert "$COCODE_ISSUE_BODY_FILE" in prompt
    assert READY_MARKER in prompt


# ------------------------------------------------------------------ environment


def _env(**overrides):
    args = dict(
        worktree="/w/job1-demo", job_id="job1", agent_name="demo", issue_number=7,
        issue_url="https://github.com/o/r/issues/7", issue_body_file="/tmp/issue-7.md",
        agent_env={}, passthrough=[],
        parent_env={
            "PATH": "/usr/bin:/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_CTYPE": "C.UTF-8",
            "GIT_AUTHOR_NAME": "U", "ANTHROPIC_API_KEY": "sk-secret", "AWS_SECRET_ACCESS_KEY": "aws",
            "AWS_REGION": "eu", "SSH_AUTH_SOCK": "/tmp/agent", "LD_PRELOAD": "/evil.so",
        },
    )
    args.update(overrides)
    return agents.build_env(**args)


def test_build_env_is_an_allowlist():
    env = _env()
    assert env["PATH"] == "/usr/bin:/bin" and env["HOME"] == "/home/u"
    assert env["LC_CTYPE"] == "C.UTF-8" and env["GIT_AUTHOR_NAME"] == "U"
    for secret in ("ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "LD_PRELOAD"):
        assert secret not in env


def test_build_env_protocol_variables():
    env = _env()
    assert env["COCODE_REPO_PATH"] == "/w/job1-demo"
    assert env["COCODE_ISSUE_NUMBER"] == "7"
    assert env["COCODE_ISSUE_URL"] == "https://github.com/o/r/issues/7"
    assert env["COCODE_ISSUE_BODY_FILE"] == "/tmp/issue-7.md"
    assert env["COCODE_READY_MARKER"] == "cocode ready for check"
    assert env["COCODE_JOB_ID"] == "job1" and env["COCODE_AGENT_NAME"] == "demo"


def test_build_env_passthrough_and_agent_env():
    env = _env(
        passthrough=["ANTHROPIC_API_KEY", "AWS_*", "NOT_SET"],
        agent_env={"MODEL": "opus", "HOME": "/agent-home", "COCODE_READY_MARKER": "spoof"},
    )
    assert env["ANTHROPIC_API_KEY"] == "sk-secret"
    assert env["AWS_REGION"] == "eu" and env["AWS_SECRET_ACCESS_KEY"] == "aws"
    assert "NOT_SET" not in env
    assert env["MODEL"] == "opus" and env["HOME"] == "/agent-home"
    assert env["COCODE_READY_MARKER"] == READY_MARKER, "the protocol's variables cannot be overridden"


def test_build_env_without_parent_path_still_has_one():
    assert _env(parent_env={})["PATH"] == os.defpath


# ------------------------------------------------------- real agents, real repos


@pytest.fixture
def run_setup(gitrepo: GitRepo, tmp_path: Path):
    """A worktree for one run, the issue file, and a helper that runs a command there
    the way a worker would: rendered command, built env, cwd = worktree."""
    base = gitrepo.head()
    wt = tmp_path / "worktrees" / "job1-agent"
    gitops.create_worktree(gitrepo.path, wt, "cocode/job1/agent", base)
    issue = tmp_path / "issue-7.md"
    issue.write_text("Crash on empty input\n\nIt crashes.\n")
    home = tmp_path / "home"  # no ~/.gitconfig: agents must cope without a git identity
    home.mkdir()
    started: list[subprocess.Popen] = []

    def start(cmd: list[str], parent_extra: dict[str, str] | None = None) -> subprocess.Popen:
        parent = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **(parent_extra or {})}
        env = agents.build_env(
            worktree=wt, job_id="job1", agent_name="agent", issue_number=7,
            issue_url="https://github.com/o/r/issues/7", issue_body_file=issue,
            agent_env={"GIT_CONFIG_NOSYSTEM": "1"}, passthrough=[], parent_env=parent,
        )
        rendered = agents.render_command(cmd, agents.build_prompt("Crash", issue.read_text()))
        assert agents.missing_binary(rendered, env["PATH"]) is None
        proc = subprocess.Popen(rendered, cwd=wt, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    def run(cmd: list[str], parent_extra: dict[str, str] | None = None, timeout: float = 10):
        proc = start(cmd, parent_extra)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    yield {"base": base, "wt": wt, "repo": gitrepo, "run": run, "start": start}
    for proc in started:  # a test that failed half way still reaps its agent
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _head(s) -> str:
    return s["repo"].git("rev-parse", "cocode/job1/agent")


def test_demo_agent_ready_commits_marker_quickly(run_setup):
    s = run_setup
    start = time.monotonic()
    code, out, err = s["run"](agents.PRESETS["demo"].command)
    elapsed = time.monotonic() - start
    assert code == 0, err
    assert elapsed < 2.0, f"demo took {elapsed:.2f}s"  # ~0.2 s here; 2 s leaves room for a loaded CI
    assert "working on issue #7" in out and "issue says: Crash on empty input" in out
    assert "stderr" in err
    head = _head(s)
    assert gitops.count_commits(s["repo"].path, s["base"], head) == 2
    ready = gitops.find_ready_commit(s["repo"].path, s["base"], head, READY_MARKER)
    assert ready == head, "the first commit is progress, the second carries the marker"
    message = s["repo"].git("log", "-1", "--format=%B", ready)
    assert message.splitlines()[0] == "demo: resolve issue #7" and READY_MARKER in message.splitlines()[1:]
    assert s["repo"].git("log", "-1", "--format=%an <%ae>", ready) == "cocode-demo <demo@cocode.invalid>"
    assert "COCODE_DEMO.md" in gitops.diff_text(s["repo"].path, s["base"], head)


def test_demo_agent_fail_exits_1_with_reason_and_no_marker(run_setup):
    s = run_setup
    code, out, err = s["run"](agents.PRESETS["demo-fail"].command)
    assert code == 1
    assert "demo-fail: cannot reproduce the bug: tests/test_x.py missing" in err
    assert _head(s) == s["base"], "no commits"
    assert gitops.find_ready_commit(s["repo"].path, s["base"], _head(s), READY_MARKER) is None
    assert agents.reason_for_exit(code, None) == "exit_1"


def test_demo_agent_slow_streams_progress_then_commits(run_setup):
    s = run_setup
    proc = s["start"]([*agents.PRESETS["demo-slow"].command, "--seconds", "0.4"])
    first = proc.stdout.readline()
    assert "working on issue #7" in first, "output arrives line by line, not at exit"
    # Keep reading through the same buffered stream; communicate() would skip what
    # readline() already buffered.
    out = first + proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=10) == 0, err
    assert out.count("demo: thinking") == 8
    assert gitops.find_ready_commit(s["repo"].path, s["base"], _head(s), READY_MARKER) == _head(s)


def test_demo_agent_interrupted_exits_130(run_setup):
    s = run_setup
    proc = s["start"]([*agents.PRESETS["demo-slow"].command, "--seconds", "20"])
    assert "working on issue" in proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)  # bounded, with room for a loaded machine
    assert agents.reason_for_exit(proc.returncode, None) == "interrupted"


def test_adr003_example_agent_is_ready(run_setup):
    s = run_setup
    code, out, err = s["run"](["bash", str(AGENTS_DIR / "adr003_example.sh")], parent_extra=IDENTITY)
    assert code == 0, err
    assert "[INFO] Complete" in out
    head = _head(s)
    assert gitops.find_ready_commit(s["repo"].path, s["base"], head, READY_MARKER) == head
    assert (s["wt"] / "fix.js").read_text() == "// Fix for issue #7\n"


def test_marker_in_file_is_not_ready(run_setup):
    s = run_setup
    code, out, err = s["run"](["bash", str(AGENTS_DIR / "marker_in_file.sh")], parent_extra=IDENTITY)
    assert code == 0, err
    head = _head(s)
    assert head != s["base"], "it did commit"
    assert READY_MARKER in s["repo"].git("show", f"{head}:STATUS.txt")
    assert gitops.find_ready_commit(s["repo"].path, s["base"], head, READY_MARKER) is None
    assert agents.reason_for_exit(code, None) == "no_ready_marker"


def test_preset_entry_without_command_changes_only_its_keys(tmp_path):
    from cocode.configload import load_config

    path = tmp_path / "config.yaml"
    path.write_text("agents:\n  claude:\n    allowed_tools: [Read, 'Bash(make test:*)']\n    timeout: 120\n")
    merged = agents.merge_agents(load_config(path, builtin_agents=agents.PRESETS).agents)
    claude = merged["claude"]
    assert claude.command == agents.PRESETS["claude"].command and claude.format == "claude-stream-json"
    assert (claude.allowed_tools, claude.timeout) == (["Read", "Bash(make test:*)"], 120)
    rendered = agents.render_command(claude.command, "p", {"allowed_tools": ",".join(claude.allowed_tools)})
    assert rendered[rendered.index("--allowedTools") + 1] == "Read,Bash(make test:*)"


def test_default_claude_tools_run_tests_and_commit():
    tools = agents.PRESETS["claude"].allowed_tools
    assert {"Edit", "Bash(git:*)", "Bash(python -m pytest:*)", "Bash(npm test:*)"} <= set(tools)


def test_init_examples_work_as_written(tmp_path):
    """Every commented agent example in the default file loads and gets the prompt."""
    from cocode.configload import load_config
    from cocode.configfile import default_config_text

    text = default_config_text()
    block = text[text.index("\nagents:\n") + 1:text.index("\n# Agents started when none")]
    # "#   key: ..." is an example to uncomment; "# words" is prose.
    uncommented = "\n".join(line[1:] if line.startswith("#  ") else line for line in block.splitlines()
                            if not (line.startswith("# ") and not line.startswith("#  ")))
    path = tmp_path / "config.yaml"
    path.write_text(uncommented + "\n")
    specs = agents.merge_agents(load_config(path, builtin_agents=agents.PRESETS).agents)
    assert {"claude", "my-claude"} <= set(specs)
    for name in ("claude", "my-claude"):
        rendered = agents.render_command(specs[name].command, "THE ISSUE",
                                         {"allowed_tools": ",".join(specs[name].allowed_tools)})
        assert "THE ISSUE" in rendered, (name, rendered)


def test_workspace_git_dir_of_a_worktree_and_a_clone(tmp_path):
    from support import GitRepo

    repo = GitRepo.init(tmp_path / "r")
    repo.git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "b1")
    assert agents.workspace_git_dir(tmp_path / "wt") == str(tmp_path / "r" / ".git" / "worktrees" / "wt")
    assert agents.workspace_git_dir(tmp_path / "r") == str(tmp_path / "r" / ".git")


def test_best_of_names():
    assert agents.expand_best_of("claude:3") == ["claude-1", "claude-2", "claude-3"]
    assert agents.expand_best_of("claude") == ["claude"]
    for bad in ("claude:0", "claude:11", "claude:x", ":2"):
        with pytest.raises(ValueError, match="NAME:N"):
            agents.expand_best_of(bad)
    table = agents.merge_agents(None)
    assert agents.base_name("claude-2", table) == "claude"
    assert agents.base_name("demo-fail", table) == "demo-fail"  # a name of its own wins
    assert agents.base_name("nobody-2", table) == "nobody-2"
