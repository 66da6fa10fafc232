"""How long a run may take (ADR-005 §4), as pure functions, and how long it is
given to stop: ADR-005's two SIGTERM-to-SIGKILL graces, the one place they are written.

Base = the agent's timeout or `agent_timeout`; medium complexity doubles it and
complex triples it; a repository-size multiplier applies; the result is capped at
the 60-minute hard limit. While a run works, its budget grows to the next level as
its diff passes 100 and then 500 changed lines.
"""

from __future__ import annotations

HARD_LIMIT_S = 3600
# ADR-005 "Agent exceeds timeout" (cancel stops a run the same way): SIGTERM the
# process group, wait 5 s for cleanup, SIGKILL.
CANCEL_GRACE_S = 5.0
# ADR-005 "Agent exceeds memory limit": SIGTERM, wait 10 s for a graceful shutdown, SIGKILL.
MEMORY_GRACE_S = 10.0
LEVELS = {"simple": 1, "medium": 2, "complex": 3}
LINES_FOR_LEVEL = ((500, "complex"), (100, "medium"))
COMPLEXITIES = tuple(LEVELS)


def size_multiplier(worktree_mb: float) -> float:
    """Bigger repositories take longer to read, build and test."""
    if worktree_mb <= 100:
        return 1.0
    if worktree_mb <= 1000:
        return 1.25
    return 1.5


def level_for_lines(complexity: str, changed_lines: int) -> str:
    """The complexity a run has grown into: never lower than it started."""
    for lines, level in LINES_FOR_LEVEL:
        if changed_lines > lines and LEVELS[level] > LEVELS[complexity]:
            return level
    return complexity


def run_timeout(base_s: int, complexity: str = "simple", worktree_mb: float = 0.0,
                changed_lines: int = 0) -> int:
    level = level_for_lines(complexity, changed_lines)
    return int(min(HARD_LIMIT_S, base_s * LEVELS[level] * size_multiplier(worktree_mb)))
