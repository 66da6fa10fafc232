"""The one line printer (cocode.logs.printer) that `tail`, `logs` and job watching share."""

from __future__ import annotations

from cocode.logs.printer import LONG_LINE, Printer, safe_text


def printer(agents, colour=False, prefixed=None):
    out: list[str] = []
    return Printer(out.append, colour, agents, prefixed=prefixed), out


def test_one_agent_is_bare_several_are_prefixed_to_one_width():
    one, out1 = printer(["claude"])
    one.chunk("claude", b"a\nb\n")
    assert out1 == ["a", "b"]

    several, out2 = printer(["claude", "ai"])
    several.chunk("ai", b"x\n")
    several.chunk("claude", b"y\n")
    assert out2 == ["ai     | x", "claude | y"]


def test_watching_prefixes_even_one_agent_and_agents_named_late():
    p, out = printer(["codex"], prefixed=True)
    p.chunk("codex", b"hi\n")
    p.line("codex", "-- ready")
    p.chunk("other", b"late\n")  # not known when the job view was read
    assert out == ["codex | hi", "codex | -- ready", "other | late"]


def test_lines_wait_for_their_end_then_flush_prints_the_rest():
    p, out = printer(["a", "b"])
    p.chunk("a", b"hel")
    p.chunk("b", b"one\ntw")
    p.chunk("a", b"lo\nwor")
    assert out == ["b | one", "a | hello"]
    p.flush("a")
    assert out[-1] == "a | wor" and "a" not in p.partial
    p.flush()
    assert out[-1] == "b | tw" and p.partial == {}
    p.flush()
    assert len(out) == 4  # nothing left to print twice


def test_a_line_without_end_is_shown_in_pieces_not_held():
    p, out = printer(["a"])
    p.chunk("a", b"x" * (LONG_LINE + 1))
    assert out == ["x" * (LONG_LINE + 1)] and p.partial["a"] == b""


def test_colour_only_when_asked():
    p, out = printer(["a", "b"], colour=True)
    p.chunk("b", b"z\n")
    assert out == ["\x1b[33mb |\x1b[0m z"]
    plain, out2 = printer(["a", "b"], colour=False)
    plain.chunk("b", b"z\n")
    assert "\x1b" not in out2[0]


def test_safe_text_shows_control_bytes_and_bad_utf8():
    assert safe_text("grün\tok".encode()) == "grün\tok"
    assert safe_text(b"a\x00b\x1b[31mred") == "a\\x00b\\x1b[31mred"
    assert safe_text(b"bad \xff byte") == "bad \ufffd byte"
    assert safe_text(b"10%\r50%\r100%\r") == "100%"
