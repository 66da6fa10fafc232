"""The agent protocol (ADR-003 of the original cocode) and the table of built-in agents.

This module owns what cocode promises an agent and what it expects back: the ready
marker, the meaning of exit codes, the prompt an AI agent gets, the command line
(with `{placeholder}`s filled at run time), and the environment — the `COCODE_*`
variables plus an allowlist of the user's environment (ADR-004), never all of it.
It starts no process: the worker does that with what these functions return.

The built-in agents live in one table, `PRESETS`; a config's `agents:` section
overrides them by name through `merge_agents`.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from collections.abc import Mapping

import msgspec

from cocode.config import AgentSpec
from cocode import envnames

READY_MARKER = "cocode ready for check"

# ADR-003 exit codes, as run outcomes. 0 is only a failure when no commit was ready.
_EXIT_REASONS = {
    0: "no_ready_marker",
    1: "exit_1",
    2: "bad_config",
    3: "missing_dependency",
    124: "timeout_exceeded",
    130: "interrupted",
}


def reason_for_exit(code: int | None, signaled: int | None) -> str:
    """Why a run ended without a ready commit, from its exit code or killing signal.

    `signaled` wins; a negative `code` (subprocess's way of saying "signal") counts
    as a signal too.
    """
    if signaled:
        return f"signal_{signaled}"
    if code is None:
        return "exit_unknown"
    if code < 0:
        return f"signal_{-code}"
    return _EXIT_REASONS.get(code, f"exit_{code}")


# ----------------------------------------------------------------------- presets


# What the Claude preset pre-approves (config: agents.claude.allowed_tools). In -p mode
# anything else is denied, so this is what lets it work unattended: read and edit files
# in its worktree, run the usual test commands, and commit. stream-json (which -p
# requires --verbose for) makes progress visible live; plain -p prints only at the end.
CLAUDE_ALLOWED_TOOLS = [
    "Read", "Edit", "Write", "Glob", "Grep",
    "Bash(git:*)",
    "Bash(pytest:*)", "Bash(python -m pytest:*)", "Bash(python3 -m pytest:*)", "Bash(uv run pytest:*)",
    "Bash(python -m unittest:*)", "Bash(python3 -m unittest:*)",
    "Bash(npm test:*)", "Bash(npm run test:*)", "Bash(make test:*)", "Bash(make check:*)",
    "Bash(cargo test:*)", "Bash(go test:*)",
]

_CLAUDE = AgentSpec(
    command=[
        "claude", "-p", "{prompt}",
        "--permission-mode", "acceptEdits",
        "--output-format", "stream-json", "--verbose",
        "--allowedTools", "{allowed_tools}",
    ],
    passthrough=["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL"],
    description="Claude Code, non-interactive (claude -p)",
    format="claude-stream-json",
    allowed_tools=CLAUDE_ALLOWED_TOOLS,
    resume=[
        "claude", "-p", "{prompt}", "--resume", "{session_id}",
        "--permission-mode", "acceptEdits",
        "--output-format", "stream-json", "--verbose",
        "--allowedTools", "{allowed_tools}",
    ],
)

# A run's commits are written to its workspace's own .git ({git_common_dir} and
# {git_dir}: a run's clone or light workspace), which codex's workspace-write sandbox
# keeps read-only unless named as a writable root. --json gives one event per line
# (format codex-json).
# {codex_sandbox} is workspace-write, or danger-full-access inside cocode's own
# sandbox, where codex's bwrap cannot run (MEASURED.md).
_CODEX = AgentSpec(
    command=[
        "codex", "exec", "--json", "--sandbox", "{codex_sandbox}",
        "-c", 'sandbox_workspace_write.writable_roots=["{git_common_dir}","{git_dir}"]',
        "{prompt}",
    ],
    passthrough=["OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME"],
    description="OpenAI Codex CLI, non-interactive (codex exec)",
    format="codex-json",
    # `exec resume` takes no --sandbox: the same policy as config values.
    resume=[
        "codex", "exec", "resume", "--json",
        "-c", 'sandbox_mode="{codex_sandbox}"',
        "-c", 'sandbox_workspace_write.writable_roots=["{git_common_dir}","{git_dir}"]',
        "{session_id}", "{prompt}",
    ],
)


def _demo(mode: str, description: str) -> AgentSpec:
    # {python}, not sys.executable: the table stays plain data, and each worker
    # fills in its own interpreter (workers may later live on other hosts).
    return AgentSpec(command=["{python}", "-m", "cocode.demo_agent", "--mode", mode], description=description)


PRESETS: Mapping[str, AgentSpec] = {
    "claude": _CLAUDE,
    "codex": _CODEX,
    "demo": _demo("ready", "built-in demo: edits a file, commits ready in under a second"),
    "demo-fail": _demo("fail", "built-in demo: gives up with exit 1 and a reason"),
    "demo-slow": _demo("slow", "built-in demo: ~4 s of progress, then commits ready"),
}


def merge_agents(configured: Mapping[str, AgentSpec] | None) -> dict[str, AgentSpec]:
    """PRESETS with a config's `agents:` applied: an entry with a command replaces a
    preset of the same name whole; one without changes only the keys it gives (e.g.
    `claude: {allowed_tools: [...]}`); a new name adds an agent."""
    merged = dict(PRESETS)
    blank = AgentSpec()
    for name, spec in (configured or {}).items():
        base = PRESETS.get(name)
        if spec.command or base is None:
            merged[name] = spec
        else:
            given = {f: getattr(spec, f) for f in spec.__struct_fields__ if getattr(spec, f) != getattr(blank, f)}
            merged[name] = msgspec.structs.replace(base, **given)
    return merged


# ------------------------------------------------------------------- best-of-N

BEST_OF_MAX = 10
_COPY = re.compile(r"^(.+)-([1-9][0-9]*)$")


def expand_best_of(name: str) -> list[str]:
    """`claude:3` -> [claude-1, claude-2, claude-3] (one run each, own worktree);
    a plain name -> [name]. ValueError, worded for the user, for a bad count."""
    base, sep, count = name.rpartition(":")
    if not sep:
        return [name]
    if not base or not count.isdigit() or not 1 <= int(count) <= BEST_OF_MAX:
        raise ValueError(f"--agent {name!r}: write NAME:N with N from 1 to {BEST_OF_MAX} (e.g. claude:3)")
    return [f"{base}-{i}" for i in range(1, int(count) + 1)]


def base_name(run: str, table: Mapping[str, AgentSpec]) -> str:
    """The agent a run is of: its own name, or `claude` for best-of-N's `claude-2`."""
    if run in table:
        return run
    m = _COPY.match(run)
    return m.group(1) if m and m.group(1) in table else run


# ------------------------------------------------------------------ command line

# `{name}` with a lowercase identifier, not preceded by `$` so shell `${var}` survives.
_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z_][a-z0-9_]*)\}")
# What a worker fills in: {prompt} and {python} always; the rest through `values`
# (the codex preset needs {git_common_dir} and {git_dir}, the worktree's own git
# directory; claude's {allowed_tools}). Config validation can check against it.
PLACEHOLDERS = ("prompt", "python", "worktree", "git_common_dir", "git_dir", "issue_body_file", "marker",
                "allowed_tools", "session_id", "codex_sandbox")


