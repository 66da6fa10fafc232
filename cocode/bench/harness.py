"""What ADR-005's load scenarios share: a deterministic generated repository, one
configurable agent, a cocode started on it, and the per-run measurements.

The agent (AGENT, stdlib Python) stamps the moment it starts, may write stamped
log lines at a rate, grow its memory, run for a while, and then commits with the
ready marker, stamping when that commit returned. From the stamps and the events:
- start: submit -> agent exec (ADR-005: < 5 s; ours: < 50 ms with the pool);
- ready: commit returned -> `run_ready` in the log (ADR: < 2 s; ours p99 < 100 ms);
- log: a stamped line written -> its chunk published on the bus, the path
  `cocode tail` shows (ADR: < 500 ms; ours p99 < 10 ms);
- memory: cocode's services' RSS, and the agents' (ADR: < 3 GB for 5 agents).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import psutil
import zmq

from cocode import client, updown
from cocode.bench import percentile
from cocode.bench.stamped import STAMP
from cocode.client import append_one, current_state
from cocode.configload import load_config
from cocode.core import wire
from cocode.core.sockets import ZMQ_DEFAULT_HWM, subscriber
from cocode.errors import EXIT_TIMEOUT, CocodeError
from cocode.gitops.runner import init_repo
from cocode.jobs.submit import Issue, build_job
from cocode.launcher import SERVICE_NAMES
from cocode.paths import Paths

AGENT = r"""
import os, subprocess, sys, time
env = os.environ
out, job, name = env["BENCH_OUT"], env["COCODE_JOB_ID"], env["COCODE_AGENT_NAME"]
def stamp(what, value=None):
    with open(os.path.join(out, f"{job}-{name}.{what}"), "w") as f:
        f.write(str(value if value is not None else time.time_ns()))
stamp("exec")
rate, seconds = float(env.get("BENCH_LOG_MB_S", "0")), float(env.get("BENCH_SECONDS", "0"))
grow = int(env.get("BENCH_GROW_MB", "0"))
blocks, page = [], os.sysconf("SC_PAGE_SIZE")
line_len, period = 1000, 0.005
per_tick = max(1, int(rate * 1e6 * period / line_len)) if rate else 0
t0, n = time.monotonic(), 0
while time.monotonic() - t0 < seconds or len(blocks) * 4 < grow:
    if len(blocks) * 4 < grow:
        blocks.append(bytearray(4 << 20))
        blocks[-1][::page] = b"x" * len(range(0, 4 << 20, page))
    if per_tick:
        stamp_b = b"T%d " % time.time_ns()
        os.write(1, ((stamp_b + b"x" * line_len)[: line_len - 1] + b"\n") * per_tick)
    elif n % 200 == 0:
        os.write(1, b"T%d alive\n" % time.time_ns())
    n += 1
    delay = t0 + n * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
if env.get("BENCH_HOLD"):
    while not os.path.exists(env["BENCH_HOLD"]):
        time.sleep(0.05)
subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "bench", "-m", env["COCODE_READY_MARKER"]], check=True)
stamp("commit")
"""
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@cocode.invalid",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@cocode.invalid",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def generate_repo(root: Path, *, size_mb: float, dirs: int = 50, blob_share: float = 0.3, seed: int = 5) -> Path:
    """A repository of about `size_mb`: many 10 KB text files in `dirs` directories
    and a few large incompressible blobs (`blob_share` of the size). Deterministic:
    the same arguments give the same commit."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    total = int(size_mb * 2**20)
    blobs = int(total * blob_share)
    small = total - blobs
    line = b"".join(b"%05d abcdefghijklmnopqrstuvwxyz0123456789 lorem ipsum dolor sit amet\n" % i for i in range(140))
    for i in range(max(1, small // len(line))):
        d = root / f"pkg{i % dirs:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.txt").write_bytes(line.replace(b"abc", b"%03d" % (i % 1000)))
    nblobs = max(1, blobs // (8 * 2**20)) if blobs else 0
    if nblobs:
        (root / "assets").mkdir()
    for i in range(nblobs):
        (root / "assets" / f"blob{i}.bin").write_bytes(rng.randbytes(blobs // nblobs))
    init_repo(root, "generated", name="bench", email="bench@cocode.invalid")
    return root


class Scene:
    """cocode running on a repository with agents that all run AGENT, each with its
    own environment; `submit` one job, then `collect` what its runs measured."""

    def __init__(self, tmp: Path, repo: Path, performance: dict, agents: dict[str, dict]) -> None:
        self.tmp, self.paths = tmp, Paths(repo)
        self.out = tmp / "out"
        self.out.mkdir()
        script = tmp / "agent.py"
        script.write_text(AGENT)
        table = {}
        for name, opts in agents.items():
            env = {**IDENTITY, "BENCH_OUT": str(self.out), **{k: str(v) for k, v in opts.get("env", {}).items()}}
            table[name] = {"command": [sys.executable, str(script)], "env": env,
                           **{k: v for k, v in opts.items() if k != "env"}}
        self.paths.home.mkdir(mode=0o700, exist_ok=True)
        # sandbox off: these agents report through files outside their workspace, which
        # the sandbox hides; `cocode bench sandbox` measures the sandbox's own cost.
        config = {"performance": performance, "agents": table, "sandbox": "off"}
        self.paths.config.write_text(json.dumps(config, indent=1))
        self.config = load_config(self.paths.config)
        self.submitted: dict[str, int] = {}
        self.log_ms: list[float] = []
        self._stop = threading.Event()
        self._sub: threading.Thread | None = None
        self._sampler: threading.Thread | None = None
        # Each service's RSS over the scenario (`bench plot` draws it): seconds since
        # cocode was started, and MiB per service at those moments.
        self.timeline: dict = {"t": [], "services_mib": {name: [] for name in SERVICE_NAMES}}

    def __enter__(self) -> "Scene":
        updown.start_detached(self.paths)
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)
        self._sampler.start()
        self.warm_pool()
        self._sub = threading.Thread(target=self._listen, daemon=True)
        self._sub.start()
        time.sleep(0.2)  # the subscription is in place before any agent writes
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in (self._sub, self._sampler):
            if thread:
                thread.join(timeout=5)
        updown.stop(self.paths)

    def _sample_memory(self, every: float = 0.25) -> None:
        """Each service's RSS every `every` s until the scenario ends (a pid file read
        and one /proc read per service: no walk of every process)."""
        t0 = time.monotonic()
        procs: dict[str, psutil.Process] = {}
        while not self._stop.wait(every):
            self.timeline["t"].append(round(time.monotonic() - t0, 2))
            for name in SERVICE_NAMES:
                mib = None
                try:
                    if name not in procs:  # a restarted service has a new pid: looked up again
                        procs[name] = psutil.Process(int((self.paths.run / f"{name}.pid").read_text()))
                    mib = round(procs[name].memory_info().rss / 2**20, 1)
                except (OSError, ValueError, psutil.Error):
                    procs.pop(name, None)
                self.timeline["services_mib"][name].append(mib)

    def warm_pool(self, timeout: float = 120.0) -> None:
        """Until the worktree pool is full (an idle cocode's state), if it has one."""
        from cocode.gitops.pool import WorktreePool
        from cocode.gitops.size import LIGHT_WORKTREE_BYTES, repo_size

        size = self.config.limits.worktree_pool
        if not size or repo_size(self.paths.root).worktree_bytes > LIGHT_WORKTREE_BYTES:
            return
        pool = WorktreePool(self.paths.root, self.paths.pool)
        deadline = time.monotonic() + timeout
        while len(pool.ready()) < size and time.monotonic() < deadline:
            time.sleep(0.05)

    def submit(self, agents: list[str], sparse: tuple[str, ...] = ()) -> str:
        event, _ = build_job(self.paths, self.config, Issue("bench", "bench"), agents, sparse=sparse)
        self.submitted[event.job] = time.time_ns()
        append_one(self.paths, event)
        return event.job

    def _listen(self) -> None:
        """Every log chunk on the bus: the stamped lines' latency to here."""
        ctx = zmq.Context.instance()
        sub = subscriber(ctx, self.paths.endpoint("bus"), [b"log."], hwm=ZMQ_DEFAULT_HWM)
        try:
            while not self._stop.is_set():
                if not sub.poll(100):
                    continue
                frames = sub.recv_multipart()
                now = time.time_ns()
                try:
                    chunk = wire.log_chunk_decoder.decode(frames[-1])
                except msgspec.MsgspecError:
                    continue
                for m in STAMP.finditer(chunk.data):
                    self.log_ms.append((now - int(m.group(1))) / 1e6)
        finally:
            sub.close(0)

    def wait(self, jobs: list[str], timeout: float, until=lambda job: job.done):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = current_state(self.paths)
            if all(j in state.jobs and until(state.jobs[j]) for j in jobs):
                return state
            time.sleep(0.1)
        runs = [f"{j}/{r.agent} {r.state} {r.reason or ''}".strip()
                for j in jobs if j in state.jobs for r in state.jobs[j].runs.values()]
        raise CocodeError(f"scenario: jobs not there within {timeout:g}s (runs: {'; '.join(runs)}; "
                          f"pressure {'on' if state.pressure else 'off'}): retry on a quieter machine",
                          EXIT_TIMEOUT)

    def runs(self, jobs: list[str]) -> dict:
        """Per run: state, reason, start ms, ready ms (from the stamps and the events)."""
        state = current_state(self.paths)
        ready_at = {(e.job, e.agent): e.ts for e in client.events(self.paths, types={"run_ready"})}
        out = {}
        for job in jobs:
            for run in state.jobs[job].runs.values():
                key = f"{job}-{run.agent}"
                r = {"state": run.state, "reason": run.reason}
                exec_ns = _read(self.out / f"{key}.exec")
                if exec_ns:
                    r["start_ms"] = (exec_ns - self.submitted[job]) / 1e6
                commit_ns = _read(self.out / f"{key}.commit")
                if commit_ns and (job, run.agent) in ready_at:
                    r["ready_ms"] = max(0.0, (ready_at[(job, run.agent)] * 1e9 - commit_ns) / 1e6)
                out[f"{job}/{run.agent}"] = r
        return out

    def memory_mib(self) -> dict:
        """RSS of cocode's services and of every agent process, in MiB."""
        services = 0.0
        for name in SERVICE_NAMES:
            try:
                services += psutil.Process(int((self.paths.run / f"{name}.pid").read_text())).memory_info().rss
            except (OSError, ValueError, psutil.Error):
                pass
        agents = 0.0
        where = str(self.paths.home)
        for p in psutil.process_iter(["cwd"]):
            try:
                if (p.info["cwd"] or "").startswith(where):
                    agents += p.memory_info().rss
            except psutil.Error:
                continue
        return {"services_mib": round(services / 2**20, 1), "agents_mib": round(agents / 2**20, 1)}


def _read(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def stats(values: list[float]) -> dict:
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2) if values else None, "n": len(values)}


def check(value, limit: float, unit: str) -> dict:
    """One target: the measured value, the limit, and whether it is met."""
    ok = value is not None and value == value and value < limit  # NaN fails
    return {"value": value, "limit": limit, "unit": unit, "ok": bool(ok)}


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
