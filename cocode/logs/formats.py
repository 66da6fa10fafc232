"""Agent output formats: a CLI's JSON lines made into lines a person reads, and the
facts they carry (session id, tokens, cost, tool calls) pulled out.

Pure, no I/O. One Formatter per run's stdout, fed the bytes as they come:

  feed(data) -> readable bytes for the complete lines in `data` (a partial line waits)
  close()    -> the rest, at the end of the stream
  facts      -> Facts, updated as lines go by; `changed` says whether the last
                feed or close moved them (the caller turns them into events)

Formats: `claude-stream-json` (claude -p --output-format stream-json --verbose) and
`codex-json` (codex exec --json). What each line becomes: assistant text as text,
each tool call one line (`Bash: pytest -q`, `Edit: src/x.py`), tool results
shortened under it (`  ↳ ...`), errors marked `✗`. A line that is not JSON, or a JSON
value of a type this module does not know, passes through as it was: never dropped.
A line longer than MAX_LINE is not held whole: its head is shown with its size.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import msgspec

from cocode.core import events as ev

MAX_LINE = 1024 * 1024  # a longer line is cut: its first HEAD bytes and its length are shown
HEAD = 2048
RESULT_CHARS = 200  # a tool result is shown as its first line, this long at most
TEXT_CHARS = 4000  # an assistant message longer than this is cut (its raw line is in --raw)


@dataclass
class Facts:
    """What a run's structured output has said so far (cumulative for the run)."""

    session_id: str = ""
    model: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # as the agent reported it; None when it reports tokens only
    tool_calls: int = 0
    turns: int = 0
    final_text: str = ""  # the agent's last words: its result, or its last message
    error: str = ""  # what the agent reported as going wrong, if anything


def _short(text: str, limit: int = RESULT_CHARS) -> str:
    lines = text.strip().splitlines()
    if not lines:
        return ""
    first = lines[0].strip()
    if len(first) > limit:
        first = first[: limit - 1] + "…"
    more = len(lines) - 1
    return f"{first}  (+{more} lines)" if more else first


def _tool_line(name: str, args: object) -> str:
    """`Bash: pytest -q`, `Edit: src/x.py`: a tool call as one line."""
    if not isinstance(args, dict):
        return f"{name}: {_short(str(args))}"
    for key in ("command", "cmd", "file_path", "path", "notebook_path", "pattern", "url", "query",
                "description", "prompt"):
        value = args.get(key)
        if isinstance(value, list):
            value = " ".join(map(str, value))
        if isinstance(value, str) and value:
            return f"{name}: {_short(value)}"
    return f"{name}: {_short(json.dumps(args, ensure_ascii=False))}" if args else name


