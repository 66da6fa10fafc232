"""`cocode up --metrics-port PORT`: the Prometheus text (resources/exposition.py)
on http://127.0.0.1:PORT/metrics.

A daemon thread in the monitor, which holds the latest samples. Only loopback is
bound: a remote Prometheus reaches it through the user's own tunnel or proxy.
The port reaches the monitor through the environment its supervisor hands down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from cocode import envnames
from cocode.errors import ConfigError
from cocode.resources.exposition import PROMETHEUS_CONTENT_TYPE

log = logging.getLogger(__name__)


def metrics_port_env(port: int) -> None:
    """Check `up --metrics-port` and hand it to the monitor through the environment."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--metrics-port = {port} is not a port (1..65535)")
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as err:
        raise ConfigError(f"--metrics-port = {port}: 127.0.0.1:{port} is not free ({err.strerror})") from None
    finally:
        probe.close()
    os.environ[envnames.METRICS_PORT] = str(port)


def serve(port: int, render: Callable[[], str]) -> ThreadingHTTPServer:
    """Serve `render()` (the Prometheus text) from a daemon thread; raises OSError
    if the port is taken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics is here")
                return
            try:
                body = render().encode()
            except Exception as err:  # a scrape must never take the monitor down
                log.exception("metrics: render failed")
                self.send_error(500, str(err))
                return
            self.send_response(200)
            self.send_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass  # a scrape every 15 s must not fill the service log

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
