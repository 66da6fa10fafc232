"""The monitor: samples agent process trees and the host, enforces memory limits,
reports memory pressure and disk space, publishes metrics, removes idle worktrees.

It follows the log (from the latest snapshot) to know which runs are live on this
host, and every `monitor_interval_ms` (1 s by default) samples each one's processes
(cocode.resources.proctree) and the host. Samples go out on the bus as `metric.run` and
`metric.host` (msgpack maps, not stored). Decisions are cocode.resources.policy's:

- A run over its memory limit (the agent's memory_limit_mb, else the configured
  one): `limit_hit` is appended and acked first, then the process group (and
  every member that left it) gets SIGTERM, then SIGKILL 10 s later. The worker
  sees the limit_hit and ends the run failed / memory_limit_exceeded, keeping its
  worktree and commits.
- System memory above memory_pressure_percent: `memory_pressure` on (the
  scheduler then holds new runs); below the threshold minus 5: off.
- A running check (services/checks.py) is sampled the same way, as
  `<job>/<agent>/check:<name>`, under its run's memory limit; its limit_hit names
  the check, so the checks service stops it and the agent's run is untouched.
- Under 100 MB free on the .cocode filesystem: a `warning` (disk_low), once per
  crossing.
- Hourly, final runs' worktrees idle for worktree_idle_days are removed by
  `cocode clean --auto` (the directory only, never a branch or a commit).

Killed with -9 and restarted, it rebuilds the live runs from the log and enforces
again. With COCODE_METRICS_PORT set (`cocode up --metrics-port`) it also serves the
Prometheus text on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import msgspec
import psutil
import zmq

from cocode.jobs import agents
from cocode.jobs.timeouts import MEMORY_GRACE_S
from cocode.resources import policy
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import RunView
from cocode.config import Config
from cocode import envnames
from cocode.paths import Paths
from cocode.runkey import RunKey
from cocode.resources.proctree import Sampler, is_session_leader
from cocode.core.service import Service

ACK_WAIT_S = 2.0  # a limit_hit is acked before anything is killed; bounded
CLEAN_EVERY_S = 3600.0
CLEAN_FIRST_S = 300.0
DISK_EVERY = 5  # samples between disk checks
MIB = 1024 * 1024


class Enforcing(msgspec.Struct):
    term_at: float | None = None
    killed: bool = False


class Monitor(Service):
    name = "monitor"

    def __init__(self, paths: Paths, config: Config) -> None:
        super().__init__(paths, config)
        self.state = self.snapshot_state()
        limits = config.limits
        self.interval = limits.monitor_interval_ms / 1000.0
        self.threshold = float(limits.memory_pressure_percent)
        self.specs = agents.merge_agents(config.agents)
        self.sampler = Sampler()
        self.hostname = socket.gethostname()
        self.live: dict[str, tuple[str, str]] = {}  # key -> (job, agent), live on this host
        self.checks_live: dict[str, tuple[str, str, str]] = {}  # key -> (job, agent, check)
        self.limits: dict[str, int] = {}  # key -> bytes
        self.enforcing: dict[str, Enforcing] = {}
        self.pressure_sent: bool | None = None
        self.disk_low = False
        self.ticks = 0
        self.latest_runs: dict[str, dict] = {}
        self.latest_host: dict | None = None
        self.cleaner: subprocess.Popen | None = None
        self.encoder = msgspec.msgpack.Encoder()
        self.metrics_lock = threading.Lock()
        self.metrics_totals = None
        self.http = None
        psutil.cpu_percent(None)  # the first call only starts the measurement

    def setup(self) -> None:
        for job in self.state.jobs.values():
            if not job.done:
                for run in job.runs.values():
                    self.note(job.job, run)
            for run in job.runs.values():
                self.note_checks(job.job, run)
        self.follower = self.follow(self.on_event, after=self.state.seq, types=st.FOLDED_TYPES)
        self.log.info("sampling processes through %s", self.sampler.stats.kind)
        self.loop.every(self.interval, self.tick, first=self.interval)
        self.loop.every(CLEAN_EVERY_S, self.auto_clean, first=CLEAN_FIRST_S)
        port = os.environ.get(envnames.METRICS_PORT)
        if port:
            self.serve_metrics(int(port))

    def heartbeat_info(self) -> dict:
        return {"runs": len(self.sampler.trees), "pressure": int(bool(self.state.pressure))}

    def teardown(self) -> None:
        self.sampler.close()
        if self.http is not None:
            self.http.shutdown()

    # -- the log ------------------------------------------------------------------------------

    def on_event(self, event: ev.Event) -> None:
        st.apply(self.state, event)
        if not event.agent:
            return
        job = self.state.jobs.get(event.job)
        run = job.runs.get(event.agent) if job else None
        if run is not None and isinstance(event, (ev.CheckStarted, ev.CheckFinished)):
            self.note_checks(event.job, run)
        elif run is not None:
            key = RunKey(event.job, event.agent).key
            was_live = key in self.live
            self.note(event.job, run)
            if was_live and run.final and self.follower.caught_up:
                self.settle(key)

    def note(self, job: str, run: RunView) -> None:
        """Keep self.live in step with the fold: live runs with a process, on this host."""
        key = RunKey(job, run.agent).key
        host = run.worker.partition("@")[2]
        if run.live and run.pgid and host in ("", self.hostname):
            self.live[key] = (job, run.agent)
        else:
            self.live.pop(key, None)

    def note_checks(self, job: str, run: RunView) -> None:
        for c in run.checks.values():
            key = RunKey(job, run.agent).check_log(c.name).key
            if c.status == "running" and c.pgid and c.host in ("", self.hostname):
                self.checks_live[key] = (job, run.agent, c.name)
            else:
                self.checks_live.pop(key, None)

    def settle(self, key: str) -> None:
        """The run ended: what escaped its process group dies with it."""
        tree = self.sampler.untrack(key)
        self.limits.pop(key, None)
        self.enforcing.pop(key, None)
        if tree is not None:
            killed = self.sampler.kill_leftovers(tree)
            if killed:
                self.log.info("run %s ended: killed %d processes that escaped its group", key, killed)

    # -- sampling -----------------------------------------------------------------------------

    def track_live(self) -> None:
        for key, (job, agent) in self.live.items():
            if key in self.sampler.trees:
                continue
            run = self.state.jobs[job].runs[agent]
            if not is_session_leader(run.pgid):
                continue  # not started yet, or already gone: the worker settles it
            self.sampler.track(job, agent, run.pgid, run.worktree)
            limit_mb = policy.memory_limit_mb(agents.base_name(agent, self.specs), self.specs,
                                              self.config.limits.memory_limit_mb)
            self.limits[key] = limit_mb * MIB
        for key, (job, agent, name) in self.checks_live.items():
            run = self.state.jobs[job].runs[agent]
            check = run.checks[name]
            if key not in self.sampler.trees and is_session_leader(check.pgid):
                self.sampler.track(job, RunKey(job, agent).check_log(name).agent, check.pgid, run.worktree)
                limit_mb = policy.memory_limit_mb(agent, self.specs, self.config.limits.memory_limit_mb)
                self.limits[key] = limit_mb * MIB
        for key in [k for k in self.sampler.trees if k not in self.live and k not in self.checks_live]:
            self.settle(key)

    def tick(self) -> None:
        if not self.follower.caught_up:
            return
        self.ticks += 1
        self.track_live()
        now = time.monotonic()
        samples = self.sampler.sample(now)
        runs = {}
        for key, s in samples.items():
            sample = {
                "type": "run", "tick": self.ticks, "ts": time.time(), "job": s.job, "agent": s.agent,
                "rss": s.rss, "peak_rss": s.peak_rss, "cpu": round(s.cpu, 2), "procs": s.procs,
                "escaped": s.escaped, "limit": self.limits.get(key, 0),
            }
            runs[key] = sample
            self.publish(b"metric.run", sample)
            self.enforce(key, s.rss)
        self.latest_runs = runs
        host = self.sample_host(list(runs))
        self.latest_host = host
        self.publish(b"metric.host", host)
        self.check_pressure(host["mem_percent"])
        if self.ticks % DISK_EVERY == 1:
            self.check_disk(host["disk_free"])
        if self.cleaner is not None and self.cleaner.poll() is not None:
            self.cleaner = None  # reaped

    def sample_host(self, keys: list[str]) -> dict:
        vm = psutil.virtual_memory()
        try:
            free = shutil.disk_usage(self.paths.home).free
        except OSError:
            free = -1
        return {
            "type": "host", "tick": self.ticks, "ts": time.time(), "runs": keys,
            "mem_percent": vm.percent, "mem_total": vm.total, "mem_available": vm.available,
            "cpu_percent": psutil.cpu_percent(None), "load1": os.getloadavg()[0],
            "disk_free": free, "pressure": bool(self.state.pressure),
            "pressure_threshold": self.threshold, "interval": self.interval,
        }

    def publish(self, topic: bytes, sample: dict) -> None:
        try:
            self.pub.send_multipart([topic, self.encoder.encode(sample)], zmq.NOBLOCK)
        except zmq.Again:
            pass

    # -- memory limits ---------------------------------------------------------------------------

    def enforce(self, key: str, rss: int) -> None:
        limit = self.limits.get(key)
        if not limit:
            return
        e = self.enforcing.setdefault(key, Enforcing())
        step = policy.enforcement(rss, limit, e.term_at, e.killed, time.monotonic())
        if step == "terminate":
            self.terminate(key, rss, limit, e)
        elif step == "kill":
            self.kill(key, e)

    def terminate(self, key: str, rss: int, limit: int, e: Enforcing) -> None:
        job, agent, check = self.checks_live.get(key) or (*self.live[key], "")
        self.append(ev.LimitHit(job=job, agent=agent, kind="memory", value=round(rss / MIB, 1),
                                limit=round(limit / MIB, 1), action="terminate", check=check))
        if not self.appender.wait(ACK_WAIT_S):
            # Recorded but not yet confirmed (the store is away): the event is kept and
            # resent; a runaway process is not left eating the machine meanwhile.
            self.log.warning("limit_hit for %s not acked within %.0f s; stopping it anyway", key, ACK_WAIT_S)
        e.term_at = time.monotonic()
        tree = self.sampler.trees.get(key)
        if tree is not None:
            self.sampler.signal(tree, signal.SIGTERM)
        self.log.info("run %s over its memory limit (%.0f MiB > %.0f MiB): SIGTERM, SIGKILL in %.0f s",
                      key, rss / MIB, limit / MIB, MEMORY_GRACE_S)
        self.loop.call_later(MEMORY_GRACE_S, lambda: self.kill(key, e))

    def kill(self, key: str, e: Enforcing) -> None:
        if e.killed or self.enforcing.get(key) is not e:
            return  # already done, or the run ended and was settled
        e.killed = True
        tree = self.sampler.trees.get(key)
        if tree is not None:
            sent = self.sampler.signal(tree, signal.SIGKILL)
            self.log.info("run %s still alive %.0f s after SIGTERM: SIGKILL (%d targets)",
                          key, MEMORY_GRACE_S, sent)

    # -- host ---------------------------------------------------------------------------------------

    def check_pressure(self, percent: float) -> None:
        current = self.pressure_sent if self.pressure_sent is not None else self.state.pressure
        after = policy.pressure_next(current, percent, self.threshold)
        if after != current:
            self.pressure_sent = after
            self.append(ev.MemoryPressure(on=after, percent=percent, threshold=self.threshold))
            self.log.info("memory pressure %s (%.1f%%, threshold %.0f%%)", "on" if after else "off",
                          percent, self.threshold)

    def check_disk(self, free: int) -> None:
        if free < 0:
            return
        low = policy.disk_low_next(self.disk_low, free)
        if low and not self.disk_low:
            self.append(ev.WarningEvent(
                code="disk_low",
                message=f"only {free / MIB:.0f} MB free on the filesystem of {self.paths.home} "
                        f"(under {policy.DISK_LOW_BYTES // MIB} MB): free some space",
            ))
        self.disk_low = low

    # -- idle worktrees --------------------------------------------------------------------------------

    def auto_clean(self) -> None:
        from cocode.jobs import clean

        if self.cleaner is not None and self.cleaner.poll() is None:
            return
        days = self.config.limits.worktree_idle_days
        due = [r for r in clean.final_runs(self.state, time.time(), days)
               if r.worktree and os.path.isdir(r.worktree)]
        if not due:
            return
        self.log.info("%d worktrees idle over %d days: cocode clean --auto", len(due), days)
        self.cleaner = subprocess.Popen(
            [sys.executable, "-m", "cocode", "-C", str(self.paths.root), "clean", "--auto"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    # -- metrics over HTTP ------------------------------------------------------------------------------

    def serve_metrics(self, port: int) -> None:
        from cocode.resources import http as metrics_http

        try:
            self.http = metrics_http.serve(port, self.render_metrics)
            self.log.info("metrics on http://127.0.0.1:%d/metrics", port)
        except OSError as err:
            self.append(ev.WarningEvent(code="metrics_port",
                                        message=f"cannot serve metrics on 127.0.0.1:{port}: {err.strerror}"))

    def render_metrics(self) -> str:
        """In the HTTP thread: fold the events since the last scrape, join the samples."""
        from cocode.core import eventlog  # loaded on the first scrape: most monitors never are
        from cocode.resources import exposition, metrics

        with self.metrics_lock:
            conn = eventlog.open_for_reading(self.paths.db)  # anew: compaction replaces the file
            try:
                if self.metrics_totals is None:
                    self.metrics_totals = metrics.fold(eventlog.iter_all_events(conn))
                else:
                    metrics.fold(eventlog.iter_events(conn, after=self.metrics_totals.seq), self.metrics_totals)
            finally:
                conn.close()
            totals = self.metrics_totals
            runs, host = self.latest_runs, self.latest_host
            summary = metrics.summary(totals, runs, host, metrics.log_bytes(self.paths, totals.runs), time.time())
        return exposition.prometheus(summary)


def main(paths: Paths, config: Config) -> int:
    return Monitor(paths, config).run()
