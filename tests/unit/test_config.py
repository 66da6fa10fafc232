"""The config file: defaults, the default file, resolution order, every error's wording,
and `init_config`'s file and git exclude line."""

import re
import subprocess
from pathlib import Path

import msgspec
import pytest

from cocode.config import AgentSpec, Limits, limit_bounds
from cocode.configfile import default_config_text, init_config
from cocode.configload import load_config
from cocode.errors import EXIT_CONFIG, ConfigError

REL = Path(".cocode/config.yaml")


@pytest.fixture
def write(tmp_path, monkeypatch):
    """Write the config and return its path relative to the cwd, as a CLI would."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cocode").mkdir()

    def _write(text: str) -> Path:
        REL.write_text(text, encoding="utf-8")
        return REL

    return _write


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
def test_empty_file_gives_defaults(write, text):
    config = load_config(write(text))
    assert config.limits == Limits()
    assert config.path == ".cocode/config.yaml"


def test_default_text_loads_as_the_defaults(write):
    config = load_config(write(default_config_text()))
    assert config == msgspec.structs.replace(load_config(None), path=str(REL))


def test_default_text_shows_every_limit_with_its_range_and_uncommented_still_loads(write):
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
    assert load_config(write(uncommented)).limits == defaults


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


def test_resolution_defaults_then_profile_then_performance(write):
    config = load_config(write(LAYERED))
    limits = config.limits
    assert config.profile == "high"
    assert limits.max_repo_size_mb == 5000  # default: nothing sets it
    assert limits.max_concurrent_agents == 10  # built-in high
    assert limits.log_buffer_size_mb == 20  # built-in high
    assert limits.max_worktrees == 20  # the file's high, merged into the built-in
    assert limits.agent_timeout == 1000  # performance: beats high's 1800
    assert limits.tui_log_lines == 3000


def test_resolution_command_line_profile_wins_over_everything(write):
    config = load_config(write(LAYERED), profile_override="low")
    limits = config.limits
    assert config.profile == "low"
    assert limits.agent_timeout == 650  # the file's low beats built-in low and performance:
    assert limits.max_concurrent_agents == 2  # built-in low
    assert limits.log_buffer_size_mb == 5
    assert limits.max_worktrees == 10  # high no longer applies
    assert limits.tui_log_lines == 3000  # low does not set it, so performance: stands


def test_profile_defined_only_in_the_file(write):
    config = load_config(write("profile: ci\nprofiles:\n  ci: {max_concurrent_agents: 1}\n"))
    assert config.limits.max_concurrent_agents == 1
    assert config.limits.agent_timeout == 900


def test_agents_and_lists_decode(write):
    config = load_config(
        write(
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
def test_error_messages(write, text, message):
    path = write(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, builtin_agents=["claude"])
    assert caught.value.message == F + message
    assert caught.value.exit_code == EXIT_CONFIG


def test_default_agents_without_any_agents(write):
    with pytest.raises(ConfigError) as caught:
        load_config(write("default_agents: [nope]\n"))
    expected = "default_agents[0] = 'nope' is not an agent (define it under agents:)"
    assert caught.value.message == F + expected


def test_unknown_command_line_profile():
    with pytest.raises(ConfigError) as caught:
        load_config(None, profile_override="turbo")
    expected = "--performance-profile = 'turbo' is not a profile (choose low, medium, high)"
    assert caught.value.message == expected


def test_unreadable_bytes_are_one_line(write):
    path = write("")
    path.write_bytes(b"profile: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(F + "not UTF-8 text")
    assert "\n" not in caught.value.message


def _git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def _exclude_lines(git_dir: Path) -> list[str]:
    return (git_dir / "info" / "exclude").read_text().splitlines()


def test_init_config_writes_once_and_excludes_once(tmp_path):
    _git("init", "-q", ".", cwd=tmp_path)
    (tmp_path / ".git" / "info" / "exclude").unlink(missing_ok=True)  # must be created

    path, created = init_config(tmp_path)
    assert (path, created) == (tmp_path / ".cocode" / "config.yaml", True)
    assert path.read_text() == default_config_text()
    path.write_text("profile: high\n")

    assert init_config(tmp_path) == (path, False)
    assert path.read_text() == "profile: high\n"  # an existing file is kept
    assert _exclude_lines(tmp_path / ".git").count(".cocode/") == 1
    assert load_config(path).profile == "high"

    assert init_config(tmp_path, force=True) == (path, True)
    assert path.read_text() == default_config_text()
    assert _exclude_lines(tmp_path / ".git").count(".cocode/") == 1


def test_init_config_appends_to_an_existing_exclude(tmp_path):
    _git("init", "-q", ".", cwd=tmp_path)
    exclude = tmp_path / ".git" / "info" / "exclude"
    exclude.write_text("*.log")  # no trailing newline
    init_config(tmp_path)
    assert _exclude_lines(tmp_path / ".git") == ["*.log", ".cocode/"]


def test_init_config_in_a_worktree_uses_the_common_git_dir(tmp_path):
    main, tree = tmp_path / "main", tmp_path / "tree"
    main.mkdir()
    _git("init", "-q", ".", cwd=main)
    _git("commit", "-q", "--allow-empty", "-m", "x", cwd=main)
    _git("worktree", "add", "-q", str(tree), cwd=main)
    assert (tree / ".git").is_file()

    init_config(tree)
    init_config(tree)
    assert (tree / ".cocode" / "config.yaml").exists()
    assert _exclude_lines(main / ".git").count(".cocode/") == 1


def test_usable_agent_names_load(write):
    config = load_config(write("agents:\n  claude-3.5_fast: {command: [a]}\n  X9: {command: [b]}\n"))
    assert set(config.agents) == {"claude-3.5_fast", "X9"}


def test_a_yaml_merge_key_may_be_overridden(write):
    text = "profiles:\n  ci: &ci {max_worktrees: 3}\n  ci2:\n    <<: *ci\n    max_worktrees: 4\n"
    assert load_config(write(text)).limits.max_worktrees == 10  # profiles load; none is active


def test_a_yaml_alias_bomb_is_refused_before_it_expands(write):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(ConfigError, match="aliases expand to over 100000 values"):
        load_config(write("\n".join(lines) + "\n"))


def test_an_oversized_config_file_is_refused(write):
    with pytest.raises(ConfigError, match="too big for a config file"):
        load_config(write("# x\n" * 400_000))


@pytest.mark.parametrize("text, mode", [("", "auto"), ("sandbox: off\n", "off"), ("sandbox: 'off'\n", "off"),
                                        ("sandbox: bwrap\n", "bwrap"), ("sandbox: on\n", "auto")])
def test_sandbox_modes(write, text, mode):
    assert load_config(write(text)).sandbox == mode


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
