"""`cocode top --web`: the same app served to a browser by textual-serve, on
127.0.0.1 only (reach it from elsewhere through an SSH tunnel).

Each browser tab gets its own `cocode top` process. The page is textual-serve's
own template with one change: the font comes from the wheel's static files
instead of Google's, so the page makes no request beyond 127.0.0.1.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from cocode.errors import CocodeError, EXIT_MISSING_DEPENDENCY
from cocode.paths import Paths

TEMPLATES = Path(__file__).parent / "web"
HOST = "127.0.0.1"


def command(paths: Paths, profile: str | None = None) -> str:
    argv = [sys.executable, "-m", "cocode", "-C", str(paths.root)]
    if profile:
        argv += ["--performance-profile", profile]
    return shlex.join([*argv, "top"])


def serve(paths: Paths, port: int, profile: str | None = None, echo=print) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        raise CocodeError("`cocode top --web` needs textual-serve: pip install textual-serve",
                          EXIT_MISSING_DEPENDENCY) from None
    server = Server(command(paths, profile), host=HOST, port=port, title=f"cocode top: {paths.root}",
                    templates_path=str(TEMPLATES))
    echo(f"cocode top: serving on http://{HOST}:{port}/ (Ctrl+C stops)")
    server.serve()
    return 0
