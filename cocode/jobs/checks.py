"""Which checks are due on which runs, when one may start, and what its output
means: pure functions over the folded state and the check's own output, so the
checks service holds no rule of its own and every rule has a unit test.

Sharing the concurrency cap (max_concurrent_agents) with agents:
- agents first: an extra check never starts while a run waits to be dispatched;
- one check always may run (the checks lane), so a queue of agents delays checks
  but never stops them: agents and checks together stay within cap + 1;
- the scheduler counts every running check but that first one against its cap
  (cocode.jobs.dispatch.plan), so checks never take an agent's slot for long:
  each ends within its timeout, and no new extra one starts while agents wait.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from cocode.core.views import CheckView, JobView, RunView, State

MAX_INTERRUPTIONS = 2  # a check cut off by a crash reruns once at the same commit


class Due(NamedTuple):
    job: str
    agent: str
    name: str
    commit: str
    worktree: str


def target_commit(run: RunView, branch_head: str | None) -> str | None:
    """The commit a run's checks test: its branch's head once it has a ready commit
    (a commit after `ready`, e.g. after `cocode say`, reruns them)."""
    if not run.ready_commit:
        return None
    return branch_head or run.head or run.ready_commit


def due(state: State, names: list[str], heads: dict[tuple[str, str], str | None]) -> list[Due]:
    """Checks to run now: never run at the run's target commit, asked for again by
    `cocode check`, or cut off by a crash (once). `heads` maps (job, agent) to its
    branch head as read now; runs missing from it use the fold's idea of the head."""
    out: list[Due] = []
    if not names:
        return out
    for job in state.jobs.values():
        for run in job.runs.values():
            if not run.ready_commit:
                continue
            commit = target_commit(run, heads.get((job.job, run.agent)))
            automatic = run.state == "ready" and not run.cancel_requested
            for name in names:
                c = run.checks.get(name)
                asked = max(run.check_requests.get(name, 0), run.check_requests.get("", 0))
                if c is not None and c.status == "running":
                    continue
                if asked and (c is None or asked > c.started_seq):
                    out.append(Due(job.job, run.agent, name, commit, run.worktree))
                elif not automatic or (c is not None and c.status == "cancelled"):
                    continue  # a cancelled check runs again only when asked for (`cocode check`)
                elif c is None or c.commit != commit:
                    out.append(Due(job.job, run.agent, name, commit, run.worktree))
                elif c.status == "interrupted" and c.interruptions < MAX_INTERRUPTIONS:
                    out.append(Due(job.job, run.agent, name, commit, run.worktree))
    return out


def may_start(running_checks: int, live_agents: int, queued_agents: int, cap: int) -> bool:
    """The sharing rule in the module docstring, for one more check."""
    if running_checks == 0:
        return True
    return queued_agents == 0 and live_agents + running_checks <= cap


def stale(state: State, host: str, mine: set[tuple[str, str, str]]) -> list[tuple[str, str, CheckView]]:
    """Checks the log says run on this host that no process of ours runs: a checks
    service died under them. They are killed and recorded interrupted (then rerun)."""
    out = []
    for job in state.jobs.values():
        for run in job.runs.values():
            for c in run.checks.values():
                if c.status == "running" and c.host in ("", host) and (job.job, run.agent, c.name) not in mine:
                    out.append((job.job, run.agent, c))
    return out


# -- what the output says ------------------------------------------------------------------

_COUNT = re.compile(r"(\d+)\s+(passed|failed|errors?|error|failures?|ok|tests?)\b", re.I)


class Counts(NamedTuple):
    passed: int | None
    failed: int | None
    summary: str


def from_last_line(text: str) -> Counts:
    """pytest's "3 passed, 1 failed in 0.1s", unittest's "Ran 4 tests ... FAILED
    (failures=1)" and the like: counts where the last lines say them."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return Counts(None, None, "")
    summary = lines[-1].strip("= ")[:200]
    passed = failed = None
    for line in reversed(lines[-5:]):
        found = _COUNT.findall(line)
        m = re.search(r"failures=(\d+)", line)
        if not found and not m:
            continue
        for n, word in found:
            w = word.lower()
            if w in ("passed", "ok"):
                passed = (passed or 0) + int(n)
            elif w.startswith(("fail", "error")):
                failed = (failed or 0) + int(n)
        if m:
            failed = int(m.group(1)) + int((re.search(r"errors=(\d+)", line) or [0, 0])[1])
        ran = re.search(r"Ran (\d+) tests?", text)
        if ran and passed is None:
            passed = int(ran.group(1)) - (failed or 0)
        summary = line.strip("= ")[:200]
        break
    return Counts(passed, 0 if passed is not None and failed is None else failed, summary)


def from_junit(path: Path) -> Counts | None:
    """Totals from a JUnit XML file the check wrote; None if there is none or it is unreadable."""
    import xml.etree.ElementTree as ET  # here: the checks service starts without an XML parser

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        return None
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    passed = total - bad - skipped
    return Counts(passed, bad, f"{passed} passed, {bad} failed" + (f", {skipped} skipped" if skipped else "")
                  + " (JUnit XML)")


def status_for(exit_code: int | None, timed_out: bool, counts: Counts) -> str:
    if timed_out:
        return "timeout"
    if exit_code == 0 and not counts.failed:
        return "passed"
    return "failed"


def settled(job: JobView, names: list[str]) -> bool:
    """Every ready run of the job has a result for each check at its head (none
    running): what `submit --wait` and the demo wait for after the runs end."""
    for run in job.runs.values():
        if run.state != "ready" or not run.ready_commit:
            continue
        for name in names:
            c = run.checks.get(name)
            if c is None or c.status == "running":
                return False
            if c.commit != target_commit(run, None) and c.status != "cancelled":
                return False
    return True