def render_command(cmd: list[str], prompt: str, values: Mapping[str, str] | None = None) -> list[str]:
    """`cmd` with `{prompt}`, `{python}` and the names in `values` filled in.

    Each argument stays one argument (no shell, no splitting), so a prompt with
    quotes or newlines needs no escaping. Unknown `{names}` are left as written:
    commands may legitimately contain braces.
    """
    known = {"prompt": prompt, "python": sys.executable, **(values or {})}

    def fill(m: re.Match) -> str:
        return str(known[m.group(1)]) if m.group(1) in known else m.group(0)

    return [_PLACEHOLDER.sub(fill, arg) for arg in cmd]


def workspace_git_dir(worktree: os.PathLike | str) -> str:
    """A workspace's own git directory: a linked worktree's `.git` file names it
    (`gitdir: <common>/worktrees/<name>`), a clone's `.git` is that directory."""
    dot = os.path.join(worktree, ".git")
    if os.path.isfile(dot):
        with open(dot, encoding="utf-8") as f:
            line = f.readline().strip()
        if line.startswith("gitdir:"):
            return os.path.normpath(os.path.join(worktree, line[len("gitdir:"):].strip()))
    return dot


def missing_binary(command: list[str], path: str | None) -> str | None:
    """The program of a rendered command if it cannot be found on `path`, else None."""
    if not command or not command[0]:
        return "(empty command)"
    return None if shutil.which(command[0], path=path) else command[0]


