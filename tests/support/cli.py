"""The real `cocode` CLI as a subprocess: one command, shell completion, `up`/`down`
of a real running cocode (down fails the test if a process is left), its config file
and socket files, and the shape of a user error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cocode.paths import Paths

from .procs import cocode_processes, kill_all

COCODE_BIN = Path(sys.executable).parent / "cocode"  # completion keys on the program's name


def cocode(repo: Path, *args: str, timeout: float = 60, check: bool = False, env=None, input=None):
    """Run the real `cocode` CLI as a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "cocode", "-C", str(repo), *args],
        capture_output=True, text=True, timeout=timeout, env=env, input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cocode {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def complete(repo: Path | None, words: str, shell: str = "bash", cwd: Path | None = None) -> str:
    """What the shell's TAB gets for the line `words` (the cursor at its end)."""
    line = f"cocode -C {repo} {words}" if repo else f"cocode {words}"
    env = {**os.environ, "_COCODE_COMPLETE": f"{shell}_complete", "COMP_WORDS": line,
           "COMP_CWORD": str(len(line.split()) - (0 if line.endswith(" ") else 1))}
    if shell == "fish":
        env["COMP_CWORD"] = "" if line.endswith(" ") else line.split()[-1]
    proc = subprocess.run([str(COCODE_BIN)], env=env, capture_output=True, text=True, timeout=30,
                          cwd=cwd or repo)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout


def bash_values(out: str) -> list[str]:
    """The values in bash completion output."""
    return [line.split(",", 1)[1] for line in out.splitlines() if line.startswith("plain,")]


def write_config(repo: Path, config: dict) -> None:
    """.cocode/config.yaml (JSON is YAML), written before `cocode up` reads it."""
    (repo / ".cocode").mkdir(mode=0o700, exist_ok=True)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config, indent=1))


def up(repo: Path, *args: str, env=None) -> Paths:
    """`cocode up --detach` (extra args passed on); fails the test if it does not start."""
    proc = cocode(repo, "up", "--detach", *args, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Paths(repo)


def down(repo: Path) -> None:
    """`cocode down`, then: no process of this repository's cocode may be left."""
    try:
        cocode(repo, "down", timeout=60)
        leftover = cocode_processes(repo)
    finally:
        kill_all(repo)
    assert not leftover, f"processes left after down: {[p.info['cmdline'] for p in leftover]}"


def ipc_files(paths: Paths) -> list[str]:
    """The socket files of a repository's cocode (none once it is down)."""
    return sorted(p.name for p in paths.socket_dir.glob("*.ipc")) if paths.socket_dir.exists() else []


def one_line_error(proc) -> str:
    """A user error: non-zero exit, exactly one line on stderr, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, f"expected a failure, got exit 0: {proc.stdout}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]