def _unwrap_shell(command: str) -> str:
    """`/bin/bash -lc 'pytest -q'` -> `pytest -q`: codex shows its shell wrapper."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and argv[0].rsplit("/", 1)[-1] in ("bash", "sh", "zsh") and argv[1] in ("-c", "-lc"):
        return argv[2]
    return command


def _result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text")
    return "" if content is None else str(content)


_decode = msgspec.json.Decoder().decode


class Formatter:
    """One run's stdout in a structured format -> readable lines and Facts."""

    def __init__(self, fmt: str) -> None:
        self.render = {"claude-stream-json": self._claude, "codex-json": self._codex}[fmt]
        self.facts = Facts()
        self.changed = False
        self.buf = bytearray()
        self.skipping = 0  # bytes of an over-long line dropped so far (its head was shown)
        self.seen_messages: set[str] = set()

    # -- streaming -------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if self.skipping or len(self.buf) + len(data) > MAX_LINE:
            return self._feed_long(data)
        parts = data.split(b"\n")
        if self.buf:
            parts[0] = bytes(self.buf) + parts[0]
            self.buf.clear()
        self.buf += parts.pop()
        out: list[str] = []
        for line in parts:
            out.extend(self.line(line))
        return "".join(f"{s}\n" for s in out).encode("utf-8", errors="replace") if out else b""

    def _feed_long(self, data: bytes) -> bytes:
        """feed() for a line that grows past MAX_LINE: its head is shown, the rest skipped."""
        out: list[str] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            if self.skipping:
                self.skipping += len(piece)
                if nl >= 0:
                    out.append(f"[cocode: a {self.skipping / 1e6:.1f} MB line was cut here; "
                               f"cocode logs --raw has it whole]")
                    self.skipping = 0
            elif nl < 0:
                self.buf += piece
                if len(self.buf) > MAX_LINE:
                    head = bytes(self.buf[:HEAD]).decode("utf-8", errors="replace")
                    out.append(f"{head} …")
                    self.skipping = len(self.buf)
                    self.buf.clear()
            else:
                if self.buf:
                    self.buf += piece
                    line = bytes(self.buf)
                    self.buf.clear()
                else:
                    line = piece
                out.extend(self.line(line))
            if nl < 0:
                break
            start = nl + 1
        return "".join(f"{s}\n" for s in out).encode("utf-8", errors="replace")

    def close(self) -> bytes:
        out: list[str] = []
        if self.buf:
            out.extend(self.line(bytes(self.buf)))
            self.buf.clear()
        if self.skipping:
            out.append(f"[cocode: a {self.skipping / 1e6:.1f} MB line was cut here; cocode logs --raw has it whole]")
            self.skipping = 0
        return "".join(f"{s}\n" for s in out).encode("utf-8", errors="replace")

    def take_changed(self) -> bool:
        changed, self.changed = self.changed, False
        return changed

    def line(self, raw: bytes) -> list[str]:
        """One complete line (without its newline) -> zero or more readable lines."""
        if not raw.lstrip().startswith(b"{"):
            return [raw.decode("utf-8", errors="replace")] if raw.strip() else []
        try:
            obj = _decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            return [raw.decode("utf-8", errors="replace")]
        try:
            lines = self.render(obj)
        except Exception:  # a known type with an unexpected shape: shown as it came, never fatal
            lines = None
        return [raw.decode("utf-8", errors="replace")] if lines is None else lines

    # -- claude -p --output-format stream-json --verbose --------------------------------------

    def _claude(self, obj: dict) -> list[str] | None:
        kind = obj.get("type")
        f = self.facts
        if kind == "system":
            if obj.get("subtype") == "init":
                if obj.get("session_id") and obj["session_id"] != f.session_id:
                    f.session_id = obj["session_id"]
                    f.model = obj.get("model") or f.model
                    self.changed = True
                return [f"● claude session {f.session_id} ({obj.get('model', '?')})"]
            return [f"· {obj.get('subtype') or 'system'}"]
        if kind == "assistant":
            msg = obj["message"]
            out: list[str] = []
            mid = msg.get("id") or ""
            usage = msg.get("usage")
            if isinstance(usage, dict) and mid not in self.seen_messages:
                # One API message can arrive as several lines (a block each), same usage;
                # they come together, so a few recent ids are enough to remember.
                if len(self.seen_messages) > 1024:
                    self.seen_messages.clear()
                self.seen_messages.add(mid)
                f.turns += 1
                f.input_tokens += int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0)
                f.cached_input_tokens += int(usage.get("cache_read_input_tokens") or 0)
                f.output_tokens += int(usage.get("output_tokens") or 0)
                f.model = msg.get("model") or f.model
                self.changed = True
            for block in msg.get("content") or []:
                t = block.get("type")
                if t == "text" and block.get("text", "").strip():
                    body = block["text"].strip()
                    f.final_text = body
                    out.extend((body if len(body) <= TEXT_CHARS else body[:TEXT_CHARS] + " …").splitlines())
                elif t == "tool_use":
                    f.tool_calls += 1
                    self.changed = True
                    out.append(_tool_line(block.get("name", "?"), block.get("input")))
                elif t == "thinking" and block.get("thinking"):
                    out.append(f"(thinking) {_short(block['thinking'])}")
            return out
        if kind == "user":
            out = []
            content = obj["message"].get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    body = _short(_result_text(block.get("content"))) or "(no output)"
                    out.append(f"  ✗ {body}" if block.get("is_error") else f"  ↳ {body}")
            return out
        if kind == "result":
            usage = obj.get("usage") or {}
            if usage:  # the run's totals: they replace what was summed turn by turn
                f.input_tokens = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0)
                f.cached_input_tokens = int(usage.get("cache_read_input_tokens") or 0)
                f.output_tokens = int(usage.get("output_tokens") or 0)
            if obj.get("total_cost_usd") is not None:
                f.cost_usd = float(obj["total_cost_usd"])
            f.turns = int(obj.get("num_turns") or f.turns)
            self.changed = True
            text = str(obj.get("result") or "")
            cost = f", ${f.cost_usd:.4f}" if f.cost_usd is not None else ""
            summary = f"{f.turns} turns, {f.input_tokens + f.cached_input_tokens} in / {f.output_tokens} out tokens{cost}"
            if obj.get("is_error") or (obj.get("subtype") or "success") != "success":
                f.error = _short(text or str(obj.get("subtype")), 500)
                return [f"✗ {f.error}", f"· {summary}"]
            f.final_text = text.strip() or f.final_text
            return [f"✓ done: {summary}"]
        return None

    # -- codex exec --json -------------------------------------------------------------------

    def _codex(self, obj: dict) -> list[str] | None:
        kind = obj.get("type")
        f = self.facts
        if kind == "thread.started":
            f.session_id = str(obj.get("thread_id") or "")
            self.changed = True
            return [f"● codex session {f.session_id}"]
        if kind == "turn.started":
            return []
        if kind == "turn.completed":
            usage = obj.get("usage") or {}
            cached = int(usage.get("cached_input_tokens") or 0)
            f.input_tokens += int(usage.get("input_tokens") or 0) - cached
            f.cached_input_tokens += cached
            f.output_tokens += int(usage.get("output_tokens") or 0)
            f.turns += 1
            self.changed = True
            return [f"· turn: {f.input_tokens + f.cached_input_tokens} in / {f.output_tokens} out tokens so far"]
        if kind in ("turn.failed", "error"):
            err = obj.get("error") if kind == "turn.failed" else obj
            f.error = _short(str((err or {}).get("message") or kind), 500)
            self.changed = True
            return [f"✗ {f.error}"]
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._codex_item(kind, obj["item"])
        return None

    def _codex_item(self, kind: str, item: dict) -> list[str]:
        t = item.get("type")
        f = self.facts
        done = kind == "item.completed"
        if t == "command_execution":
            out = []
            if kind == "item.started" or (done and item.get("id") not in self.seen_messages):
                self.seen_messages.add(item.get("id"))
                f.tool_calls += 1
                self.changed = True
                out.append(_tool_line("Shell", {"command": _unwrap_shell(str(item.get("command", "")))}))
            if done:
                body = _short(str(item.get("aggregated_output") or "")) or "(no output)"
                code = item.get("exit_code")
                failed = item.get("status") == "failed" or (code not in (None, 0))
                out.append(f"  ✗ {body} (exit {code})" if failed else f"  ↳ {body}")
            return out
        if not done:  # the other items are shown once, complete
            return []
        if t == "agent_message":
            f.final_text = str(item.get("text") or "").strip()
            return f.final_text.splitlines() or []
        if t == "reasoning":
            return [f"(thinking) {_short(str(item.get('text') or ''))}"]
        if t == "file_change":
            f.tool_calls += 1
            self.changed = True
            paths = ", ".join(str(c.get("path")) for c in item.get("changes") or [])
            return [f"Edit: {paths}"]
        if t == "mcp_tool_call":
            f.tool_calls += 1
            self.changed = True
            return [f"MCP: {item.get('server')}.{item.get('tool')}"]
        if t == "web_search":
            f.tool_calls += 1
            self.changed = True
            return [f"Search: {_short(str(item.get('query') or ''))}"]
        if t == "todo_list":
            return [f"Plan: {len(item.get('items') or [])} steps"]
        if t == "error":
            return [f"✗ {_short(str(item.get('message') or ''), 500)}"]
        return [f"· {t}"]


