"""What every `cocode` command shares: the click group `main` (its `--help` in two
groups, no line cut off; the global `--color`), the `Env` each command receives,
one-line errors, JSON output, the running check and the terminal check.

Every failure the user can cause ends as one line on stderr and its exit code
(ADR-003; 2 for bad config or usage), never a traceback. The command modules
import this module, never the package's __init__, so no import circle can form.
Only click, msgspec, errors, paths and style (rich only when printing) load here:
`cocode --help` stays fast.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
import msgspec

from cocode.errors import CocodeError, EXIT_INTERRUPTED
from cocode.envnames import PERFORMANCE_PROFILE as PROFILE_ENV
from cocode.paths import Paths, find_repo_root, relative_to_cwd
from cocode import style

# Shown apart in `cocode --help`: what the Procfile, CI and developers run.
INTERNAL = ("service", "schema", "replay", "bench")


class Env:
    """What every command may need, resolved lazily so `--help` needs no repository."""

    def __init__(self, directory: str | None, profile: str | None, color: str = "auto") -> None:
        self.directory = directory
        self.profile = profile
        self.color = color
        self._paths: Paths | None = None
        self._config = None

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            self._paths = Paths(find_repo_root(self.directory))
        return self._paths

    @property
    def config(self):
        if self._config is None:
            from cocode.launcher import load_repo_config

            self._config = load_repo_config(self.paths, self.profile, self.relative(self.paths.config))
        return self._config

    @property
    def in_repo(self) -> bool:
        try:
            self.paths
            return True
        except CocodeError:
            return False

    @property
    def colour(self) -> bool:
        """Colour stdout: --color, NO_COLOR and whether it is a terminal decide."""
        return style.wants_colour(self.color, terminal())

    @property
    def width(self) -> int | None:
        """The terminal's columns for tables; None into a pipe (nothing is cut)."""
        return shutil.get_terminal_size().columns if terminal() else None

    def relative(self, path: Path) -> Path:
        return relative_to_cwd(path)


def short_help(cmd: click.Command) -> str:
    """A command's line in a listing: its short_help or first sentence, never cut
    with "..." (click cuts at the width; long lines wrap instead)."""
    return cmd.short_help or cmd.get_short_help_str(limit=10_000)


class WholeHelpGroup(click.Group):
    """A group whose command listing wraps long help lines instead of cutting them."""

    def sections(self, ctx) -> list[tuple[str, list[str]]]:
        return [("Commands", self.list_commands(ctx))]

    def format_commands(self, ctx, formatter) -> None:
        for title, names in self.sections(ctx):
            rows = []
            for name in names:
                cmd = self.get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, short_help(cmd)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class CocodeGroup(WholeHelpGroup):
    def sections(self, ctx) -> list[tuple[str, list[str]]]:
        names = self.list_commands(ctx)
        return [("Commands", [n for n in names if n not in INTERNAL]),
                ("Internal commands (services, schemas, benchmarks)", [n for n in names if n in INTERNAL])]

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CocodeError as err:
            click.echo(f"cocode: {err.message}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)


pass_env = click.make_pass_decorator(Env)


def print_json(obj) -> None:
    click.echo(msgspec.json.encode(obj).decode())


def require_running(paths: Paths) -> None:
    """A clear error (exit 1) unless cocode runs in this repository."""
    from cocode import client

    if not client.is_running(paths):
        raise client.not_running(paths)


_warned: list[str] = []  # the unreadable-events warning, once per command


def read_state(paths: Paths):
    """The state now (client.current_state), warning once on stderr when events of
    the log could not be read: what the command shows is then partial."""
    from cocode import client
    from cocode.core.unreadable import Unreadable

    unreadable = Unreadable()
    state = client.current_state(paths, unreadable)
    warn_unreadable(unreadable)
    return state


def warn_unreadable(unreadable) -> None:
    if unreadable and not _warned:
        _warned.append(unreadable.message())
        click.echo(f"cocode: warning: {_warned[0]}", err=True)


def terminal() -> bool:
    """stdout is a terminal: colour and made-safe text there, raw bytes into a pipe."""
    return sys.stdout.isatty()


@click.group(cls=CocodeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-C", "directory", metavar="DIR", help="Run as if started in DIR (like git -C).")
@click.option(
    "--performance-profile", "profile", envvar=PROFILE_ENV, metavar="NAME",
    help="Use this profile's limits over the config file's (low, medium, high).",
)
@click.option(
    "--color", type=click.Choice(style.MODES), default="auto", show_default=True,
    help="Colour the output; auto: on a terminal unless NO_COLOR is set.",
)
@click.version_option(package_name="cocode")
@click.pass_context
def main(ctx: click.Context, directory: str | None, profile: str | None, color: str) -> None:
    """Run several coding agents on one issue at once."""
    ctx.obj = Env(directory, profile, color)
