"""The config file: defaults, the default file, resolution order (defaults, profile,
performance, command line), and what each section decodes to. Its errors' wording:
test_config_errors.py; `init_config`: test_config_init.py."""

import re

import msgspec
import pytest

from cocode.config import AgentSpec, Limits, limit_bounds
from cocode.configfile import default_config_text
from cocode.configload import load_config
from cocode.errors import ConfigError


def test_no_file_gives_the_adr_defaults(tmp_path):
    expected = Limits(
        max_concurrent_agents=5,
        agent_timeout=900,
        max_repo_size_mb=5000,
        log_buffer_size_mb=10,
        log_rotation_size_mb=50,
        max_worktrees=10,
        tui_log_lines=2000,
        memory_limit_mb=2048,
        memory_pressure_percent=80,
        worktree_idle_days=7,
        rotated_logs_keep=3,
        log_max_buffer_mb=50,
    )
    for path in (None, tmp_path / "missing.yaml"):
        config = load_config(path)
        assert config.limits == expected
        assert config.profile == "medium"
        assert (config.agents, config.default_agents) == ({}, [])
        assert (config.env_passthrough, config.redact_patterns) == ([], [])
        assert config.path is None


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n"])
def test_empty_file_gives_defaults(config_file, text):
    config = load_config(config_file(text))
    assert config.limits == Limits()
    assert config.path == ".cocode/config.yaml"


def test_default_text_loads_as_the_defaults(config_file):
    path = config_file(default_config_text())
    config = load_config(path)
    assert config == msgspec.structs.replace(load_config(None), path=str(path))


def test_default_text_shows_every_limit_with_its_range_and_uncommented_still_loads(config_file):
    text = default_config_text()
    defaults = Limits()
    for key in Limits.__struct_fields__:
        lo, hi = limit_bounds(key)
        line = rf"^  # {key}: {getattr(defaults, key)} +# {lo}\.\.{hi}: "
        assert re.search(line, text, re.M), key
    # The limits are commented out so a chosen profile applies; switched on, they
    # must still be valid and equal to the defaults.
    uncommented = re.sub(r"^  # (\w+:)", r"  \1", text, flags=re.M)
    assert uncommented != text
    assert load_config(config_file(uncommented)).limits == defaults


def test_limit_bounds_come_from_the_schema():
    assert limit_bounds("max_concurrent_agents") == (1, 20)
    assert limit_bounds("log_max_buffer_mb") == (1, 500)
    with pytest.raises(KeyError):
        limit_bounds("max_agents")


LAYERED = """\
profile: high
profiles:
  high:
    max_worktrees: 20
  low:
    agent_timeout: 650
performance:
  agent_timeout: 1000
  tui_log_lines: 3000
"""

def test_resolution_defaults_then_profile_then_performance(config_file):
    config = load_config(config_file(LAYERED))
    limits = config.limits
    assert config.profile == "high"
    assert limits.max_repo_size_mb == 5000  # default: nothing sets it
    assert limits.max_concurrent_agents == 10  # built-in high
    assert limits.log_buffer_size_mb == 20  # built-in high
    assert limits.max_worktrees == 20  # the file's high, merged into the built-in
    assert limits.agent_timeout == 1000  # performance: beats high's 1800
    assert limits.tui_log_lines == 3000


def test_resolution_command_line_profile_wins_over_everything(config_file):
    config = load_config(config_file(LAYERED), profile_override="low")
    limits = config.limits
    assert config.profile == "low"
    assert limits.agent_timeout == 650  # the file's low beats built-in low and performance:
    assert limits.max_concurrent_agents == 2  # built-in low
    assert limits.log_buffer_size_mb == 5
    assert limits.max_worktrees == 10  # high no longer applies
    assert limits.tui_log_lines == 3000  # low does not set it, so performance: stands


def test_profile_defined_only_in_the_file(config_file):
    config = load_config(config_file("profile: ci\nprofiles:\n  ci: {max_concurrent_agents: 1}\n"))
    assert config.limits.max_concurrent_agents == 1
    assert config.limits.agent_timeout == 900


