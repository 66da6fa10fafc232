"""`cocode tail` and `cocode logs`: a run's output for a person (or a program).

Owns what is printed and how: text (an `agent |` prefix when several agents,
coloured on a terminal) or one JSON object per line, and the separator between a
run's attempts (a requeue after its worker was lost, a `cocode say` follow-up, a
check's rerun): `--- attempt 2 (requeued after worker_lost) ---` in text, an
`{"event": "attempt", ...}` object and an `attempt` field on every line in JSON.
A run's attempt N writes from run offset attempt_base(N) (logs/files.py), so the
attempt of every byte is known from its offset alone; why it began is the fold's
(RunView.attempt_causes).

tail: the last lines of each run, then (-f) live, through the collector
(logs/tail.py reads and resumes; this module prints); with cocode down, from
the files. logs: every retained byte of one run (rotated lz4 files, then the live
file), read from .cocode/logs directly, so it works with cocode down too.
"""

from __future__ import annotations

import json
import os
import sys

from cocode import render
from cocode.core import events as ev
from cocode.errors import CocodeError
from cocode.logs.files import RunFiles, attempt_of
from cocode.logs.printer import LONG_LINE, Printer
from cocode.paths import Paths
from cocode.runkey import RunKey


class Output:
    """Text (prefixed when several agents, coloured on a terminal) or JSON lines,
    with a separator where a later attempt's output begins."""

    def __init__(self, job: str, agents: list[str], as_json: bool, colour: bool,
                 causes: dict[str, dict[int, str]] | None = None) -> None:
        self.job, self.as_json = job, as_json
        self.lines: list[str] = []
        echo = self.lines.append
        self.text = Printer(echo, colour, agents)
        self.partial: dict[str, tuple[int, bytes]] = {}
        self.causes = {a: dict(c) for a, c in (causes or {}).items()}
        self.attempt: dict[str, int] = {}  # per agent: the attempt being shown
        self.next: dict[str, int] = {}  # per agent: the offset after the last byte shown

    def set_cause(self, agent: str, attempt: int, cause: str) -> None:
        self.causes.setdefault(agent, {})[attempt] = cause

    def begin(self, agent: str, offset: int) -> None:
        """What is shown of `agent` continues from `offset`: a jump ends its line, and a
        later attempt than the one shown gets its separator (the first call says where
        showing starts: no separator, nothing before it is shown)."""
        n = attempt_of(offset)
        shown = self.attempt.get(agent)
        if self.next.get(agent, offset) != offset:
            self.flush_agent(agent)
        if shown is None:
            self.attempt[agent] = n
        elif n > shown:
            self.flush_agent(agent)
            self.attempt[agent] = n
            self.separator(agent, n)
        self.next[agent] = offset

    def separator(self, agent: str, attempt: int) -> None:
        cause = self.causes.get(agent, {}).get(attempt, "")
        if self.as_json:
            self.lines.append(json.dumps({"job": self.job, "agent": agent, "attempt": attempt,
                                          "event": "attempt", "cause": cause}))
        else:
            self.text.line(agent, f"--- attempt {attempt}{f' ({cause})' if cause else ''} ---")

    def chunk(self, agent: str, offset: int, data: bytes) -> None:
        if not data:
            return
        self.begin(agent, offset)
        self.next[agent] = offset + len(data)
        if not self.as_json:
            self.text.chunk(agent, data)
            return
        start, buf = self.partial.get(agent, (offset, b""))
        buf += data
        pos = 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            self._json_line(agent, start + pos, buf[pos:nl])
            pos = nl + 1
        rest = buf[pos:]
        if len(rest) > LONG_LINE:  # show a very long line in pieces rather than hold it all
            self._json_line(agent, start + pos, rest)
            start, pos, rest = start + len(buf), 0, b""
        self.partial[agent] = (start + pos, rest)

    def _json_line(self, agent: str, offset: int, line: bytes) -> None:
        self.lines.append(json.dumps({"job": self.job, "agent": agent, "offset": offset,
                                      "attempt": attempt_of(offset), "line": line.decode("utf-8", "replace")}))

    def notice(self, agent: str, text: str) -> None:
        if self.as_json:
            self.lines.append(json.dumps({"job": self.job, "agent": agent, "notice": text}))
        else:
            self.text.line(agent, f"-- {text}")

    def final(self, event: ev.RunFinished | ev.CheckFinished) -> None:
        self.flush_agent(event.agent)
        if self.as_json and isinstance(event, ev.CheckFinished):
            self.lines.append(json.dumps({
                "job": self.job, "agent": event.agent, "event": "check_finished", "status": event.status,
                "summary": event.summary, "exit_code": event.exit_code, "reason": event.reason}))
        elif self.as_json:
            self.lines.append(json.dumps({
                "job": self.job, "agent": event.agent, "event": "run_finished", "state": event.state,
                "reason": event.reason, "exit_code": event.exit_code, "detail": event.detail}))
        else:
            self.notice(event.agent, render.run_event_summary(event) or event.state)

    def flush_agent(self, agent: str) -> None:
        """Print the agent's last line even without its newline (its output ended)."""
        if self.as_json:
            start, rest = self.partial.pop(agent, (0, b""))
            if rest:
                self._json_line(agent, start, rest)
            return
        self.text.flush(agent)

    def flush_all(self) -> None:
        for agent in list(self.partial) + list(self.text.partial):
            self.flush_agent(agent)

    def emit(self) -> None:
        """Write what is pending to stdout, at once (a pipe reader sees it now)."""
        if self.lines:
            text = "\n".join(self.lines) + "\n"
            self.lines.clear()
            sys.stdout.write(text)
            sys.stdout.flush()


