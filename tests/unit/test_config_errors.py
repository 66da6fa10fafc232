"""The config file's errors: every one a single line naming the file, the key and
the fix, with the config exit code."""

import pytest

from cocode.configload import load_config
from cocode.errors import EXIT_CONFIG, ConfigError


F = ".cocode/config.yaml: "
ALL_LIMITS = (
    "max_concurrent_agents, agent_timeout, max_repo_size_mb, log_buffer_size_mb, "
    "log_rotation_size_mb, max_worktrees, tui_log_lines, memory_limit_mb, "
    "memory_pressure_percent, worktree_idle_days, rotated_logs_keep, log_max_buffer_mb, "
    "monitor_interval_ms, worktree_pool, max_issue_kb, check_timeout, github_timeout, git_timeout"
)
from cocode.config import COMMAND_HELP as COMMAND_FIX


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "performance:\n  max_concurrent_agents: 50\n",
            "performance.max_concurrent_agents = 50 is above the maximum 20",
        ),
        (
            "performance:\n  agent_timeout: 5\n",
            "performance.agent_timeout = 5 is below the minimum 60",
        ),
        (
            "performance:\n  agent_timeout: abc\n",
            "performance.agent_timeout = 'abc' is not an integer (allowed 60..3600)",
        ),
        (
            "performance:\n  max_worktrees: true\n",
            "performance.max_worktrees = True is not an integer (allowed 1..50)",
        ),
        (
            "performance:\n  max_worktrees:\n",
            "performance.max_worktrees = None is not an integer (allowed 1..50)",
        ),
        (
            "performance:\n  max_agents: 3\n",
            f"unknown key performance.max_agents (known: {ALL_LIMITS})",
        ),
        (
            "perf: 1\n",
            "unknown key perf (known: profile, performance, profiles, agents, default_agents, "
            "env_passthrough, redact_patterns, prices, setup, copy, max_cost_usd, sandbox, checks, rank_by, notify)",
        ),
        (
            "performance:\n  agent_timeout: 900\n    max: 1\n",
            "YAML syntax error at line 3, column 8: mapping values are not allowed here",
        ),
        ("profile: turbo\n", "profile = 'turbo' is not a profile (choose low, medium, high)"),
        (
            "profile: turbo\nprofiles:\n  ci: {}\n",
            "profile = 'turbo' is not a profile (choose low, medium, high, ci)",
        ),
        ("- a\n- b\n", "top level = ['a', 'b'] is not a mapping"),
        ("performance: 5\n", "performance = 5 is not a mapping"),
        ("agents:\n  x: {env: {}}\n", f"agents.x.command is missing ({COMMAND_FIX})"),
        ("agents:\n  x: {command: []}\n", f"agents.x.command is missing ({COMMAND_FIX})"),
        ("agents:\n  x: {command: [a], format: json}\n",
         "agents.x.format = 'json' is not one of claude-stream-json, codex-json, text"),
        (
            "agents:\n  x: {command: [a], env: {A: 1}}\n",
            "agents.x.env.A = 1 is not a string (quote it)",
        ),
        (
            "agents:\n  x: {command: [a], cmd: b}\n",
            "unknown key agents.x.cmd (known: command, env, timeout, memory_limit_mb, passthrough, description, format, allowed_tools, max_cost_usd, resume)",
        ),
        (
            "agents:\n  x: {command: [a], memory_limit_mb: 32}\n",
            "agents.x.memory_limit_mb = 32 is below the minimum 64",
        ),
        (
            "agents:\n  x: {command: [a]}\ndefault_agents: [x, nope]\n",
            "default_agents[1] = 'nope' is not an agent "
            "(choose x, claude, or define it under agents:)",
        ),
        (
            "profiles:\n  low:\n    agent_timeout: 9999\n",
            "profiles.low.agent_timeout = 9999 is above the maximum 3600",
        ),
        (
            "redact_patterns: ['ok', '(']\n",
            "redact_patterns[1] = '(' is not a valid regex "
            "(missing ), unterminated subpattern at position 0)",
        ),
        ("env_passthrough: HOME\n", "env_passthrough = 'HOME' is not a list"),
        (
            "agents:\n  x: {command: [a]}\n  x: {command: [b]}\n",
            "duplicate key 'x' at line 3, column 3: give each key once",
        ),
        ("sandbox: always\n", "sandbox = 'always' does not match ^(auto|bwrap|off)$"),
        ("profile: low\nprofile: high\n", "duplicate key 'profile' at line 2, column 1: give each key once"),
        *[
            (f"agents:\n  {name!r}: {{command: [a]}}\n", f"agents.{name!r} is not a usable agent name ({why})")
            for name, why in [
                ("../../x", "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("a/b", "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("..", "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("a" * 300, "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("x.lock", "no '..', and no '.' or '.lock' at the end: "
                           "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("a..b", "no '..', and no '.' or '.lock' at the end: "
                         "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("-x", "use letters, digits, '.', '_' and '-', at most 64 characters"),
                ("x y", "use letters, digits, '.', '_' and '-', at most 64 characters"),
            ]
        ],
    ],
)
def test_error_messages(config_file, text, message):
    path = config_file(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, builtin_agents=["claude"])
    assert caught.value.message == F + message
    assert caught.value.exit_code == EXIT_CONFIG


def test_default_agents_without_any_agents(config_file):
    with pytest.raises(ConfigError) as caught:
        load_config(config_file("default_agents: [nope]\n"))
    expected = "default_agents[0] = 'nope' is not an agent (define it under agents:)"
    assert caught.value.message == F + expected


def test_unknown_command_line_profile():
    with pytest.raises(ConfigError) as caught:
        load_config(None, profile_override="turbo")
    expected = "--performance-profile = 'turbo' is not a profile (choose low, medium, high)"
    assert caught.value.message == expected


def test_unreadable_bytes_are_one_line(config_file):
    path = config_file("")
    path.write_bytes(b"profile: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(F + "not UTF-8 text")
    assert "\n" not in caught.value.message
