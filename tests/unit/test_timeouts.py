"""A run's time budget (cocode.jobs.timeouts, ADR-005 §4), pure: the base, the
complexity levels, the repository-size multiplier, the hard limit, and growth with
the diff. tests/system/test_jobs.py sees the same numbers on real runs."""

from __future__ import annotations

import pytest

from cocode.jobs import timeouts as to


def test_complexity_multiplies_the_base():
    assert [to.run_timeout(600, c) for c in to.COMPLEXITIES] == [600, 1200, 1800]
    assert to.COMPLEXITIES == ("simple", "medium", "complex")


@pytest.mark.parametrize("mb, factor", [(0, 1.0), (100, 1.0), (100.5, 1.25), (1000, 1.25), (1000.5, 1.5), (1e6, 1.5)])
def test_bigger_repositories_get_longer(mb, factor):
    assert to.size_multiplier(mb) == factor
    assert to.run_timeout(800, "simple", mb) == int(800 * factor)


def test_the_hard_limit_caps_every_budget():
    assert to.HARD_LIMIT_S == 3600
    assert to.run_timeout(1800, "complex") == 3600
    assert to.run_timeout(3600, "complex", 5000, 10_000) == 3600
    assert to.run_timeout(1199, "complex") == 3597  # just under: not capped


def test_a_growing_diff_raises_the_level_never_lowers_it():
    assert to.level_for_lines("simple", 100) == "simple"  # past 100, not at it
    assert to.level_for_lines("simple", 101) == "medium"
    assert to.level_for_lines("simple", 500) == "medium"
    assert to.level_for_lines("simple", 501) == "complex"
    assert to.level_for_lines("medium", 101) == "medium"
    assert to.level_for_lines("medium", 501) == "complex"
    assert to.level_for_lines("complex", 0) == "complex"
    assert [to.run_timeout(2, "simple", 0, n) for n in (0, 150, 600)] == [2, 4, 6]
    assert to.run_timeout(2, "medium", 0, 150) == 4  # already medium: no double growth


def test_fractions_of_a_second_are_dropped():
    assert to.run_timeout(7, "simple", 200) == 8  # 8.75 s
