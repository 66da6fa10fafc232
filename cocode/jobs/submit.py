"""What `cocode submit` checks and records: one job_submitted event.

Everything the user can get wrong is checked here, before anything is queued:
the issue source, the agents and their binaries, the base commit, the limits,
and the repository-size policy (ADR-005 §3). Then the event is appended and
acked: from that moment the job is durable, whether or not the scheduler runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from cocode import gitops
from cocode.jobs import agents
from cocode.jobs import timeouts
from cocode.core import events as ev
from cocode.config import Config, agent_name_problem
from cocode.errors import EXIT_CONFIG, EXIT_MISSING_DEPENDENCY, CocodeError, ConfigError
from cocode.paths import Paths

PRIORITY_RANGE = (-100, 100)
TIMEOUT_RANGE = (1, timeouts.HARD_LIMIT_S)


class Issue:
    def __init__(self, title: str, body: str, number: int = 0, url: str = "", labels=()):
        self.title, self.body, self.number, self.url, self.labels = title, body, number, url, list(labels)


def issue_from_file(path: Path) -> Issue:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such issue file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the issue file ({err})") from None
    return issue_from_text(text, source=str(path))


def issue_from_text(text: str, source: str = "--text") -> Issue:
    if not text.strip():
        raise ConfigError(f"{source}: the issue is empty; describe the problem to solve")
    lines = text.strip().splitlines()
    title = lines[0].lstrip("# ").strip()[:200]
    return Issue(title=title, body=text.strip())


def issue_from_github(ref: str, cwd: Path) -> Issue:
    """Title, body and labels through `gh issue view --json`."""
    if shutil.which("gh") is None:
        raise CocodeError("--issue needs the GitHub CLI `gh`: install it and run `gh auth login`",
                          EXIT_MISSING_DEPENDENCY)
    try:
        out = subprocess.run(
            ["gh", "issue", "view", ref, "--json", "number,title,body,labels,url"],
            cwd=cwd, capture_output=True, text=True, timeout=30,
        )
    except subprocess.TimeoutExpired:
        raise CocodeError(f"gh issue view {ref} took over 30 s; check your network") from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise CocodeError(f"gh issue view {ref} failed: {why} (is `gh auth login` done?)")
    data = json.loads(out.stdout)
    return Issue(title=data.get("title", ""), body=data.get("body") or data.get("title", ""),
                 number=int(data.get("number") or 0), url=data.get("url", ""),
                 labels=[lb.get("name", "") for lb in data.get("labels", [])])


def new_job_id() -> str:
    return secrets.token_hex(3)


def check_range(flag: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is not None and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{flag} {value} is out of range ({bounds[0]}..{bounds[1]})")


def resolve_agents(requested: tuple[str, ...], config: Config) -> list[str]:
    table = agents.merge_agents(config.agents)
    names = list(requested) or list(config.default_agents)
    if not names:
        raise ConfigError(
            "no agent named: pass --agent NAME (e.g. --agent demo) or set default_agents in .cocode/config.yaml"
        )
    try:
        names = [run for name in names for run in agents.expand_best_of(name)]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"agent {name!r} is named twice; each agent runs once per job "
                              "(NAME:N runs N copies)")
        seen.add(name)
        name = agents.base_name(name, table)
        spec = table.get(name)
        problem = agent_name_problem(name)
        if problem:
            raise ConfigError(f"agent name {name[:80]!r} cannot be used ({problem})")
        if spec is None:
            raise ConfigError(f"unknown agent {name!r} (choose {', '.join(sorted(table))}, or define it under agents:)")
        command = agents.render_command(spec.command, "")
        missing = agents.missing_binary(command, os.environ.get("PATH"))
        if missing:
            raise CocodeError(f"agent {name!r} needs `{missing}`, which is not on PATH: install it or fix agents.{name}.command",
                              EXIT_MISSING_DEPENDENCY)
    return names


def build_job(
    paths: Paths, config: Config, issue: Issue, agent_names: list[str], *, priority: int = 0,
    complexity: str = "simple", timeout: int | None = None, base: str = "HEAD",
    force: bool = False, sparse: tuple[str, ...] = (), issue_number: int | None = None,
    max_cost_usd: float | None = None,
) -> tuple[ev.JobSubmitted, list[str]]:
    """The event to append, and warnings to show. Raises on anything wrong."""
    issue_bytes = len(issue.title.encode()) + len(issue.body.encode())
    if issue_bytes > config.limits.max_issue_kb * 1024:
        raise ConfigError(
            f"the issue is {issue_bytes // 1024} KB, over the limit of {config.limits.max_issue_kb} KB: shorten it, "
            "or raise performance.max_issue_kb in .cocode/config.yaml")
    check_range("--priority", priority, PRIORITY_RANGE)
    check_range("--timeout", timeout, TIMEOUT_RANGE)
    base_sha = gitops.resolve_commit(paths.root, base)
    size = gitops.repo_size(paths.root)
    policy = gitops.size_policy(size, config.limits.max_repo_size_mb, force)
    policy.check()
    event = ev.JobSubmitted(
        job=new_job_id(), title=issue.title, body=issue.body, agents=agent_names,
        base_sha=base_sha, base_ref=base,
        issue_number=issue.number if issue_number is None else issue_number,
        issue_url=issue.url, labels=issue.labels, priority=priority, complexity=complexity,
        timeout_s=timeout or 0, light=policy.light or bool(sparse), sparse=list(sparse),
        worktree_mb=round(size.worktree_bytes / gitops.MB, 1), max_cost_usd=max_cost_usd or 0.0,
    )
    return event, list(policy.warnings)


def ensure_complexity(value: str) -> str:
    if value not in timeouts.COMPLEXITIES:
        raise ConfigError(f"--complexity {value!r} is not one of {', '.join(timeouts.COMPLEXITIES)}", EXIT_CONFIG)
    return value
