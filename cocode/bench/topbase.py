"""What `cocode bench top` measures the view against, and the gate that makes its
agents stream at the same time.

- The gate: each agent of the bench's jobs is a wrapper that marks itself started
  and then waits for its job's go file before it runs bench/logs.py's writer. The
  bench says go once every agent of a job started, however long cocode took to
  start them on a loaded machine: all of them then stream together for the whole
  measurement (a writer started early no longer ends before the last one starts).
- A bare Textual app (a runs table and one Static showing an agent's last lines,
  fed from the bus by a thread at the view's own cadence) under the same stream:
  the floor any Textual view pays for showing this output and answering a key.
- RSS floors: Python with textual imported, and an empty Textual app.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import psutil
import zmq

from cocode.bench.logs import AGENTS, WRITER
from cocode.core import wire
from cocode.core.sockets import ZMQ_DEFAULT_HWM, subscriber
from cocode.errors import CocodeError
from cocode.gitops.runner import init_repo
from cocode.paths import Paths

GATE = r"""
import os, runpy, sys, time
gate, writer = sys.argv[1], sys.argv[2]
job, agent = os.environ["COCODE_JOB_ID"], os.environ["COCODE_AGENT_NAME"]
open(os.path.join(gate, f"started.{job}.{agent}"), "w").close()
deadline = time.monotonic() + 600
while not os.path.exists(os.path.join(gate, f"go.{job}")):
    if time.monotonic() > deadline:
        sys.exit(f"bench top: no go for job {job} within 600 s")
    time.sleep(0.01)
sys.argv = [writer, *sys.argv[3:]]
runpy.run_path(writer, run_name="__main__")
"""
START_TIMEOUT_S = 180.0  # cocode starting 5 agents on a loaded 2-core machine: generous, but bounded


class Gate:
    def __init__(self, tmp: Path, create: bool = True) -> None:
        self.dir = tmp / "gate"
        self.writer, self.script = tmp / "writer.py", tmp / "gate.py"
        if create:
            self.dir.mkdir()
            self.writer.write_text(WRITER)
            self.script.write_text(GATE)

    def repo(self, seconds: float) -> Paths:
        """A fresh repository (tmp/repo) whose agents stream 1 MB/s for `seconds` once let go."""
        root = self.dir.parent / "repo"
        root.mkdir(parents=True)
        init_repo(root, "bench", name="bench", email="bench@cocode.invalid")
        paths = Paths(root)
        paths.home.mkdir(mode=0o700)
        self.configure(paths, seconds)
        return paths

    def configure(self, paths: Paths, seconds: float) -> None:
        # sandbox off: the gate's files live outside the runs' workspaces.
        lines = ["sandbox: off", "performance:", "  max_concurrent_agents: 5", "  log_max_buffer_mb: 10", "agents:"]
        for name in AGENTS:
            lines += [f"  {name}:", f"    command: ['{sys.executable}', '{self.script}', '{self.dir}', "
                                    f"'{self.writer}', '1.0', '{seconds}']"]
        paths.config.write_text("\n".join(lines) + "\n")

    def started(self, job: str) -> set[str]:
        return {p.name.rsplit(".", 1)[1] for p in self.dir.glob(f"started.{job}.*")}

    def missing(self, job: str, agents) -> str:
        started = self.started(job)
        return ", ".join(a for a in agents if a not in started)

    def go(self, job: str) -> None:
        (self.dir / f"go.{job}").touch()

    def wait_started(self, job: str, agents, timeout: float = START_TIMEOUT_S) -> float:
        """Block until every agent of the job runs (its wrapper started); seconds it took."""
        t0 = time.monotonic()
        while self.missing(job, agents):
            if time.monotonic() - t0 > timeout:
                raise CocodeError(f"bench top: agents {self.missing(job, agents)} of job {job} did not start within "
                                  f"{timeout:.0f} s (`cocode status {job}` says why; a loaded machine?)", 124)
            time.sleep(0.05)
        return time.monotonic() - t0


# -- the bare Textual app ---------------------------------------------------------------------------


class BareFeed(threading.Thread):
    """The job's chunks straight off the bus, handed to the app every 40 ms (the view's
    cadence), no offsets, no backlog: the least a Textual view can do with them."""

    def __init__(self, paths: Paths, job: str, on_batch) -> None:
        super().__init__(daemon=True, name="bench-bare-feed")
        self.paths, self.job, self.on_batch, self.running = paths, job, on_batch, True

    def run(self) -> None:
        sub = subscriber(zmq.Context.instance(), self.paths.endpoint("bus"),
                         [wire.log_topic(self.job, a) for a in AGENTS], hwm=ZMQ_DEFAULT_HWM)
        batch, last = [], time.monotonic()
        try:
            while self.running:
                if sub.poll(10):
                    while True:
                        try:
                            _topic, payload = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        c = wire.log_chunk_decoder.decode(payload)
                        batch.append((c.agent, c.data, time.time()))
                if batch and time.monotonic() - last >= 0.04:
                    self.on_batch(batch)
                    batch, last = [], time.monotonic()
        finally:
            sub.close(0)


def bare_app(paths: Paths, job: str):
    from textual.app import App
    from textual.widgets import DataTable, Static

    class Bare(App):
        CSS = "#runs { height: 8; } #pane { height: 1fr; border: round $primary; }"

        def __init__(self) -> None:
            super().__init__()
            self.lines: deque[str] = deque(maxlen=60)
            self.on_visible = None
            self.feed = BareFeed(paths, job, self._from_feed)

        def compose(self):
            yield DataTable(id="runs", cursor_type="row")
            yield Static("", id="pane", markup=False)

        def on_mount(self) -> None:
            runs = self.query_one("#runs", DataTable)
            runs.add_columns("agent", "state")
            for a in AGENTS:
                runs.add_row(a, "running")
            self.pane = self.query_one("#pane", Static)
            self.feed.start()

        def on_unmount(self) -> None:
            self.feed.running = False

        def _from_feed(self, batch) -> None:
            try:
                self.call_from_thread(self.apply, batch)
            except RuntimeError:
                pass

        def apply(self, batch) -> None:
            shown = [(data, at) for agent, data, at in batch if agent == AGENTS[0]]
            for data, _ in shown:
                self.lines.extend(data.decode(errors="replace").splitlines())
            if shown and self.is_running:
                pane = self.pane
                pane.update("\n".join(list(self.lines)[-max(1, pane.size.height):]))
                if self.on_visible is not None:
                    probe = self.on_visible
                    self.call_after_refresh(lambda: probe(shown))

    return Bare()


# -- RSS floors -------------------------------------------------------------------------------------

IMPORT_FLOOR = "import psutil, textual.app; print(psutil.Process().memory_info().rss)"
EMPTY_APP_FLOOR = r"""
import asyncio, psutil
from textual.app import App
from textual.widgets import Footer, Static

class Floor(App):
    def compose(self):
        yield Static("an empty Textual app")
        yield Footer()

async def main():
    async with Floor().run_test(size=(160, 48)) as pilot:
        await pilot.pause(1.0)
        print(psutil.Process().memory_info().rss)

asyncio.run(main())
"""


def floor_mib(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return round(int(out.stdout.split()[-1]) / 2**20, 1) if out.returncode == 0 else float("nan")


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)
