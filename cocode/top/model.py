"""What `cocode top` shows, as a pure fold: events, metric samples and the link's
health in; rows of plain values out. No widgets, sockets or clocks here (`now` is
passed in), so the unit tests fold hand-made events and read the rows.

The job/run state itself is core/state.py's fold, the same one `cocode status` and
the scheduler use; this module adds only what a viewer needs on top of it: order,
ages, queue positions, per-run CPU/memory history, and whether cocode is up. The
cells `status` and `compare` also show (cost, diff, checks, the recommended run)
come from their own functions (render, jobs.rank); the diff sizes, measured in git
off the UI thread (cocode/top/runstats.py), come in with the batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from cocode import render
from cocode.config import RANK_KEYS
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, iter_queued
from cocode.jobs import rank
from cocode.resources import policy

SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 16  # metric samples kept per run (one a second): the sparkline's width (with " 100%" or " 1234M" it fits the table's 24-cell column)
DOWN_AFTER_S = 3.5  # no heartbeat this long (they come every second): cocode is down
DISK_WARNINGS = ("disk_low", "disk")


@dataclass
class RunMetrics:
    cpu: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    rss: deque = field(default_factory=lambda: deque(maxlen=HISTORY))


@dataclass
class Link:
    """Is cocode up, as a dashboard can tell: heartbeats heard on the bus."""

    started: bool = False  # a supervisor held the lock when last looked
    last_beat: float = 0.0  # monotonic time of the last heartbeat, 0 if none yet
    synced: bool = False  # the store answered the follower at least once
    error: str = ""  # why the view may be stale (read error, old events.db, ...)


@dataclass
class Model:
    state: State = field(default_factory=State)
    metrics: dict[str, RunMetrics] = field(default_factory=dict)
    host: dict | None = None
    link: Link = field(default_factory=Link)
    dropped: int = 0  # undecodable frames seen (a newer or older cocode?)
    disk_low: bool | None = None  # free space as the monitor's last sample says (None: no sample yet)
    # (job, agent, head) -> (added, removed, files), None where git could not tell
    stats: dict[tuple[str, str, str], tuple | None] = field(default_factory=dict)
    rank_by: list[str] = field(default_factory=lambda: list(RANK_KEYS))  # config rank_by

    def apply(self, event: ev.Event) -> None:
        st.apply(self.state, event)

    def apply_stats(self, results) -> None:
        """(job, agent, head, stat or None) measured by cocode/top/runstats.py."""
        for job, agent, head, stat in results:
            self.stats[(job, agent, head)] = stat

    def apply_metric(self, topic: bytes, sample: dict) -> None:
        if topic == b"metric.host":
            self.host = sample
            free = sample.get("disk_free")
            if isinstance(free, int) and free >= 0:  # the monitor's own line and hysteresis
                self.disk_low = policy.disk_low_next(bool(self.disk_low), free)
            return
        if topic != b"metric.run" or "job" not in sample or "agent" not in sample:
            return
        m = self.metrics.setdefault(f"{sample['job']}/{sample['agent']}", RunMetrics())
        m.cpu.append(float(sample.get("cpu", 0.0)))
        m.rss.append(int(sample.get("rss", 0)))

    def beat(self, now: float) -> None:
        self.link.last_beat = now

    def is_up(self, now: float) -> bool:
        return bool(self.link.last_beat) and now - self.link.last_beat < DOWN_AFTER_S


# -- rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    job: str
    title: str
    state: str
    age: str
    ready: str  # "2/3": runs ready of all its runs
    cost: str  # its runs' known costs summed, as `status` shows it; "" when none is known


@dataclass(frozen=True)
class RunRow:
    agent: str
    state: str
    reason: str
    time: str
    commits: str
    diff: str  # "+12/-3" as `status`'s DIFF; "…" while being measured, "-" without commits
    checks: str  # as `status`'s CHECKS: "2/3 pass", "running", "-"
    best: bool  # the run `cocode compare` recommends
    queue: str  # "#3" for a queued run: its place in the dispatch order
    cpu: str  # sparkline and the latest value
    mem: str
    worktree: str
    detail: str


@dataclass(frozen=True)
class Header:
    up: bool
    text: str  # the line shown under the title
    warnings: tuple[str, ...]


# The last column is the one cut when the table is narrow: the title, the memory.
JOB_COLUMNS = ("job", "state", "age", "ready", "cost", "title")
RUN_COLUMNS = ("agent", "state", "reason", "time", "commits", "diff", "checks", "cpu", "mem")
BEST = "★"  # beside the agent `cocode compare` recommends


def job_cells(r: JobRow) -> tuple[str, ...]:
    return (r.job, r.state, r.age, r.ready, r.cost, r.title)


def run_cells(r: RunRow) -> tuple[str, ...]:
    # A queued run's place beside its state ("queued #2"): in a column of its own it pushed cpu and
    # mem past the edge of a 160-column terminal.
    return (f"{r.agent} {BEST}" if r.best else r.agent, f"{r.state} {r.queue}" if r.queue else r.state,
            r.reason, r.time, r.commits, r.diff, r.checks, r.cpu, r.mem)


def age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.0f}d"


def sparkline(values, top: float | None = None) -> str:
    vals = list(values)
    if not vals:
        return ""
    hi = top if top else max(vals) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int(v / hi * (len(SPARK) - 1)))] for v in vals)


def mib(n: float) -> str:
    return f"{n / 1048576:.0f}M"


def job_cost(job) -> str:
    """Its runs' known costs summed (Usage's rule: None only when none is known), as
    `status` shows it; without building a Usage per run (every job, every second)."""
    known = [u.cost_usd for r in job.runs.values() for u in r.usage_by_attempt.values() if u.cost_usd is not None]
    return render.usd(sum(known)) if known else ""


def job_rows(model: Model, now: float) -> list[JobRow]:
    """Every job, newest first."""
    rows = []
    for job in sorted(model.state.jobs.values(), key=lambda j: j.seq, reverse=True):
        ready = sum(1 for r in job.runs.values() if r.state == "ready")
        rows.append(JobRow(
            job=job.job, title=job.title, state=job.state, age=age(now - job.ts),
            ready=f"{ready}/{len(job.runs)}",
            cost=job_cost(job),
        ))
    return rows


def queue_positions(model: Model) -> dict[tuple[str, str], int]:
    return {(j.job, r.agent): i + 1 for i, (j, r) in enumerate(iter_queued(model.state))}


PENDING = "…"  # a diff not measured yet (its head just moved)


def diff_stats(model: Model, job) -> dict[str, tuple | None | str]:
    """Each run's measured diff: a stat, None (no commit beyond the base, or git could
    not tell) or PENDING (its head is not measured yet)."""
    out = {}
    for agent in job.agents:
        head = rank.measured_head(job.base_sha, job.runs[agent])
        out[agent] = None if head is None else model.stats.get((job.job, agent, head), PENDING)
    return out


def recommended(job, stats: dict, order: list[str]) -> str | None:
    """`cocode compare`'s pick (jobs.rank over rank.row, as review.compare does), or None
    while a ready run's diff, which the order ranks by, is still being measured."""
    rows = []
    for agent in job.agents:
        stat = stats[agent]
        if stat == PENDING and "diff" in order and job.runs[agent].state == "ready":
            return None
        rows.append(rank.row(job.runs[agent], *(stat if isinstance(stat, tuple) else (0, 0, 0))))
    ranked, _ = rank.rank(rows, order)
    return next((r.agent for r in ranked if r.rank == 1), None)


