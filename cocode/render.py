"""How events and state look to a person (and as JSON lines to a program)."""

from __future__ import annotations

import re
import time

import msgspec

from cocode.core import events as ev
from cocode.core.views import Usage
from cocode.runkey import RunKey

_SKIP = {"seq", "ts", "job", "agent", "type"}


def event_json_line(event: ev.Event) -> str:
    return msgspec.json.encode(event).decode()


def _short(v) -> str:
    s = str(v)
    s = s.replace("\n", "\\n")
    return s if len(s) <= 60 else s[:57] + "..."


def event_line(event: ev.Event) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}"
    where = RunKey(event.job, event.agent).key if event.agent else event.job
    fields = " ".join(
        f"{k}={_short(v)}" for k, v in msgspec.structs.asdict(event).items()
        if k not in _SKIP and v not in (None, "", [], {})
    )
    return f"{event.seq:>7} {when} {event.type:<16} {where:<20} {fields}".rstrip()


RUN_KEYS = ("agent", "state", "reason", "exit_code", "ready_commit", "commits", "branch",
            "worktree", "started_at", "ended_at", "attempt", "detail", "session_id", "model", "setup_ms")


def run_json(run) -> dict:
    return {**{k: getattr(run, k) for k in RUN_KEYS}, "usage": msgspec.to_builtins(run.usage)}


def run_checks(run) -> dict:
    return {c.name: {"status": c.status, "summary": c.summary, "passed": c.passed, "failed": c.failed,
                     "commit": c.commit} for c in run.checks.values()}


def job_json(job, diffstats: dict | None = None) -> dict:
    """`diffstats` maps an agent to (added, removed, files) where the caller measured them."""
    runs = [job.runs[a] for a in job.agents]
    out = []
    for r in runs:
        row = {**run_json(r), "checks": run_checks(r)}
        if diffstats and r.agent in diffstats:
            row["added"], row["removed"], row["files"] = diffstats[r.agent]
        out.append(row)
    return {
        "job": job.job, "state": job.state, "title": job.title, "priority": job.priority,
        "base_sha": job.base_sha, "submitted_at": job.ts, "picked": job.picked or None,
        "picked_mode": job.picked_mode or None, "pr_url": job.pr_url or None,
        "runs": out,
        "usage": msgspec.to_builtins(sum((r.usage for r in runs), Usage())),
        "groups": best_of_groups(job.agents),
    }


_COPY = re.compile(r"^(.+)-([1-9][0-9]*)$")


def best_of_groups(names: list[str]) -> dict[str, list[str]]:
    """Runs of one agent submitted as NAME:N (NAME-1..NAME-N), by NAME; 2 or more only."""
    groups: dict[str, list[str]] = {}
    for name in names:
        if m := _COPY.match(name):
            groups.setdefault(m.group(1), []).append(name)
    return {base: runs for base, runs in groups.items() if len(runs) > 1}


