"""Confining an agent run with bubblewrap (config `sandbox: auto|bwrap|off`).

What a sandboxed run sees: the system read-only; the network as it is (agents
call their model APIs); its own empty /tmp, with HOME at /tmp/home its own (kept
across its attempts, for an agent's session); the
user's secret-holding home directories (~/.ssh, ~/.aws, ...) hidden; `.cocode/`
(the sockets, the event log, other runs' worktrees, logs and spools) absent but
for its own workspace (writable) and its issue file (read-only); an agent CLI's
own state directory (CODEX_HOME, CLAUDE_CONFIG_DIR) stays writable. A run works in
its own clone (gitops/clones.py), so the repository's .git is read-only to it
whole: it writes only its clone's refs, and the worker moves its branch. (A
linked worktree, if one is given, may write only what its commits need: objects,
its admin directory and its job's ref directories.) A pid namespace: when the agent's main
process ends, whatever it started (daemons included) ends with it.

This module decides and builds the command line; it starts nothing. `auto`
uses bubblewrap when a probe run succeeds and otherwise runs unsandboxed (the
worker records a warning once); `bwrap` refuses to run without it; `off` never
uses it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cocode

MODES = ("auto", "bwrap", "off")
# Hidden from every run: where users keep credentials for other systems.
SECRET_HOME_ENTRIES = (".ssh", ".aws", ".gnupg", ".docker", ".kube", ".netrc", ".git-credentials",
                       ".config/gh", ".config/gcloud", ".azure", ".npmrc", ".pypirc")
RUN_HOME = "/tmp/home"


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why bubblewrap cannot confine runs here, or None when it can (probed once)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (`bwrap`) is not installed: apt-get install bubblewrap"
    try:
        probe = subprocess.run([bwrap, *_base_args(), "--", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap does not run: {err}"
    if probe.returncode != 0:
        why = (probe.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1]
        return f"bwrap cannot make a sandbox here ({why}); user namespaces may be disabled"
    return None


def active(mode: str) -> tuple[bool, str]:
    """(confine runs?, why) for a config's mode."""
    if mode == "off":
        return False, "sandbox: off in the config"
    why = unavailable()
    if why is None:
        return True, "bubblewrap: system read-only, own HOME and /tmp, .cocode/ hidden, pid namespace"
    return False, why


def _base_args() -> list[str]:
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]  # root inside must not undo the read-only mounts
    else:
        args += ["--unshare-user"]  # an unprivileged bwrap needs a user namespace
    return args


def _admin_dir(worktree: Path) -> Path | None:
    """A linked worktree's admin directory in the shared .git (from its .git file)."""
    try:
        text = (worktree / ".git").read_text()
    except (OSError, UnicodeDecodeError):
        return None  # a directory: a self-contained clone (light workspace)
    if text.startswith("gitdir:"):
        return Path(text.split(":", 1)[1].strip())
    return None


# An agent CLI's own state directory, named by its environment (its config, sessions,
# login): kept writable in the sandbox when the run's environment names one.
AGENT_HOME_VARS = ("CODEX_HOME", "CLAUDE_CONFIG_DIR")


def programs_under_tmp(env: dict[str, str] | None) -> list[str]:
    """Where the run's programs live, when that is under /tmp (which the sandbox empties):
    the parent of each PATH entry (a venv's bin/ needs its lib/, node_modules/.bin its
    packages), the interpreter's prefix and cocode's own source tree, as a checkout
    in a temporary directory (CI's, a test's) has them. Bound read-only."""
    tmp = Path("/tmp").resolve()
    wanted = [Path(cocode.__file__).resolve().parents[1], Path(sys.prefix).resolve()]
    for entry in (env or {}).get("PATH", "").split(os.pathsep):
        if entry and os.path.isdir(entry):
            wanted.append(Path(entry).resolve().parent)
    found: list[Path] = []
    for path in sorted(set(wanted), key=lambda p: len(p.parts)):
        if path.is_relative_to(tmp) and path != tmp and not any(path.is_relative_to(f) for f in found):
            found.append(path)
    return [str(p) for p in found]


def wrap(command: list[str], *, root: Path, worktree: Path, git_common: Path, job: str,
         issue_file: Path | None, home: str | None, run_home: Path,
         env: dict[str, str] | None = None) -> list[str]:
    """`command` run inside bubblewrap, confined to its run (see the module doc).
    `run_home` (the run's own, kept across its attempts: an agent resumes its session
    from there) is its HOME, seen at /tmp/home. A check (services/checks.py) has no
    issue file (None) and a HOME of its own for one execution."""
    args = ["bwrap", *_base_args(), "--tmpfs", "/tmp"]
    for where in programs_under_tmp(env):  # before .cocode/ is hidden below: it stays hidden
        args += ["--ro-bind", where, where]
    args += ["--bind", str(run_home), RUN_HOME]
    if home and home != "/":
        for name in SECRET_HOME_ENTRIES:
            path = Path(home) / name
            if path.is_dir():
                args += ["--tmpfs", str(path)]
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
    cocode_home = root / ".cocode"
    args += ["--tmpfs", str(cocode_home)]  # after this, only what is bound back is there
    if _admin_dir(worktree) is not None:
        common = str(git_common)
        args += ["--ro-bind", common, common, "--bind", f"{common}/objects", f"{common}/objects"]
        admin = str(_admin_dir(worktree))
        args += ["--bind", admin, admin]
        for refs in (git_common / "refs" / "heads" / "cocode" / job,
                     git_common / "logs" / "refs" / "heads" / "cocode" / job):
            if refs.is_dir():
                args += ["--bind", str(refs), str(refs)]
    else:
        # A run's own clone (gitops/clones.py) borrows the repository's objects: they must
        # be there, read-only, even when the repository is under /tmp (hidden above).
        args += ["--ro-bind", str(git_common), str(git_common)]
    for var in AGENT_HOME_VARS:
        where = (env or {}).get(var)
        if where and Path(where).is_dir() and not Path(where).resolve().is_relative_to(cocode_home.resolve()):
            args += ["--bind", where, where]
    args += ["--bind", str(worktree), str(worktree)]
    if issue_file is not None:
        args += ["--ro-bind", str(issue_file), str(issue_file)]
    args += ["--chdir", str(worktree), "--setenv", "HOME", RUN_HOME, "--setenv", "TMPDIR", "/tmp", "--"]
    return args + command
