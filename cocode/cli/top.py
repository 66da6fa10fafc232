"""`cocode top` (the live view, in the terminal or `--web` in a browser): parse and
hand over to cocode/top/.
"""

from __future__ import annotations

import os
import socket
import sys

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
@pass_env
def top(env: Env, web: bool, port: int) -> None:
    """The live view: jobs, runs and the agents' output side by side."""
    paths = env.paths  # a clear error outside a repository
    config = env.config
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

