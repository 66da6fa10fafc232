"""The one way a test waits: `wait_until` a condition (it raises, saying what it
waited for and what it last saw), or `wait_none` until nothing is left."""

from __future__ import annotations

import time

from .procs import describe


def wait_until(cond, timeout: float, *, what: str, interval: float = 0.1):
    """cond()'s first truthy value within `timeout` seconds; past it, AssertionError
    naming `what` was awaited and the last value cond() returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last saw {_short(value)}")
        time.sleep(interval)


def wait_none(find, timeout: float, *, what: str, interval: float = 0.1) -> None:
    """Wait until find() returns nothing (no process left, no file...); past `timeout`,
    AssertionError naming `what` and what find() still returned."""
    left = []

    def gone() -> bool:
        nonlocal left
        left = find()
        return not left

    try:
        wait_until(gone, timeout, what=what, interval=interval)
    except AssertionError as err:
        shown = [describe(p) for p in left] if isinstance(left, list) else left
        raise AssertionError(f"{err}; still there: {_short(shown)}") from None


def _short(value, limit: int = 800) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
