"""logs/formats.py and logs/structured.py: a CLI's JSON lines made readable, the facts
they carry, and bad input (not JSON, unknown types, a 20 MB line, binary) shown, never
dropped. The sample lines are shaped like the real CLIs' (claude 2.1.332, codex 0.171.0)."""

from __future__ import annotations

import json
import os

from cocode.core import events as ev
from cocode.config import Price
from cocode.logs import formats, redact
from cocode.logs.structured import RawFile, Structured, raw_files, raw_path

TOKEN = "ghp_" + "Q7" * 18


def lines(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


CLAUDE = lines(
    {"type": "system", "subtype": "init", "session_id": "s-1", "model": "claude-x", "tools": ["Bash"]},
    {"type": "assistant", "message": {"id": "m1", "model": "claude-x", "content": [
        {"type": "text", "text": "Let me look."}], "usage": {"input_tokens": 100, "output_tokens": 0}}},
    {"type": "assistant", "message": {"id": "m1", "model": "claude-x", "content": [
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}],
        "usage": {"input_tokens": 100, "output_tokens": 0}}},
    {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "3 passed\nin 0.1s", "is_error": False}]}},
    {"type": "assistant", "message": {"id": "m2", "content": [
        {"type": "tool_use", "id": "t2", "name": "Edit", "input": {"file_path": "src/x.py", "old_string": "a"}}],
        "usage": {"input_tokens": 120, "output_tokens": 0}}},
    {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "no such file"}],
         "is_error": True}]}},
    {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2, "result": "Fixed it.",
     "total_cost_usd": 0.0123, "usage": {"input_tokens": 220, "output_tokens": 40, "cache_read_input_tokens": 5}},
)


def test_claude_stream_json_reads_as_lines_and_facts():
    f = formats.Formatter("claude-stream-json")
    out = f.feed(CLAUDE).decode().splitlines()
    assert out == [
        "● claude session s-1 (claude-x)",
        "Let me look.",
        "Bash: pytest -q",
        "  ↳ 3 passed  (+1 lines)",
        "Edit: src/x.py",
        "  ✗ no such file",
        "✓ done: 2 turns, 225 in / 40 out tokens, $0.0123",
    ]
    facts = f.facts
    assert (facts.session_id, facts.model, facts.tool_calls, facts.cost_usd) == ("s-1", "claude-x", 2, 0.0123)
    assert (facts.input_tokens, facts.cached_input_tokens, facts.output_tokens) == (220, 5, 40)
    assert facts.final_text == "Fixed it." and facts.error == ""


def test_claude_error_result_is_marked_and_kept_as_the_reason():
    f = formats.Formatter("claude-stream-json")
    out = f.feed(lines({"type": "result", "subtype": "success", "is_error": True,
                        "result": "API Error: stream_truncated", "num_turns": 1})).decode()
    assert out.startswith("✗ API Error: stream_truncated")
    assert f.facts.error == "API Error: stream_truncated"