def run_rows(model: Model, job_id: str | None, now: float) -> list[RunRow]:
    job = model.state.jobs.get(job_id or "")
    if job is None:
        return []
    places = queue_positions(model)
    stats = diff_stats(model, job)
    best = recommended(job, stats, model.rank_by)
    rows = []
    for agent in job.agents:
        r = job.runs[agent]
        m = model.metrics.get(f"{job.job}/{agent}")
        took = "-" if r.started_at is None else age((r.ended_at or now) - r.started_at)
        reason = r.reason or ("cancelling" if r.cancel_requested and not r.final else "")
        place = places.get((job.job, agent))
        live = m is not None and r.live
        rows.append(RunRow(
            agent=agent, state=r.state, reason=reason, time=took, commits=str(r.commits),
            diff=stats[agent] if stats[agent] == PENDING else render.diff_cell(stats[agent]),
            checks=render.checks_cell(r), best=agent == best,
            queue=f"#{place}" if place else "",
            cpu=f"{sparkline(m.cpu, 100.0)} {m.cpu[-1]:.0f}%" if live and m.cpu else "",
            mem=f"{sparkline(m.rss)} {mib(m.rss[-1])}" if live and m.rss else "",
            worktree="" if r.worktree_removed else r.worktree, detail=r.detail,
        ))
    return rows


def header(model: Model, mono: float, root: str = "", now: float = 0.0) -> Header:
    """`mono` is time.monotonic() (heartbeats are timed by it), `now` the wall clock
    (events' times; 0: not dated)."""
    jobs = model.state.jobs.values()
    running = sum(1 for j in jobs for r in j.runs.values() if r.live)
    queued = sum(1 for _ in iter_queued(model.state))
    up = model.is_up(mono)
    if up:
        status = "up"
    elif model.link.last_beat:
        status = f"cocode is DOWN (no heartbeat for {age(mono - model.link.last_beat)}); reconnecting"
    elif model.link.started:
        status = "cocode is starting (no heartbeat yet)"
    else:
        status = f"cocode is not started in {root}: run `cocode up` (this view connects by itself)"
    pressure = "memory pressure" if model.state.pressure else "memory ok"
    if model.host and "mem_percent" in model.host:
        pressure += f" ({model.host['mem_percent']:.0f}%)"
    text = f"{status} · {running} running · {queued} queued · {pressure}"  # status first: cut last
    # A disk warning is an event of the past: shown while the monitor's samples say the
    # disk is still low, dated while there are none (cocode down), gone once it has room.
    disk = [w for w in model.state.warnings if w.code.startswith(DISK_WARNINGS)][-1:]
    if model.disk_low is False:
        disk = []
    warnings = [w.message if model.disk_low or not (now and w.ts) else f"{w.message} ({age(now - w.ts)} ago)"
                for w in disk]
    if model.link.error:
        warnings.append(model.link.error)
    if model.dropped:
        warnings.append(f"{model.dropped} messages could not be read (a different cocode version?)")
    return Header(up=up, text=text, warnings=tuple(warnings))
