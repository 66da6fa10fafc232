"""`cocode --help` lists the everyday commands apart from the internal ones
(service, schema, replay, bench), and no help line anywhere is cut off with
"..." (click cuts a command's short help at the terminal's width)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from cocode.cli import main
from cocode.cli.helpers import INTERNAL
from support import ROOT


def _cut(text: str) -> list[str]:
    """Lines ending in "..." but for a usage line's `[ARGS]...` or `AGENTS...`."""
    return [line for line in text.splitlines() if re.search(r"[^\]A-Z_]\.\.\.$", line.rstrip())]


def _sections(text: str) -> dict[str, list[str]]:
    """Section title -> the command names listed under it."""
    out, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = out.setdefault(line[:-1], [])
        elif current is not None and line.startswith("  ") and not line.startswith("   "):
            current.append(line.split()[0])
    return out


@pytest.mark.parametrize("columns", ["80", "50"])
def test_help_groups_everyday_and_internal_commands_uncut(columns):
    env = {**os.environ, "COLUMNS": columns}
    proc = subprocess.run([sys.executable, "-m", "cocode", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    sections = _sections(proc.stdout)
    internal = next(v for k, v in sections.items() if k.startswith("Internal commands"))
    assert sorted(internal) == sorted(INTERNAL)
    everyday = sections["Commands"]
    assert {"submit", "status", "tail", "cancel", "up", "down"} <= set(everyday)
    assert sorted(everyday + internal) == sorted(main.commands)
    assert not _cut(proc.stdout), _cut(proc.stdout)


def _every_command(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _every_command(cmd, prefix + (name,))


def test_no_help_line_of_any_command_is_cut():
    runner = CliRunner()
    for path in [(), *_every_command(main)]:
        result = runner.invoke(main, [*path, "--help"], terminal_width=60)
        assert result.exit_code == 0, (path, result.output)
        assert not _cut(result.output), (path, _cut(result.output))