# -- entry points --------------------------------------------------------------------------------


def resolve(paths: Paths, job_id: str, agents: tuple[str, ...]):
    from cocode import client

    state = client.current_state(paths)
    job = state.jobs.get(job_id)
    if job is None:
        raise CocodeError(f"no job {job_id!r}; `cocode status` lists them")
    for a in agents:
        if RunKey.split_check(a)[0] not in job.runs:
            raise CocodeError(f"job {job_id} has no agent {a!r} (it has {', '.join(job.agents)})")
    # Unnamed: every run, and the checks that ran on it (their own logs, `AGENT/check:NAME`).
    checks = [RunKey(job_id, a).check_log(n).agent for a in job.agents for n in job.runs[a].checks]
    return state, list(agents) or list(job.agents) + checks


def causes_of(state, job_id: str, names) -> dict[str, dict[int, str]]:
    """Why each run's later attempts began (a check's reruns have no cause to say)."""
    job = state.jobs.get(job_id) if state is not None else None
    if job is None:
        return {}
    return {a: job.runs[a].attempt_causes for a in names if a in job.runs}


def tail(paths: Paths, job_id: str, agents: tuple[str, ...], lines: int, follow: bool,
         as_json: bool, colour: bool = False) -> int:
    """Print to stdout; `colour` colours the text prefixes."""
    from cocode import client

    state, names = resolve(paths, job_id, agents)
    out = Output(job_id, names, as_json, colour=colour and not as_json, causes=causes_of(state, job_id, names))
    try:
        if not client.is_running(paths):
            if follow:
                raise client.not_running(paths)
            for a in names:  # cocode is down: what the files hold
                for offset, data in RunFiles(paths.logs, job_id, a).last_lines(lines):
                    out.chunk(a, offset, data)
                out.flush_agent(a)
            out.emit()
            return 0
        from cocode.logs.tail import Tail

        return Tail(paths, job_id, names, lines, follow, out, state).run()
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def print_logs(paths: Paths, job_id: str, agent: str, terminal: bool = False,
               as_json: bool = False) -> int:
    """Every retained byte of the run to stdout, attempts apart: into a pipe or file
    the bytes as stored with a separator line before each later attempt, made safe
    when `terminal` says stdout is one, or (as_json) a JSON object per line as
    `tail --json` prints them."""
    from cocode import client

    files = RunFiles(paths.logs, job_id, agent)
    manifest = files.read_manifest()
    if manifest is None:
        resolve(paths, job_id, (agent,))  # a clear error for a wrong job or agent
        return 0  # a run that wrote nothing (yet)
    state = None
    if attempt_of(manifest.start) > 1:  # separators to show: why each attempt began is the fold's
        try:
            state = client.current_state(paths)
        except CocodeError:
            pass  # the files alone: separators without their causes
    try:
        out = Output(job_id, [agent], as_json, colour=False, causes=causes_of(state, job_id, [agent]))
        if as_json or terminal:
            for offset, block in files.iter_at():
                out.chunk(agent, offset, block)
                out.emit()  # a block at a time: a long log is never held whole
            out.flush_agent(agent)
            out.emit()
            return 0
        raw, last = sys.stdout.buffer, b"\n"
        for offset, block in files.iter_at():
            out.begin(agent, offset)
            if out.lines:  # a separator, on a line of its own
                line = ("\n".join(out.lines) + "\n").encode()
                out.lines.clear()
                raw.write(line if last == b"\n" else b"\n" + line)
            raw.write(block)
            out.next[agent], last = offset + len(block), block[-1:]
        raw.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def print_raw(paths: Paths, job_id: str, agent: str) -> int:
    """A formatted run's original stdout (redacted), every attempt's, oldest first."""
    from cocode.logs.structured import raw_files

    found = raw_files(paths.logs / "raw", job_id, agent)
    if not found:
        resolve(paths, job_id, (agent,))  # a clear error for a wrong job or agent
        raise CocodeError(f"{job_id}/{agent} has no raw output: only agents with a format "
                          f"other than text keep one (`cocode logs {job_id} {agent}` shows its output)")
    try:
        out = sys.stdout.buffer
        for path in found:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    out.write(block)
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    """The reader went away (`| head`): exit without a BrokenPipeError at shutdown."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
