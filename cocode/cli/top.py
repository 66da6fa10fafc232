"""`cocode top` (the live view, in the terminal or `--web` in a browser): parse and
hand over to cocode/top/.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click

from cocode.cli.helpers import Env, main, pass_env
from cocode.errors import ConfigError


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@main.command("top")
@click.option("--web", is_flag=True, help="Serve the view to a browser on 127.0.0.1 instead.")
@click.option("--port", default=8000, show_default=True, metavar="N", help="The --web port.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.svg",
              help="Draw the view off-screen, save it as SVG after --wait seconds, and exit.")
@click.option("--wait", default=3.0, show_default=True, help="Seconds before --screenshot is taken.")
@click.option("--size", default="140x40", show_default=True, metavar="COLSxROWS", help="The --screenshot size.")
@pass_env
def top(env: Env, web: bool, port: int, screenshot: Path | None, wait: float, size: str) -> None:
    """The live view: jobs, runs and the agents' output side by side."""
    paths = env.paths  # a clear error outside a repository
    config = env.config
    if screenshot is not None:
        from cocode.top.app import TopApp

        try:
            cols, rows = (int(n) for n in size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size {size!r}: give COLSxROWS, e.g. 140x40") from None
        app = TopApp(paths, config, config.limits.tui_log_lines)
        app.screenshot_to = (screenshot.absolute(), wait)
        app.run(headless=True, size=(cols, rows))
        click.echo(f"wrote {screenshot}")
        return
    if web:
        from cocode.top import serve

        if not 0 < port < 65536:
            raise ConfigError(f"--port {port}: give a port between 1 and 65535")
        if not _port_free(port):
            raise ConfigError(f"--port {port}: 127.0.0.1:{port} is in use; pick another with --port N")
        sys.exit(serve.serve(paths, port, env.profile, click.echo))
    if not sys.stdout.isatty() and "TEXTUAL_DRIVER" not in os.environ:  # textual-serve sets it
        raise ConfigError("`cocode top` needs a terminal; `cocode status --json` suits a pipe, "
                          "`cocode top --web` a browser")
    from cocode.top.app import TopApp

    TopApp(paths, config, config.limits.tui_log_lines).run()

