"""cocode/style.py, the one renderer: when to colour (--color, NO_COLOR, a terminal,
TERM=dumb), tables aligned the same with and without colour, cells capped with
"…" by columns (wide characters take two), notes under a column, no trailing
spaces; and no escape sequence when not colouring."""

from __future__ import annotations

import re

import pytest

from cocode import style
from cocode.core.views import JobView, RunView
from cocode import render

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("mode,tty,env,want", [
    ("auto", True, {}, True),
    ("auto", False, {}, False),
    ("auto", True, {"NO_COLOR": "1"}, False),
    ("auto", True, {"NO_COLOR": ""}, True),  # no-color.org: set and non-empty
    ("auto", True, {"TERM": "dumb"}, False),
    ("always", False, {"NO_COLOR": "1"}, True),
    ("never", True, {}, False),
])
def test_wants_colour(mode, tty, env, want):
    assert style.wants_colour(mode, tty, env) is want


def test_table_aligns_caps_and_notes_without_trailing_spaces():
    rows = [["j1", "a title that is much too long", "demo", 12], ["j1", "", "demo-fail", 3]]
    out = style.table(["JOB", "TITLE", "AGENT", "N"], rows, False, right=("N",),
                      max_widths={"TITLE": 10}, notes={1: "└ why"}, note_column="AGENT")
    assert out.splitlines() == [
        "JOB TITLE      AGENT      N",
        "j1  a title t… demo      12",
        "j1             demo-fail  3",
        "               └ why",
    ]
    assert "\x1b" not in out
    headless = style.table(["JOB", "TITLE", "AGENT", "N"], rows, False, right=("N",), max_widths={"TITLE": 10},
                           header=False)
    assert headless.splitlines() == out.splitlines()[1:3]


def test_colour_changes_no_character_and_wide_text_aligns():
    rows = [["日本語のタイトル", "ready"], ["ascii", "failed"]]
    styles = [["", "green"], ["bold", "red"]]
    plain = style.table(["TITLE", "STATE"], rows, False, styles, max_widths={"TITLE": 9})
    coloured = style.table(["TITLE", "STATE"], rows, True, styles, max_widths={"TITLE": 9})
    assert ANSI.sub("", coloured) == plain
    assert "\x1b[32mready\x1b[0m" in coloured and "\x1b[1;31m" not in coloured
    assert plain.splitlines()[1] == "日本語の… ready"  # 8 columns of text + "…" = the cap
    assert [style.cells(line) for line in plain.splitlines()[:2]] == [15, 15]


def test_a_narrow_terminal_shrinks_the_capped_column_first():
    rows = [["j1", "x" * 40, "demo"]]
    out = style.table(["JOB", "TITLE", "AGENT"], rows, False, max_widths={"TITLE": 40}, width=30)
    assert max(style.cells(line) for line in out.splitlines()) <= 30 and "demo" in out


def test_paint():
    assert style.paint("x |", "cyan", False) == "x |"
    assert style.paint("x |", "cyan", True) == "\x1b[36mx |\x1b[0m"


def test_status_table_keeps_the_runs_facts():
    job = JobView(job="ab12cd", seq=1, ts=0.0, title="Fix it", base_sha="0" * 40,
                  agents=["demo", "demo-fail"], runs={
        "demo": RunView(agent="demo", state="ready", commits=2, ready_commit="f" * 40,
                        started_at=100.0, ended_at=101.5),
        "demo-fail": RunView(agent="demo-fail", state="failed", reason="exit_1", detail="no test file"),
    })
    lines = render.status_table([job], titles=True, diffstats={("ab12cd", "demo"): (3, 1, 2)}).splitlines()
    assert lines[0].split() == ["JOB", "TITLE", "AGENT", "STATE", "REASON", "COMMITS", "DIFF", "CHECKS",
                                "TIME", "READY"]
    assert re.fullmatch(r"ab12cd +Fix it +demo +ready +- +2 +\+3/-1 +- +1\.5s +f{12}", lines[1]), lines
    assert re.fullmatch(r"ab12cd +demo-fail +failed +exit_1 +0 +- +- +- +-", lines[2]), lines
    assert lines[3].strip() == "└ no test file" and lines[3].index("└") == lines[0].index("STATE")
    untitled = render.status_table([job]).splitlines()
    assert untitled[0].split()[:2] == ["JOB", "AGENT"] and "Fix it" not in "\n".join(untitled)