def test_agents_and_lists_decode(config_file):
    config = load_config(
        config_file(
            "agents:\n"
            "  mine: {command: [my-agent, --fast], env: {MODE: quick}, timeout: 30}\n"
            "default_agents: [mine, claude]\n"
            "env_passthrough: [HOME, GH_TOKEN]\n"
            "redact_patterns: ['sk-[A-Za-z0-9]+']\n"
        ),
        builtin_agents=["claude"],
    )
    assert config.agents == {
        "mine": AgentSpec(command=["my-agent", "--fast"], env={"MODE": "quick"}, timeout=30)
    }
    assert config.agents["mine"].memory_limit_mb is None
    assert config.default_agents == ["mine", "claude"]
    assert config.env_passthrough == ["HOME", "GH_TOKEN"]
    assert config.redact_patterns == ["sk-[A-Za-z0-9]+"]


def test_usable_agent_names_load(config_file):
    config = load_config(config_file("agents:\n  claude-3.5_fast: {command: [a]}\n  X9: {command: [b]}\n"))
    assert set(config.agents) == {"claude-3.5_fast", "X9"}


def test_a_yaml_merge_key_may_be_overridden(config_file):
    text = "profiles:\n  ci: &ci {max_worktrees: 3}\n  ci2:\n    <<: *ci\n    max_worktrees: 4\n"
    assert load_config(config_file(text)).limits.max_worktrees == 10  # profiles load; none is active


def test_a_yaml_alias_bomb_is_refused_before_it_expands(config_file):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(ConfigError, match="aliases expand to over 100000 values"):
        load_config(config_file("\n".join(lines) + "\n"))


def test_an_oversized_config_file_is_refused(config_file):
    with pytest.raises(ConfigError, match="too big for a config file"):
        load_config(config_file("# x\n" * 400_000))


@pytest.mark.parametrize("text, mode", [("", "auto"), ("sandbox: off\n", "off"), ("sandbox: 'off'\n", "off"),
                                        ("sandbox: bwrap\n", "bwrap"), ("sandbox: on\n", "auto")])
def test_sandbox_modes(config_file, text, mode):
    assert load_config(config_file(text)).sandbox == mode


def test_checks_and_rank_by(tmp_path):
    """`checks:` takes a bare command or {command, timeout}; timeouts and rank_by
    are validated with the key path in the message."""
    path = tmp_path / "c.yaml"
    path.write_text("checks:\n  tests: pytest -q\n  lint: {command: ruff check ., timeout: 120}\n"
                    "rank_by: [diff, checks]\nperformance:\n  check_timeout: 30\n")
    c = load_config(path)
    assert c.checks["tests"].command == "pytest -q" and c.checks["tests"].timeout is None
    assert c.checks["lint"].timeout == 120 and c.rank_by == ["diff", "checks"]
    assert c.limits.check_timeout == 30 and c.limits.github_timeout == 30 and c.limits.git_timeout == 300
    for text, message in [
        ("checks:\n  lint: {command: x, timeout: 0}\n", "checks.lint.timeout = 0 is below the minimum 1"),
        ("checks:\n  lint: ''\n", "checks.lint.command = '' is empty"),
        ("rank_by: [size]\n", "rank_by[0] = 'size' does not match"),
        ("performance:\n  github_timeout: 1000\n", "performance.github_timeout = 1000 is above the maximum 300"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path)


def test_notify(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("notify:\n  command: [notify-send, '{job}']\n  webhook: https://h.invalid/x\n"
                    "  events: [job_done]\n  timeout: 5\n")
    n = load_config(path).notify
    assert (n.command, n.webhook, n.events, n.timeout, n.retries) == (
        ["notify-send", "{job}"], "https://h.invalid/x", ["job_done"], 5, 3)
    assert load_config(tmp_path / "missing.yaml").notify is None
    for text, message in [
        ("notify:\n  webhook: ftp://x\n", "notify.webhook = 'ftp://x' does not match ^https?://"),
        ("notify:\n  events: [done]\n", "notify.events[0] = 'done' does not match"),
        ("notify:\n  timeout: 61\n", "notify.timeout = 61 is above the maximum 60"),
        ("notify:\n  on: [job_done]\n", "notify.on: YAML reads `on` as true; name the moments under `events:`"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path)