# ------------------------------------------------------------------------ prompt

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN) with E2BIG, and
# the prompt is one argument; the full text is always in COCODE_ISSUE_BODY_FILE.
_MAX_BODY_BYTES = 96 * 1024


def _clip(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode()
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode(errors="ignore"), True


def build_prompt(issue_title: str, issue_body: str, marker: str = READY_MARKER) -> str:
    """The task an AI agent gets: the issue, and the rule for saying "done"."""
    body, clipped = _clip(issue_body.strip(), _MAX_BODY_BYTES)
    if clipped:
        body += f"\n\n[... issue text cut here; the full text is in the file ${envnames.ISSUE_BODY_FILE}]"
    return f"""Resolve this issue in the git repository in your current directory.

Issue: {issue_title.strip()}

{body or "(no description)"}

How to work:
- The current directory is a git worktree on a branch of its own, made for you. Change files only here.
- Run the project's tests if you can.
- Commit your work with git as you go. Do not push, switch branches or rewrite history.
- When you are done, make a final commit whose commit message contains the line
  "{marker}", for example:
      git commit -m "fix: <what you changed>" -m "{marker}"
- Only a commit message counts; writing that line into a file does nothing.
- If you cannot resolve the issue, say why and stop without that line.
"""


# ------------------------------------------------------------------- environment

# ADR-004: what an agent inherits from the user's environment, by name.
ENV_ALLOWLIST = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "TZ", "TMPDIR",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
})


def _allowed(name: str, passthrough: list[str]) -> bool:
    if name in ENV_ALLOWLIST or name.startswith("LC_"):
        return True
    # Exact names, or shell-style patterns such as AWS_* for families of variables.
    return any(name == p or (("*" in p or "?" in p) and fnmatch.fnmatchcase(name, p)) for p in passthrough)


def inherited_env(parent_env: Mapping[str, str], passthrough: list[str]) -> dict[str, str]:
    """The user's variables a process cocode starts may see (checks, notify commands)."""
    return {k: v for k, v in parent_env.items() if _allowed(k, passthrough)}


def build_env(
    *,
    worktree: os.PathLike | str,
    job_id: str,
    agent_name: str,
    issue_number: int | str | None,
    issue_url: str | None,
    issue_body_file: os.PathLike | str,
    agent_env: Mapping[str, str],
    passthrough: list[str],
    parent_env: Mapping[str, str],
) -> dict[str, str]:
    """An agent's whole environment: allowlisted parent variables, the agent's own
    env, then the protocol's COCODE_* variables (which nothing may override)."""
    env = {k: v for k, v in parent_env.items() if _allowed(k, passthrough)}
    env.setdefault("PATH", os.defpath)
    # Agents run without a terminal to answer git's credential prompts; a prompt would
    # hang the run until its timeout. An agent's env may still turn it back on.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.update({k: str(v) for k, v in agent_env.items()})
    env.update({
        envnames.REPO_PATH: str(worktree),
        envnames.ISSUE_NUMBER: "" if issue_number is None else str(issue_number),
        envnames.ISSUE_URL: issue_url or "",
        envnames.ISSUE_BODY_FILE: str(issue_body_file),
        envnames.READY_MARKER: READY_MARKER,
        envnames.JOB_ID: job_id,
        envnames.AGENT_NAME: agent_name,
    })
    return env
