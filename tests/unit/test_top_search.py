"""Search within a pane: the pure finder and stepping (cocode/top/search.py)."""

from __future__ import annotations

from cocode.top.search import Match, after, find


def test_find_every_occurrence_numbered_from_the_first_kept_line():
    lines = ["error: one", "fine", "an error and another error"]
    assert find(lines, "error", first=100) == [Match(100, 0, 5), Match(102, 3, 8), Match(102, 21, 26)]


def test_lowercase_query_ignores_case_a_capital_makes_it_exact():
    lines = ["Error", "error", "ERROR"]
    assert [m.line for m in find(lines, "error")] == [0, 1, 2]
    assert [m.line for m in find(lines, "Error")] == [0]


def test_matches_do_not_overlap_and_empty_query_finds_nothing():
    assert find(["aaaa"], "aa") == [Match(0, 0, 2), Match(0, 2, 4)]
    assert find(["anything"], "") == []
    assert find([], "x") == []


def test_n_and_N_move_from_a_position_and_wrap():
    ms = [Match(1, 0, 1), Match(1, 5, 6), Match(4, 2, 3)]
    assert after(ms, None, True) == 0
    assert after(ms, None, False) == 2
    assert after(ms, (1, 0), True) == 1
    assert after(ms, (1, 5), True) == 2
    assert after(ms, (4, 2), True) == 0  # wraps to the first
    assert after(ms, (1, 0), False) == 2  # wraps to the last
    assert after(ms, (3, 0), False) == 1  # a position between matches
    assert after([], (1, 0), True) == -1
