"""Which run to pick: one comparable row per run, and the ranking that recommends
one, with the rule that chose it said in words. Pure: the rows are built from the
folded state and numbers the caller measured (diff sizes), so ranking is tested
without a repository.

The default order (config `rank_by`) is: all checks pass > fewer failures >
smaller diff > earlier ready. Only runs with a ready commit can be recommended;
the agent's name breaks a tie so the answer never depends on dict order.
"""

from __future__ import annotations

import msgspec

from cocode.core.views import RunView

RULE_WORDS = {
    "checks": "all checks pass",
    "failures": "fewer failures",
    "diff": "smaller diff",
    "ready": "earlier ready",
}


class Row(msgspec.Struct):
    agent: str
    state: str
    reason: str | None = None
    commit: str | None = None
    checks: dict[str, str] = {}  # name -> status
    checks_ok: bool | None = None  # None: no check has a result yet
    passed: int | None = None
    failed: int | None = None
    failures: int = 0  # failing tests where counted, else failing checks
    added: int = 0
    removed: int = 0
    files: int = 0
    commits: int = 0
    ready_s: float | None = None  # from start to ready
    tokens: int | None = None
    cost_usd: float | None = None
    rank: int = 0  # 1 = recommended; 0 = cannot be recommended


def measured_head(base_sha: str, run: RunView) -> str | None:
    """The commit a run's diff is measured at (its ready commit, else its branch head),
    or None when it has none beyond the job's base: no diff to measure."""
    head = run.ready_commit or run.head
    return head if head and head != base_sha else None


def row(run: RunView, added: int = 0, removed: int = 0, files: int = 0) -> Row:
    statuses = {c.name: c.status for c in run.checks.values()}
    done = [c for c in run.checks.values() if c.status not in ("running", "interrupted")]
    passed = sum(c.passed or 0 for c in done) if any(c.passed is not None for c in done) else None
    failed = sum(c.failed or 0 for c in done) if any(c.failed is not None for c in done) else None
    failures = sum((c.failed or 1) if c.status != "passed" else (c.failed or 0) for c in done)
    u = run.usage  # run_usage events, summed over attempts (issue 9)
    tokens = u.input_tokens + u.cached_input_tokens + u.output_tokens
    ready_s = None
    if run.ready_at is not None and run.started_at is not None:
        ready_s = round(max(0.0, run.ready_at - run.started_at), 1)
    return Row(
        agent=run.agent, state=run.state, reason=run.reason, commit=run.ready_commit,
        checks=statuses, checks_ok=all(c.status == "passed" for c in done) if done else None,
        passed=passed, failed=failed, failures=failures, added=added, removed=removed,
        files=files, commits=run.commits, ready_s=ready_s, tokens=tokens or None, cost_usd=u.cost_usd,
    )


def _key(r: Row, order: list[str]) -> tuple:
    parts = {
        "checks": 0 if r.checks_ok else 1,
        "failures": r.failures,
        "diff": r.added + r.removed,
        "ready": r.ready_s if r.ready_s is not None else float("inf"),
    }
    return tuple(parts[k] for k in order) + (r.agent,)


def rank(rows: list[Row], order: list[str]) -> tuple[list[Row], str]:
    """The rows best first (ready ones ranked 1.., the others after, unranked), and
    one sentence saying which run is recommended and why."""
    candidates = sorted((r for r in rows if r.commit and r.state == "ready"), key=lambda r: _key(r, order))
    chosen = {r.agent for r in candidates}
    others = sorted((r for r in rows if r.agent not in chosen), key=lambda r: r.agent)
    for i, r in enumerate(candidates, 1):
        r.rank = i
    rule = " > ".join(RULE_WORDS[k] for k in order)
    if not candidates:
        return others, f"no run is ready: nothing to recommend (rule: {rule})"
    best = candidates[0]
    if len(candidates) == 1:
        why = "the only ready run"
    else:
        why = _decided_by(best, candidates[1], order)
    return candidates + others, f"recommended: {best.agent} ({why}; rule: {rule})"


def _decided_by(best: Row, second: Row, order: list[str]) -> str:
    kb, ks = _key(best, order), _key(second, order)
    for i, k in enumerate(order):
        if kb[i] != ks[i]:
            return {
                "checks": f"its checks all pass, {second.agent}'s do not",
                "failures": f"{best.failures} failure(s) against {second.failures} for {second.agent}",
                "diff": f"{best.added + best.removed} changed lines against {second.added + second.removed} "
                        f"for {second.agent}",
                "ready": f"ready sooner than {second.agent}",
            }[k]
    return f"tied with {second.agent} on every key; first by name"
