"""The file `cocode init` writes: its commented default text, read back from the
schema in config.py (so the two cannot disagree), and writing it with the git
exclude line that keeps `.cocode/` out of the project.
"""

from pathlib import Path

from cocode.config import (
    BUILTIN_PROFILES, FORMATS, NOTIFY_ON, RANK_KEYS, AgentSpec, FileSchema, Limits, _Adr005Limits, bounds,
    field_description, limit_bounds,
)
from cocode.paths import Paths


def default_config_text() -> str:
    """The commented config file `cocode init` writes; loading it gives the defaults."""
    lines = [
        "# cocode configuration. Every key is optional and unknown keys are errors,",
        "# so a misspelt key is reported rather than silently ignored.",
        "",
        f"# Profile to start from: {', '.join(BUILTIN_PROFILES)} or one defined under profiles:.",
        "# `cocode --performance-profile NAME` replaces it for one run.",
        f"profile: {FileSchema().profile}",
        "",
        "# Limits set here win over the profile's. They are commented out so that the",
        "# profile applies; each shows its default and its allowed range.",
        "performance:",
    ]
    defaults, adr_keys = Limits(), len(_Adr005Limits.__struct_fields__)
    for i, name in enumerate(Limits.__struct_fields__):
        if i == adr_keys:
            lines.append("  # cocode additions, not in ADR-005:")
        lo, hi = limit_bounds(name)
        setting = f"  # {name}: {getattr(defaults, name)}"
        lines.append(f"{setting:<36} # {lo}..{hi}: {field_description(Limits, name)[1]}")
    lines += [
        "",
        "# Named sets of limits, with the same keys and ranges as performance:. An entry",
        "# named like a built-in profile changes only the keys it gives. Built in:",
        "# low for CI or small machines, medium the default, high for big workstations.",
        "profiles:",
    ]
    for profile, values in BUILTIN_PROFILES.items():
        lines.append(f"  {profile}:")
        lines += [f"    {key}: {value}" for key, value in values.items()]
    t_lo, t_hi = bounds(AgentSpec, "timeout")
    m_lo, m_hi = bounds(AgentSpec, "memory_limit_mb")
    lines += [
        "",
        "# Agents by name. command is required ({prompt} is replaced by the issue and",
        "# the rules for finishing), env adds variables, and timeout",
        f"# ({t_lo}..{t_hi} seconds) and memory_limit_mb ({m_lo}..{m_hi}) override the limits",
        f"# for that agent. format ({', '.join(FORMATS)}) says how its output is shown.",
        "# An entry named like a built-in (claude, codex) changes only the keys it gives;",
        "# allowed_tools lists what the claude preset pre-approves (Bash(git:*), Bash(pytest:*), ...).",
        "agents:",
        "#   claude:",
        "#     allowed_tools: [Read, Edit, Write, Glob, Grep, 'Bash(git:*)', 'Bash(make test:*)']",
        "#     timeout: 1800",
        "#   my-claude:",
        "#     command: [claude, -p, '{prompt}', --output-format, stream-json, --verbose,",
        "#               --allowedTools, 'Bash(git:*),Edit,Write']",
        "#     format: claude-stream-json",
        "#     env: {ANTHROPIC_LOG: info}",
        "",
        "# Agents started when none are named: names under agents: or built-in presets.",
        "default_agents: []",
        "",
        "# Names of environment variables passed through to agents.",
        "env_passthrough: []",
        "",
        "# Regular expressions (Python syntax) whose matches are hidden in logs.",
        "redact_patterns: []",
        "",
        "# US dollars per million tokens, for agents that report tokens only (codex), keyed",
        "# by the model when the agent names it, else by the agent's name.",
        "prices: {}",
        "# A run whose cost passes this many dollars is stopped (failed/budget_exceeded, commits",
        "# kept); agents.NAME.max_cost_usd and `submit --max-cost` override it. Claude reports its",
        "# cost when a session ends: for a budget that acts sooner, give its model's prices.",
        "max_cost_usd: null",
        "#   codex: {input: 1.25, cached_input: 0.125, output: 10.0}",
        "",
        "# Commands run (sh -c) in every new worktree before its agent starts, e.g. [npm ci];",
        "# one that fails ends the run failed/setup_failed. Their output opens the run's log.",
        "setup: []",
        "# Files copied from this checkout into every new worktree (kept out of commits), e.g. [.env].",
        "copy: []",
        "",
        "# Agent runs in a bubblewrap sandbox: auto (when bwrap works here), bwrap (always,",
        "# or runs fail), off. Confined: system read-only, own HOME and /tmp, .cocode/ hidden.",
        "sandbox: auto",
        "# Checks run in each ready run's worktree (shell commands; $COCODE_JUNIT_XML is",
        "# where one may write JUnit XML for exact counts). timeout overrides check_timeout.",
        "checks: {}",
        "#   tests: pytest -q --junitxml=$COCODE_JUNIT_XML",
        "#   lint: {command: ruff check ., timeout: 120}",
        "",
        f"# How `cocode compare` ranks runs, first key first: {', '.join(RANK_KEYS)}.",
        f"rank_by: [{', '.join(RANK_KEYS)}]",
        "",
        f"# On {', '.join(NOTIFY_ON)}: run a command ({{job}}, {{agent}}, {{state}},",
        "# {title}, {trigger} filled in) and/or POST a JSON body to a webhook; timeout",
        "# seconds each (1..60), retried with backoff; failures are notify_failed events.",
        "# notify:",
        "#   command: [notify-send, 'cocode {job}', '{agent}: {state}']",
        "#   webhook: https://example.invalid/hook",
        "#   events: [job_done, checks_done]",
    ]
    return "\n".join(lines) + "\n"


def init_config(repo_root: Path, force: bool = False) -> tuple[Path, bool]:
    """Write the default config unless one exists (or force), and keep .cocode/ out of git.

    Returns the config path and whether it was written.
    """
    path = Paths(repo_root).config
    created = force or not path.exists()
    if created:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(default_config_text(), encoding="utf-8")
    # info/exclude rather than .gitignore: cocode's files are this clone's business,
    # not something to commit to the project.
    if (repo_root / ".git").exists():
        # Deferred for the services' start-up weight (they import this module, not
        # init_config); gitops imports nothing of config, so no circle.
        from cocode.gitops.runner import git_dir

        exclude = git_dir(repo_root) / "info" / "exclude"
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if ".cocode/" not in (line.strip() for line in text.splitlines()):
            exclude.parent.mkdir(parents=True, exist_ok=True)
            separator = "\n" if text and not text.endswith("\n") else ""
            exclude.write_text(f"{text}{separator}.cocode/\n", encoding="utf-8")
    return path, created