def cost_of(facts: Facts, price) -> float | None:
    """Dollars for `facts`' tokens at `price` (config.Price), when the agent gave no cost."""
    if facts.cost_usd is not None:
        return facts.cost_usd
    if price is None:
        return None
    return (facts.input_tokens * price.input + facts.cached_input_tokens * price.cached_input
            + facts.output_tokens * price.output) / 1e6


def price_for(prices, model: str, agent: str):
    """Config prices for a run: by its model, else by its agent's name (claude-2 of
    claude:3 takes claude's)."""
    prices = prices or {}
    base = agent.rsplit("-", 1)[0] if agent.rsplit("-", 1)[-1].isdigit() else agent
    return prices.get(model) or prices.get(agent) or prices.get(base)


def to_events(job: str, agent: str, attempt: int, facts: Facts, prices, with_session: bool) -> list:
    """The facts as events: the session (when new) and the attempt's usage so far.
    Prices (config `prices:`) are looked up by the model, then by the agent's name."""
    out: list = []
    if with_session and facts.session_id:
        out.append(ev.AgentSession(job=job, agent=agent, attempt=attempt, session_id=facts.session_id,
                                   model=facts.model))
    if facts.turns or facts.tool_calls or facts.input_tokens or facts.output_tokens:
        price = price_for(prices, facts.model, agent)
        out.append(ev.RunUsage(
            job=job, agent=agent, attempt=attempt, input_tokens=facts.input_tokens,
            cached_input_tokens=facts.cached_input_tokens, output_tokens=facts.output_tokens,
            cost_usd=cost_of(facts, price), tool_calls=facts.tool_calls, turns=facts.turns,
        ))
    return out
