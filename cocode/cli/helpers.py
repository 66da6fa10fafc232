"""What every `cocode` command shares: the click group `main`, the `Env` each command
receives, one-line errors, JSON output, the running check and the terminal check.

Every failure the user can cause ends as one line on stderr and its exit code
(ADR-003; 2 for bad config or usage), never a traceback. The command modules
import this module, never the package's __init__, so no import circle can form.
Only click, msgspec, errors and paths load here: `cocode --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from cocode.errors import CocodeError, EXIT_INTERRUPTED
from cocode.envnames import PERFORMANCE_PROFILE as PROFILE_ENV
from cocode.paths import Paths, find_repo_root


class Env:
    """What every command may need, resolved lazily so `--help` needs no repository."""

    def __init__(self, directory: str | None, profile: str | None) -> None:
        self.directory = directory
        self.profile = profile
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
            from cocode.config import load_config

            self._config = load_config(
                self.relative(self.paths.config), self.profile, builtin_agents=_builtin_agents()
            )
        return self._config

    @property
    def in_repo(self) -> bool:
        try:
            self.paths
            return True
        except CocodeError:
            return False

    def relative(self, path: Path) -> Path:
        try:
            return path.relative_to(Path.cwd())
        except ValueError:
            return path


def _builtin_agents() -> tuple[str, ...]:
    try:
        from cocode.jobs.agents import PRESETS
    except ImportError:
        return ()
    return tuple(PRESETS)


class CocodeGroup(click.Group):
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


def terminal() -> bool:
    """stdout is a terminal: colour and made-safe text there, raw bytes into a pipe."""
    return sys.stdout.isatty()


@click.group(cls=CocodeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", metavar="DIR", help="Run as if started in DIR (like git -C).")
@click.option(
    "--performance-profile", "profile", envvar=PROFILE_ENV, metavar="NAME",
    help="Use this profile's limits over the config file's (low, medium, high).",
)
@click.version_option(package_name="cocode")
@click.pass_context
def main(ctx: click.Context, directory: str | None, profile: str | None) -> None:
    """Run several coding agents on one issue at once."""
    ctx.obj = Env(directory, profile)
