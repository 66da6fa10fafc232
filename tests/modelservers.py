"""Scripted model servers for the real agent CLIs: just enough of Anthropic's Messages
API (for `claude`) and OpenAI's Responses API (for `codex`) to play a session.

Each server listens on 127.0.0.1 (stdlib http.server, one daemon thread per
connection, every socket with a timeout) and plays a script: a list of Turns, one
per model request, in order. A turn is some text and/or tool calls; `die` closes the
connection halfway through the stream; `hang` holds it open without a byte.
Requests past the script's end get a short "done" answer, so a CLI that asks once
more still ends. Every request body is kept (`requests`) for assertions, e.g. that
a tool result reached the model. Use as a context manager: the server always stops.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SOCKET_TIMEOUT_S = 30.0
HANG_S = 120.0  # bounded, like everything a test starts


@dataclass
class Turn:
    text: str = ""
    # (tool name, input): claude's ("Bash", {"command": ...}); codex's ("exec_command", {"cmd": ...})
    tools: list[tuple[str, dict]] = field(default_factory=list)
    die: bool = False  # send the stream's first events, then drop the connection
    hang: bool = False  # accept the request and never answer (until the server stops)


def bash(command: str, text: str = "") -> Turn:
    return Turn(text=text, tools=[("Bash", {"command": command, "description": command[:40]})])


def shell(cmd: str, text: str = "") -> Turn:
    return Turn(text=text, tools=[("exec_command", {"cmd": cmd})])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScriptedServer:
    """The common part: a thread serving HTTP, the script, the recorded requests."""

    path = "/"

    def __init__(self, script: list[Turn] | None = None, respond=None) -> None:
        """`script` is played in order; `respond(request body) -> Turn`, if given, answers
        instead (for several sessions at once, whose requests interleave)."""
        self.script = list(script or [])
        self.respond = respond
        self.requests: list[dict] = []
        self.other: list[str] = []  # requests to paths this server does not speak
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = SOCKET_TIMEOUT_S

            def log_message(self, *args) -> None:  # quiet: pytest shows failures, not traffic
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.path.split("?")[0] != outer.path:
                    outer.other.append(f"POST {self.path}")
                    return self._json(404, {"error": {"type": "not_found", "message": self.path}})
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._json(400, {"error": {"type": "invalid_request", "message": "bad json"}})
                with outer.lock:
                    if outer.respond is not None:
                        turn = outer.respond(body)
                    else:
                        turn = outer.script.pop(0) if outer.script else Turn(text="done")
                    outer.requests.append(body)
                if turn.hang:
                    outer.stopping.wait(HANG_S)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                events = outer.events(turn, body)
                if turn.die:
                    events = events[:2]
                for name, data in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                if turn.die:
                    # A reset rather than a clean end: the stream stops mid-message.
                    self.connection.shutdown(2)

            def do_GET(self) -> None:
                outer.other.append(f"GET {self.path}")
                self._json(404, {"error": {"type": "not_found", "message": self.path}})

            do_HEAD = do_GET

            def _json(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def events(self, turn: Turn, request: dict) -> list[tuple[str, dict]]:
        raise NotImplementedError

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def wait_requests(self, n: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                return True
            time.sleep(0.05)
        return False


class AnthropicServer(ScriptedServer):
    """POST /v1/messages with stream: true, answered as Messages API server-sent events."""

    path = "/v1/messages"

    def events(self, turn: Turn, request: dict) -> list[tuple[str, dict]]:
        n = len(self.requests)
        model = request.get("model", "claude-test")
        usage = {"input_tokens": 100 + n, "output_tokens": 0,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        out = [("message_start", {"type": "message_start", "message": {
            "id": f"msg_{n:04d}", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}})]
        index = 0
        if turn.text:
            out += [
                ("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": {"type": "text_delta", "text": turn.text}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
            index += 1
        for i, (name, args) in enumerate(turn.tools):
            out += [
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": f"toolu_{n:03d}{i:02d}", "name": name, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": {"type": "input_json_delta", "partial_json": json.dumps(args)}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
            index += 1
        out += [
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "tool_use" if turn.tools else "end_turn",
                                         "stop_sequence": None},
                               "usage": {"output_tokens": 20 + n}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        return out


class ResponsesServer(ScriptedServer):
    """POST /v1/responses with stream: true, answered as Responses API server-sent events."""

    path = "/v1/responses"

    def events(self, turn: Turn, request: dict) -> list[tuple[str, dict]]:
        n = len(self.requests)
        rid = f"resp_{n:04d}"
        response = {"id": rid, "object": "response", "status": "in_progress",
                    "model": request.get("model", "gpt-test"), "output": []}
        out = [("response.created", {"type": "response.created", "response": response})]
        items = []
        if turn.text:
            items.append({"type": "message", "id": f"msg_{n:04d}", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": turn.text, "annotations": []}]})
        for i, (name, args) in enumerate(turn.tools):
            items.append({"type": "function_call", "id": f"fc_{n:03d}{i:02d}", "call_id": f"call_{n:03d}{i:02d}",
                          "name": name, "arguments": json.dumps(args), "status": "completed"})
        for i, item in enumerate(items):
            out.append(("response.output_item.added", {"type": "response.output_item.added",
                                                       "output_index": i, "item": item}))
            out.append(("response.output_item.done", {"type": "response.output_item.done",
                                                      "output_index": i, "item": item}))
        done = {**response, "status": "completed", "output": items,
                "usage": {"input_tokens": 1000 + n, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": 50 + n, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": 1050 + 2 * n}}
        out.append(("response.completed", {"type": "response.completed", "response": done}))
        return out
