"""The test suite's own conventions, checked so a new test cannot quietly break them:
every test module in tests/unit or tests/system with a unique name, helpers imported
from the support package's face (never from conftest, another test module or a module
inside support/), and no fixed sleep in a test without a word on why (a pause must
never stand in for "nothing happened")."""

from __future__ import annotations

import ast
import re

from support import ROOT

TESTS = ROOT / "tests"


def _test_modules() -> list:
    return sorted(p for p in TESTS.rglob("test_*.py") if "agents" not in p.relative_to(TESTS).parts)


def test_every_test_module_is_unit_or_system_with_a_unique_name():
    where = {p.relative_to(TESTS).parts[0] for p in _test_modules()}
    assert where <= {"unit", "system"}, f"test modules outside tests/unit and tests/system: {where}"
    names = [p.name for p in _test_modules()]
    assert len(names) == len(set(names)), "two test modules share a name (pytest imports them by basename)"


def test_helpers_come_from_support_only():
    for path in [*_test_modules(), *sorted((TESTS / "support").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for mod in mods:
                assert mod != "conftest" and not mod.startswith("test_"), \
                    f"{path.relative_to(ROOT)} imports {mod}: shared helpers belong in support/"
                assert not mod.startswith("support."), \
                    f"{path.relative_to(ROOT)} imports {mod}: import from support, its public face"


def test_a_fixed_sleep_says_why():
    """`time.sleep(` in a test module needs `pacing` on its line: it paces an agent or
    lets time pass; waiting for something uses support.wait_until, and "nothing
    happened" is shown by an event that would have come after it."""
    bare = []
    for path in _test_modules():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\btime\.sleep\(", line) and "pacing" not in line:
                bare.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bare, "fixed sleeps without a reason:\n" + "\n".join(bare)