CODEX = lines(
    {"type": "thread.started", "thread_id": "th-9"},
    {"type": "turn.started"},
    {"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": "Editing."}},
    {"type": "item.started", "item": {"id": "i1", "type": "command_execution",
                                      "command": "/bin/bash -lc 'pytest -q'", "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "i1", "type": "command_execution", "command": "/bin/bash -lc 'pytest -q'",
                                        "aggregated_output": "1 failed\n", "exit_code": 1, "status": "failed"}},
    {"type": "item.completed", "item": {"id": "i2", "type": "file_change",
                                        "changes": [{"path": "a.py", "kind": "update"}]}},
    {"type": "turn.completed", "usage": {"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 50}},
    {"type": "turn.failed", "error": {"message": "stream disconnected before completion"}},
)


def test_codex_json_reads_as_lines_and_facts():
    f = formats.Formatter("codex-json")
    out = f.feed(CODEX).decode().splitlines()
    assert out == [
        "● codex session th-9",
        "Editing.",
        "Shell: pytest -q",
        "  ✗ 1 failed (exit 1)",
        "Edit: a.py",
        "· turn: 1000 in / 50 out tokens so far",
        "✗ stream disconnected before completion",
    ]
    facts = f.facts
    assert (facts.session_id, facts.tool_calls, facts.input_tokens, facts.cached_input_tokens) == ("th-9", 2, 800, 200)
    assert facts.cost_usd is None and facts.error == "stream disconnected before completion"
    # Codex gives tokens only: config prices (by model, else agent name) give the cost.
    events = formats.to_events("j", "codex", 1, facts, {"codex": Price(input=1.0, cached_input=0.5, output=10.0)},
                               with_session=True)
    assert [e.type for e in events] == ["agent_session", "run_usage"]
    assert events[1].cost_usd == (800 * 1.0 + 200 * 0.5 + 50 * 10.0) / 1e6


def test_unknown_and_malformed_lines_pass_through():
    f = formats.Formatter("claude-stream-json")
    odd = [b"plain text from a hook", b'{"type": "brand_new_kind", "x": 1}', b"[1, 2, 3]", b'{"type": "assistant"',
           b'{"type": "assistant", "message": 5}', b"42", b'{"type": "result", "num_turns": "many"}',
           b"[" * 5000 + b"]" * 5000]
    out = f.feed(b"\n".join(odd) + b"\n").decode().splitlines()
    assert out == [line.decode() for line in odd]
    # Odd shapes of known types still give a line each.
    weird = b'{"type": "user", "message": {"content": [{"type": "tool_result", "content": {"deep": [1]}}]}}\n'
    assert f.feed(weird) == "  ↳ {'deep': [1]}\n".encode()


def test_split_reads_give_the_same_lines():
    whole = formats.Formatter("claude-stream-json").feed(CLAUDE)
    f = formats.Formatter("claude-stream-json")
    pieces = b"".join(f.feed(CLAUDE[i:i + 7]) for i in range(0, len(CLAUDE), 7)) + f.close()
    assert pieces == whole


def test_a_20_mb_line_is_cut_with_its_size_and_the_next_line_survives():
    f = formats.Formatter("codex-json")
    line = b'{"type": "item.completed", "item": {"type": "agent_message", "text": "' + b"x" * (20 * 2**20) + b'"}}\n'
    data = line + lines({"type": "thread.started", "thread_id": "after"})
    out = bytearray()
    for i in range(0, len(data), 4096):
        out += f.feed(data[i:i + 4096])
        assert len(f.buf) <= formats.MAX_LINE + 4096  # never holds the whole line
    text = out.decode()
    assert "a 21.0 MB line was cut here; cocode logs --raw has it whole" in text
    assert len(out) < 10_000
    assert text.endswith("● codex session after\n")


def test_binary_output_becomes_readable_text():
    f = formats.Formatter("claude-stream-json")
    blob = bytes(range(256)) * 4
    out = f.feed(blob + b"\n") + f.close()
    assert out and "\ufffd" in out.decode()


def test_structured_keeps_raw_bytes_and_reports_facts(tmp_path):
    """The shipper redacts a structured stdout once: the raw file and the readable
    lines both come from the redacted bytes; a \\u escape gets a second look."""
    path = raw_path(tmp_path / "raw", "j1", "claude", 2)
    got: list = []
    s = Structured("claude-stream-json", RawFile(path, 1 << 20), "j1", "claude", 2, {})
    s.on_events = got.extend
    redactor = redact.Redactor()
    secret = lines({"type": "user", "message": {"content": [{"type": "tool_result", "content": f"T={TOKEN}"}]}})
    escaped = TOKEN[:3] + "\\u005f" + TOKEN[4:]  # ghp\u005f...: JSON for ghp_...
    hidden = b'{"type": "assistant", "message": {"id": "m9", "content": [{"type": "text", "text": "' + \
        escaped.encode() + b'"}]}}\n'
    data = CLAUDE + secret + hidden
    readable = s.feed(redactor.feed(data[:200])) + s.feed(redactor.feed(data[200:]) + redactor.close()) + s.finish()
    s.close()
    raw = path.read_bytes()
    assert TOKEN.encode() not in raw and b"[REDACTED:github-token]" in raw
    assert json.loads(raw.splitlines()[0])["session_id"] == "s-1"  # the original JSON lines
    assert b"Bash: pytest -q" in readable and b"[REDACTED:github-token]" in readable
    assert TOKEN.encode() not in readable  # the escaped one too
    sessions = [e for e in got if isinstance(e, ev.AgentSession)]
    usage = [e for e in got if isinstance(e, ev.RunUsage)]
    assert [e.session_id for e in sessions] == ["s-1"]
    assert usage[-1].cost_usd == 0.0123 and usage[-1].attempt == 2 and usage[-1].tool_calls == 2
    assert raw_files(tmp_path / "raw", "j1", "claude") == [path]


def test_raw_file_is_capped(tmp_path):
    path = tmp_path / "r.raw"
    raw = RawFile(path, 10_000)
    for _ in range(10):
        raw.write(b"y" * 3000 + b"\n")
    raw.close()
    assert os.path.getsize(path) < 10_100
    assert path.read_bytes().endswith(b"[cocode: raw output cut at its size limit]\n")
