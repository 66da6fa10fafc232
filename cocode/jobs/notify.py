"""Notifications: which moments deserve one (a pure function of an event and the
state it left), and sending them (a command and/or a webhook) off the caller's
loop, so nothing in the pipeline ever waits for them.

Moments (config `notify.events`): run_ready, run_failed, job_done (every run of
the job final) and checks_done (every ready run of the job has every configured
check's result). A command gets {job}, {agent}, {state}, {title} and {trigger}
filled into its arguments (no shell), the environment agents get from the user
(nothing secret) plus COCODE_NOTIFY_* variables. A webhook gets a JSON POST.
Each try is bounded by `timeout` and retried `retries` times with backoff
(0.5 s, 1 s, 2 s, ...); what still fails comes back from `results()` for the
caller to record as a notify_failed event. `bell()` is the terminal's own
notification, for `submit --wait` and `tail -f`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from cocode import envnames
from cocode.config import NotifySpec
from cocode.core import events as ev
from cocode.core.views import State
from cocode.jobs import agents, checks
from cocode.resources import reaper

BACKOFF_FIRST_S = 0.5


class Notice(NamedTuple):
    trigger: str
    job: str
    agent: str
    state: str
    title: str


def notices(event: ev.Event, state: State, check_names: list[str], said: set[tuple[str, str]]) -> list[Notice]:
    """What `event` (already folded into `state`) calls for; `said` remembers the
    once-per-job moments (job_done, checks_done) so a repeat does not notify again."""
    job = state.jobs.get(event.job)
    if job is None:
        return []
    out = []
    if isinstance(event, ev.RunReady):
        out.append(Notice("run_ready", job.job, event.agent, "ready", job.title))
    elif isinstance(event, ev.RunFinished) and event.state == "failed":
        out.append(Notice("run_failed", job.job, event.agent, "failed", job.title))
    if isinstance(event, ev.RunFinished) and job.done and (job.job, "job_done") not in said:
        said.add((job.job, "job_done"))
        ready = sum(r.state == "ready" for r in job.runs.values())
        out.append(Notice("job_done", job.job, "", f"{ready}/{len(job.runs)} ready", job.title))
    if (check_names and isinstance(event, (ev.CheckFinished, ev.RunFinished)) and job.done
            and any(r.state == "ready" for r in job.runs.values())
            and checks.settled(job, check_names) and (job.job, "checks_done") not in said):
        said.add((job.job, "checks_done"))
        ok = sum(all(c.status == "passed" for c in r.checks.values()) for r in job.runs.values()
                 if r.state == "ready")
        out.append(Notice("checks_done", job.job, "", f"{ok} run(s) pass every check", job.title))
    return out


class Failure(NamedTuple):
    notice: Notice
    target: str  # "command" or the webhook URL
    error: str
    attempts: int


class Sender:
    def __init__(self, spec: NotifySpec, passthrough: list[str]) -> None:
        self.spec = spec
        self.env = agents.inherited_env(os.environ, passthrough)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notify")
        self.failures: queue.SimpleQueue[Failure] = queue.SimpleQueue()

    def wants(self, notice: Notice) -> bool:
        return notice.trigger in self.spec.events

    def send(self, notice: Notice) -> None:
        """Returns at once; the work happens in a pool thread."""
        if self.spec.command:
            self.pool.submit(self._retry, notice, "command", self._command)
        if self.spec.webhook:
            self.pool.submit(self._retry, notice, self.spec.webhook, self._webhook)

    def results(self) -> list[Failure]:
        out = []
        while True:
            try:
                out.append(self.failures.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- in pool threads ------------------------------------------------------------------------

    def _retry(self, notice: Notice, target: str, once) -> None:
        error = ""
        for attempt in range(1, self.spec.retries + 2):
            error = once(notice)
            if not error:
                return
            if attempt <= self.spec.retries:
                time.sleep(BACKOFF_FIRST_S * 2 ** (attempt - 1))
        self.failures.put(Failure(notice, target, error, self.spec.retries + 1))

    def _command(self, n: Notice) -> str:
        values = n._asdict()
        argv = [arg.format_map(values) if "{" in arg else arg for arg in self.spec.command]
        env = {**self.env, **{f"{envnames.NOTIFY_PREFIX}{k.upper()}": str(v) for k, v in values.items()}}
        try:
            # Registered as a Popen's own: the checks service (a subreaper) must neither
            # reap it nor take it for a check's stray (resources/reaper.py).
            with reaper.spawning() as keep:
                proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
                keep(proc.pid)
        except (OSError, KeyError, ValueError) as err:
            return f"{argv[0] if argv else 'command'}: {err}"
        try:
            _, stderr = proc.communicate(timeout=self.spec.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return f"{argv[0]} took over {self.spec.timeout} s"
        finally:
            reaper.release(proc.pid)
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"{argv[0]} exited {proc.returncode}{': ' + tail[0][:200] if tail[0] else ''}"
        return ""

    def _webhook(self, n: Notice) -> str:
        # http.client, not urllib.request: that one imports hashlib, which a
        # long-running service must not carry (HELPERS.md); loaded only with a webhook.
        import http.client
        from urllib.parse import urlsplit

        url = urlsplit(self.spec.webhook)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        body = json.dumps({**n._asdict(), "ts": time.time()}).encode()
        conn = cls(url.hostname or "", url.port, timeout=self.spec.timeout)
        try:
            conn.request("POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body,
                         {"Content-Type": "application/json", "User-Agent": "cocode"})
            status = conn.getresponse().status
        except TimeoutError:
            return f"no answer within {self.spec.timeout} s"
        except (OSError, http.client.HTTPException) as err:
            return f"{type(err).__name__}: {err}"[:200]
        finally:
            conn.close()
        return "" if 200 <= status < 300 else f"HTTP {status}"


def bell(title: str, text: str) -> None:
    """`submit --wait` or `tail -f` is done: the terminal bell on a terminal, and a
    desktop notification where `notify-send` is on PATH (started, never waited for)."""
    if sys.stdout.isatty():
        sys.stdout.write("\a")
        sys.stdout.flush()
    exe = shutil.which("notify-send")
    if exe:
        try:
            subprocess.Popen([exe, title, text], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            pass


def failed_event(f: Failure) -> ev.NotifyFailed:
    return ev.NotifyFailed(job=f.notice.job, agent=f.notice.agent, target=f.target,
                           trigger=f.notice.trigger, error=f.error, attempts=f.attempts)
