"""Driving a running cocode's jobs as a user does: submit, status, wait for a job or
a run, read events, make the scheduler decide again; and a folded state of queued
jobs for pure scheduler tests."""

from __future__ import annotations

import json
from pathlib import Path

from cocode import client, render
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from cocode.paths import Paths

from .cli import cocode
from .waiting import wait_until

ISSUE = "Fix the greeting\n\nThe greeting says Helo; it should say Hello."
SECRET = "x-secret-value-7731"  # in the environment `cocode up` inherits; never passed on
PASSED = "passed-value-7731"  # listed in env_passthrough: passed on


def ps(repo: Path) -> dict[str, dict]:
    """`cocode ps --json`, by service name."""
    proc = cocode(repo, "ps", "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def service_pid(repo: Path, name: str) -> int:
    """The service's pid as `cocode ps` shows it, 0 while it is not ready."""
    row = ps(repo)[name]
    return row["pid"] if row["state"] == "ready" else 0


def submit(repo: Path, *args: str, text: str | None = ISSUE) -> str:
    """`cocode submit --json` (args as on the command line, --agent NAME...); the job id."""
    source = ("--text", text) if text is not None and not {"--issue", "--issue-file"} & set(args) else ()
    proc = cocode(repo, "submit", "--json", *source, *args, timeout=30)
    assert proc.returncode == 0, f"submit failed ({proc.returncode}): {proc.stderr}"
    out = json.loads(proc.stdout)
    assert [r["agent"] for r in out["runs"]] == [args[i + 1] for i, a in enumerate(args) if a == "--agent"]
    return out["job"]


def agents(*names: str) -> list[str]:
    """--agent NAME for each name, for submit()."""
    return [a for name in names for a in ("--agent", name)]


def status(repo: Path, job: str | None = None):
    """`cocode status [JOB] --json`: one job, or the list of all."""
    proc = cocode(repo, "status", *([job] if job else []), "--json", timeout=30)
    assert proc.returncode == 0, f"status failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def runs_of(job_json: dict) -> dict[str, dict]:
    return {r["agent"]: r for r in job_json["runs"]}


def job_now(repo: Path, job: str) -> dict | None:
    """The job as `status --json` shows it, read in-process through the running store:
    cheap enough to poll (the CLI then confirms what the wait found)."""
    j = client.current_state(Paths(repo)).jobs.get(job)
    return render.job_json(j) if j is not None else None


def wait_job(repo: Path, job: str, timeout: float = 20, until=lambda j: j["state"] == "done") -> dict:
    """Wait until the job satisfies `until` (default: done); `cocode status` must agree."""
    last = None

    def check():
        nonlocal last
        last = job_now(repo, job)
        return last is not None and until(last)

    try:
        wait_until(check, timeout, what=f"job {job}", interval=0.05)
    except AssertionError as err:
        raise AssertionError(f"{err}; last status: {json.dumps(last)}") from None
    shown = status(repo, job)
    assert until(shown), f"cocode status disagrees: {json.dumps(shown)}"
    return shown


def wait_run(repo: Path, job: str, agent: str, state: str, timeout: float = 20) -> dict:
    return runs_of(wait_job(repo, job, timeout, lambda j: runs_of(j)[agent]["state"] == state))[agent]


def two_scheduler_decisions(repo: Path, agent: str, reason: str) -> None:
    """Make the scheduler decide twice more, so a test can assert a queued run was NOT
    dispatched without pausing: a probe job that must wait for `reason` gets its note
    (one decision over the whole queue), then is cancelled (the next decision, whose
    outcome the scheduler writes after anything it wrote in the one before). Once the
    probe shows cancelled, any dispatch those decisions made is in the log."""
    probe = submit(repo, "--agent", agent, text="probe: the scheduler decides again")
    wait_job(repo, probe, 15, lambda j: runs_of(j)[agent]["reason"] == reason)
    proc = cocode(repo, "cancel", probe, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert runs_of(wait_job(repo, probe, 15))[agent]["state"] == "cancelled"


def events(repo: Path, *types: str, archived: bool = False) -> list[dict]:
    """`cocode events --json [--archived] [--type T]...`, decoded."""
    args = [a for t in types for a in ("--type", t)] + (["--archived"] if archived else [])
    proc = cocode(repo, "events", "--json", *args, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def state_with(jobs: list[tuple[str, int]], agents=("a",)) -> State:
    """A folded state holding these (job, priority) submissions, queued, for pure
    scheduler tests."""
    s = State()
    for seq, (job, priority) in enumerate(jobs, 1):
        st.apply(s, ev.JobSubmitted(seq=seq, job=job, title="t", body="b", agents=list(agents),
                                    base_sha="x", priority=priority))
    return s
