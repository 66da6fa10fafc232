"""One check execution: a shell command in a run's worktree, in its own session
and process group, with a time limit, its output handed on in chunks, and one
outcome (cocode.jobs.checks reads what the output says).

Driven like an agent's RunProcess: `on_output()` when its pipe is readable,
`tick()` from the owner's loop; `stop()` for cancel, memory limit or shutdown.
Its process group is dead by the time `result()` is asked for.

When runs are sandboxed the owner hands a `confine` (jobs/sandbox.py's wrap for
the run's workspace) and a `scratch` directory of the check's own, seen inside as
its HOME (sandbox.RUN_HOME): the JUnit XML goes there, since the sandbox's /tmp
is its own. The group is then bwrap's, so killing it ends the pid namespace.
Unconfined, the check's shell is a subreaper and every SIGKILL also calls the
owner's `sweep` (resources/reaper.py): what left its session dies with it too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from cocode import envnames
from cocode.jobs import checks, sandbox
from cocode.resources import reaper

JUNIT_NAME = "junit.xml"  # in a sandboxed check's scratch directory
CHUNK = 4096
TAIL_BYTES = 8192  # the output's end is kept to find the tool's summary line
TERM_GRACE_S = 5.0  # SIGTERM, then this long, then SIGKILL (as for agents)
PIPE_DRAIN_S = 2.0  # a daemon it forked may hold the pipe: its group is killed anyway


class CheckProcess:
    def __init__(self, job: str, agent: str, name: str, command: str, worktree: str,
                 commit: str, timeout_s: int, env: dict[str, str],
                 output: Callable[[bytes], None], confine: Callable[[list[str]], list[str]] | None = None,
                 scratch: Path | None = None) -> None:
        self.job, self.agent, self.name, self.command = job, agent, name, command
        self.worktree, self.commit, self.timeout_s = worktree, commit, timeout_s
        self.env, self.output = dict(env), output
        self.proc: subprocess.Popen | None = None
        self.tail = b""
        self.stop_status: tuple[str, str] | None = None  # (status, reason) once we stop it
        self.term_sent = 0.0
        self.exited_at = 0.0
        self.finished = False
        self.started = 0.0
        self.confine, self.scratch = confine, scratch
        self.sweep: Callable[[], object] | None = None  # the owner's: with every SIGKILL
        if scratch is not None:
            self.junit = scratch / JUNIT_NAME
            self.junit_seen = f"{sandbox.RUN_HOME}/{JUNIT_NAME}" if confine else str(self.junit)
        else:
            fd, junit = tempfile.mkstemp(prefix="cocode-junit-", suffix=".xml")
            os.close(fd)
            os.unlink(junit)  # its existence afterwards says the check wrote one
            self.junit = Path(junit)
            self.junit_seen = junit

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.job, self.agent, self.name)

    def start(self) -> None:
        self.env[envnames.JUNIT_XML] = self.junit_seen
        self.env[envnames.CHECK_NAME] = self.name
        argv = ["/bin/sh", "-c", self.command]
        with reaper.spawning() as keep:  # its Popen waits for it, not the owner's reap()
            self.proc = subprocess.Popen(
                self.confine(argv) if self.confine else argv, cwd=self.worktree, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed as one, sampled as one
                preexec_fn=reaper.preexec(self.confine is not None),  # unconfined: its orphans stay under it
            )
            keep(self.proc.pid)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.started = time.monotonic()

    @property
    def pgid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def fd(self) -> int | None:
        return self.proc.stdout.fileno() if self.proc and self.proc.stdout and not self.proc.stdout.closed else None

    def on_output(self) -> bool:
        """Read what is there (bounded); False at end of file."""
        for _ in range(8):
            try:
                data = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return True
            except (OSError, TypeError):
                data = b""
            if not data:
                self.proc.stdout.close()
                return False
            self.output(data)
            self.tail = (self.tail + data)[-TAIL_BYTES:]
        return True

    def tick(self, now: float) -> None:
        if self.finished:
            return
        if self.proc.poll() is not None:
            if not self.exited_at:
                self.exited_at = now
                self.kill(signal.SIGKILL)  # what it left in its group would hold the pipe
            if self.fd is None or now - self.exited_at > PIPE_DRAIN_S:
                self.finished = True
                self.kill(signal.SIGKILL)
            return
        if not self.stop_status and now - self.started > self.timeout_s:
            self.stop("timeout", f"timed out after {self.timeout_s} s")
        elif self.term_sent and now - self.term_sent > TERM_GRACE_S:
            self.kill(signal.SIGKILL)

    def stop(self, status: str, reason: str) -> None:
        if self.stop_status is None:
            self.stop_status = (status, reason)
        if not self.term_sent:
            self.term_sent = time.monotonic()
            self.kill(signal.SIGTERM)

    def kill(self, sig: int) -> None:
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if sig == signal.SIGKILL and self.sweep is not None:
            self.sweep()  # daemons: their own session, re-parented to the service

    def result(self) -> dict:
        """The check_finished fields: status, exit code, duration, summary, counts."""
        code = self.proc.returncode
        exit_code = code if code is None or code >= 0 else 128 - code
        counts = checks.from_junit(self.junit) or checks.from_last_line(
            self.tail.decode("utf-8", errors="replace"))
        self.junit.unlink(missing_ok=True)
        if self.stop_status:
            status, reason = self.stop_status
        else:
            status, reason = checks.status_for(exit_code, False, counts), ""
        return dict(status=status, reason=reason, exit_code=exit_code, summary=counts.summary,
                    passed=counts.passed, failed=counts.failed,
                    duration_s=round(time.monotonic() - self.started, 3))

    def close(self) -> None:
        if self.proc and self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self.proc is not None and self.proc.returncode is not None:
            reaper.release(self.proc.pid)