def _group_line(job, base: str, names: list[str]) -> str:
    states: dict[str, int] = {}
    for name in names:
        states[job.runs[name].state] = states.get(job.runs[name].state, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return f"job {job.job}: {base} x{len(names)}, best of {len(names)}: {counts}"


def usd(cost: float | None) -> str:
    """A model cost as `status` shows it (`$0.0123`), '' when none is known."""
    return f"${cost:.4f}" if cost is not None else ""


def usage_text(u) -> str:
    """`3,120 tokens · $0.0123 · 4 tool calls`, or '' when nothing was reported."""
    tokens = u.input_tokens + u.cached_input_tokens + u.output_tokens
    if not (tokens or u.tool_calls):
        return ""
    cost = f" · {usd(u.cost_usd)}" if u.cost_usd is not None else ""
    return f"{tokens:,} tokens{cost} · {u.tool_calls} tool calls"


def _ago(ts: float | None, end: float | None = None) -> str:
    if ts is None:
        return "-"
    secs = (end or time.time()) - ts
    return f"{secs:.1f}s" if secs < 120 else f"{secs / 60:.0f}m"


def diff_cell(stat) -> str:
    """`+12/-3` from a measured (added, removed, files), `-` when none was measured."""
    return f"+{stat[0]}/-{stat[1]}" if stat else "-"


def checks_cell(run) -> str:
    """`2/3 pass`, `running`, or `-`: a run's checks in one short cell."""
    if not run.checks:
        return "-"
    cs = list(run.checks.values())
    if any(c.status == "running" for c in cs):
        return "running"
    return f"{sum(c.status == 'passed' for c in cs)}/{len(cs)} pass"


def status_table(jobs, colour: bool = False, width: int | None = None, titles: bool = False,
                 diffstats: dict | None = None) -> str:
    """A line per run (JOB, AGENT, STATE, REASON, COMMITS, DIFF, CHECKS, TIME, READY), a
    failed run's detail (and usage, setup, the picked run's PR) under it; `titles` adds
    each job's issue title after JOB; `diffstats` maps (job, agent) to (added, removed,
    files) where the caller measured them."""
    from cocode import style

    if not jobs:
        return "no jobs yet; `cocode submit --text '...' --agent demo` queues one"
    diffstats = diffstats or {}
    headers = ["JOB", *(["TITLE"] if titles else []), "AGENT", "STATE", "REASON", "COMMITS", "DIFF", "CHECKS",
               "TIME", "READY"]
    rows, styles, notes, after = [], [], {}, []
    for job in jobs:
        for i, agent in enumerate(job.agents):
            r = job.runs[agent]
            title = [job.title if i == 0 else ""] if titles else []
            d = diffstats.get((job.job, agent))
            state = r.state + (f" (picked: {job.picked_mode})" if job.picked == agent else "")
            rows.append([job.job, *title, agent, state, r.reason or "-", r.commits,
                         diff_cell(d), checks_cell(r),
                         _ago(r.started_at, r.ended_at), (r.ready_commit or "-")[:12]])
            styles.append(["bold", *([""] if titles else []), "", style.STATE_STYLES.get(r.state, "")])
            notes_of = [r.detail[:100]] if r.detail and r.state == "failed" else []
            if job.picked == agent and job.pr_url:
                notes_of.append(job.pr_url)
            if used := usage_text(r.usage):
                notes_of.append(used)
            if r.setup_ms:
                notes_of.append(f"setup {r.setup_ms / 1000:.1f}s before the agent's time")
            if notes_of:
                notes[len(rows) - 1] = "└ " + " · ".join(notes_of)
        for base, names in best_of_groups(job.agents).items():
            after.append(_group_line(job, base, names))
        if len(job.agents) > 1 and (used := usage_text(sum((r.usage for r in job.runs.values()), Usage()))):
            after.append(f"job {job.job}: {used}")
    table = style.table(headers, rows, colour, styles, right=("COMMITS", "DIFF", "TIME"), width=width,
                        max_widths={"TITLE": 40}, notes=notes, note_column="STATE")
    return "\n".join([table, *after])


def run_event_summary(event: ev.Event) -> str | None:
    """One short line for a run's milestone, or None for events not worth a line."""
    if isinstance(event, ev.RunStarted):
        return f"started (pid {event.pid}, attempt {event.attempt}, timeout {event.timeout_s}s) in {event.worktree}"
    if isinstance(event, ev.RunReady):
        return f"ready: commit {event.commit[:12]} (detected in {event.detect_ms:.1f} ms)"
    if isinstance(event, ev.RunFinished):
        why = f": {event.reason}" if event.reason and event.state != "ready" else ""
        why += f" — {event.detail}" if event.detail else ""
        code = f", exit {event.exit_code}" if event.exit_code is not None else ""
        return f"{event.state}{why} ({event.commits} commits{code})"
    if isinstance(event, ev.RunWaiting):
        return f"waiting: {event.reason}"
    if isinstance(event, ev.RunRequeued):
        return f"requeued (attempt {event.attempt})"
    if isinstance(event, ev.RunInterrupted):
        return f"interrupted ({event.reason})"
    if isinstance(event, ev.CheckStarted):
        return f"check {event.name} started at {event.commit[:12]}"
    if isinstance(event, ev.CheckFinished):
        what = event.summary or (f"exit {event.exit_code}" if event.exit_code is not None else "")
        why = f" — {event.reason}" if event.reason and event.reason != event.summary else ""
        return f"check {event.name}: {event.status}{': ' + what if what else ''}{why} ({event.duration_s:.1f}s)"
    if isinstance(event, ev.Picked):
        return f"picked ({event.mode}){' ' + event.pr_url if event.pr_url else ''}"
    if isinstance(event, ev.WarningEvent):
        return f"warning: {event.message}"
    return None
