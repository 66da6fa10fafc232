"""`cocode bench up`: `cocode up --detach` until every service is ready, where the
time goes, and each idle service's memory.

Each round runs, in alternating order, the real command line as a user types it
(`cocode -C REPO up --detach --json`, then `cocode down`) and the same process
shape with nothing of cocode in it: a Python that imports zmq and msgspec starts a
second one that does the same and then seven more in parallel, and waits for them
all (command line -> supervisor -> seven services). That floor is what start-up
would cost if each process only loaded its two libraries; cocode's ratio to it is
what the code adds (the supervisor forks its services from one preloaded process,
forkstart.py, so cocode can take less than the floor's shape). The timeline
(supervisor spawned, each service's "ready" log line, all ready) comes from the
services' own log stamps. cocode's bytecode is compiled first, as installing does
(see compile_package). After the last round the services are left idle for a
moment and their RSS and PSS are read, and the supervisor's, whose pages the forked
services share (not in the total).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from cocode.bench import percentile
from cocode.gitops.runner import init_repo
from cocode.launcher import SERVICE_NAMES
from cocode.paths import Paths

FLOOR = (
    "import subprocess, sys, zmq, msgspec\n"
    "inner = 'import subprocess, sys, zmq, msgspec; "
    "ps = [subprocess.Popen([sys.executable, \"-c\", \"import zmq, msgspec\"]) for _ in range(7)]; "
    "[p.wait() for p in ps]'\n"
    "subprocess.run([sys.executable, '-c', inner], check=True)\n"
)
READY = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+)\[\d+\] INFO ready pid=")
IDLE_S = 4.0  # past the eager heartbeats and the start-up work


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _ready_times(paths: Paths, since: float) -> dict[str, float]:
    """Each service's last "ready" log line after `since` (epoch seconds)."""
    found = {}
    for name in SERVICE_NAMES:
        try:
            lines = (paths.home / "logs" / "services" / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            m = READY.match(line)
            if m and _stamp(m.group(1)) >= since - 0.002:
                found[name] = _stamp(m.group(1))
                break
    return found


def _cocode(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cocode", *args], capture_output=True, text=True, timeout=60)


def _children_cpu_ms() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def _processes_cpu_ms(paths: Paths) -> float:
    """CPU the supervisor and the services have used so far (they are not our
    children: the command line started the supervisor in its own session)."""
    import psutil

    total = 0.0
    for name in ("supervisor", *SERVICE_NAMES):
        try:
            pid = int((paths.run / f"{name}.pid").read_text()) if name != "supervisor" else \
                int(paths.lock.read_text())
            t = psutil.Process(pid).cpu_times()
        except (OSError, ValueError, psutil.Error):
            continue
        total += (t.user + t.system) * 1000
    return total


def _up_once(paths: Paths) -> dict:
    t0 = time.time()
    cpu0 = _children_cpu_ms()
    started = time.monotonic()
    proc = _cocode("-C", str(paths.root), "up", "--detach", "--json")
    wall = time.monotonic() - started
    cpu = _children_cpu_ms() - cpu0 + _processes_cpu_ms(paths)
    if proc.returncode:
        raise RuntimeError(f"cocode up failed: {proc.stderr.strip()}")
    ready_ms = json.loads(proc.stdout)["ready_ms"]
    ready = _ready_times(paths, t0)
    return {"wall_ms": wall * 1000, "ready_ms": ready_ms, "cpu_ms": cpu,
            "service_ready_ms": {n: round((t - t0) * 1000, 1) for n, t in ready.items()}}


def _floor_once() -> tuple[float, float]:
    """(wall ms, CPU ms of all nine processes)"""
    cpu0 = _children_cpu_ms()
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", FLOOR], check=True)
    return (time.monotonic() - started) * 1000, _children_cpu_ms() - cpu0


def _python_pass() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.monotonic() - started) * 1000


def idle_memory(paths: Paths) -> dict:
    import psutil

    rss, pss = {}, {}
    for name in SERVICE_NAMES:
        try:
            p = psutil.Process(int((paths.run / f"{name}.pid").read_text()))
            info = p.memory_full_info()
        except (OSError, ValueError, psutil.Error):
            continue
        rss[name] = round(info.rss / 2**20, 1)
        pss[name] = round(getattr(info, "pss", 0) / 2**20, 1)
    try:  # not in the totals (the target is the seven services'), but forked services share its pages
        sup = psutil.Process(int(paths.lock.read_text())).memory_full_info()
        supervisor = {"rss_mib": round(sup.rss / 2**20, 1), "pss_mib": round(getattr(sup, "pss", 0) / 2**20, 1)}
    except (OSError, ValueError, psutil.Error):
        supervisor = {}
    return {"rss_mib": rss, "pss_mib": pss, "supervisor": supervisor,
            "rss_total_mib": round(sum(rss.values()), 1), "pss_total_mib": round(sum(pss.values()), 1)}


def compile_package() -> bool:
    """Write cocode's bytecode next to its sources, as installing a wheel does: an
    environment with PYTHONDONTWRITEBYTECODE (this VM's has it) would otherwise make
    every process compile every module it imports at each start. False when the
    package directory is not writable (then start-up includes compiling)."""
    import compileall

    import cocode
    import cocode.services

    dirs = {Path(cocode.__file__).parent, Path(cocode.services.__file__).parent}
    return all(compileall.compile_dir(d, quiet=2) and os.access(d, os.W_OK) for d in sorted(dirs))


def run(rounds: int = 5, progress: bool = True) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    compiled = compile_package()
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-up-"))
    repo = tmp / "repo"
    repo.mkdir()
    init_repo(repo, "bench", name="bench", email="bench@cocode.invalid")
    paths = Paths(repo)
    ups, floors, passes = [], [], []
    memory = {}
    try:
        _cocode("-C", str(repo), "up", "--detach")  # warm the page cache and the first database
        _cocode("-C", str(repo), "down")
        for i in range(rounds):
            say(f"round {i + 1}/{rounds} ...")
            order = (_floor_once, None) if i % 2 == 0 else (None, _floor_once)
            for step in order:
                if step is not None:
                    floors.append(step())
                    continue
                ups.append(_up_once(paths))
                if i == rounds - 1:
                    time.sleep(IDLE_S)
                    memory = idle_memory(paths)
                _cocode("-C", str(repo), "down")
            passes.append(_python_pass())
    finally:
        _cocode("-C", str(repo), "down")
        shutil.rmtree(tmp, ignore_errors=True)
    walls = [u["wall_ms"] for u in ups]
    cpus = [u["cpu_ms"] for u in ups]
    floor_cpus = [f[1] for f in floors]
    floors = [f[0] for f in floors]
    readies = [u["ready_ms"] for u in ups]
    per_service = {n: round(percentile([u["service_ready_ms"][n] for u in ups if n in u["service_ready_ms"]], 50), 1)
                   for n in SERVICE_NAMES}
    return {
        "rounds": rounds,
        "bytecode_cached": compiled,
        "up_wall_ms": {"p50": round(percentile(walls, 50), 1), "min": round(min(walls), 1), "max": round(max(walls), 1)},
        "up_ready_ms": {"p50": round(percentile(readies, 50), 1), "min": round(min(readies), 1),
                        "max": round(max(readies), 1)},
        "service_ready_ms_p50": per_service,
        "floor_ms": {"p50": round(percentile(floors, 50), 1), "min": round(min(floors), 1)},
        "python_pass_ms": round(percentile(passes, 50), 1),
        "ratio": round(percentile(walls, 50) / percentile(floors, 50), 2),
        "up_cpu_ms_p50": round(percentile(cpus, 50), 1),
        "floor_cpu_ms_p50": round(percentile(floor_cpus, 50), 1),
        "cpu_ratio": round(percentile(cpus, 50) / percentile(floor_cpus, 50), 2),
        "idle": memory,
        "loadavg": os.getloadavg()[0],
    }


def report(r: dict) -> str:
    svc = ", ".join(f"{n} {v:.0f}" for n, v in r["service_ready_ms_p50"].items())
    idle = r["idle"]
    sup = idle.get("supervisor", {})
    mem = ", ".join(f"{n} {v:.1f}" for n, v in idle.get("rss_mib", {}).items())
    return "\n".join([
        f"`cocode up --detach` ({r['rounds']} rounds, load {r['loadavg']:.1f}, "
        f"bytecode {'cached' if r['bytecode_cached'] else 'NOT cached: compiled at each start'})",
        f"  command line, start to return   p50 {r['up_wall_ms']['p50']:.0f} ms (min {r['up_wall_ms']['min']:.0f}, "
        f"max {r['up_wall_ms']['max']:.0f})",
        f"  its own ready_ms                p50 {r['up_ready_ms']['p50']:.0f} ms (target < 500)",
        f"  each service's ready line, p50  {svc} ms after the command started",
        f"  floor: 1 + 1 + 7 Pythons importing zmq, msgspec  p50 {r['floor_ms']['p50']:.0f} ms "
        f"(`python -c pass` {r['python_pass_ms']:.0f} ms)",
        f"  ratio to the floor              {r['ratio']:.2f}",
        f"  CPU of all processes until ready p50 {r['up_cpu_ms_p50']:.0f} ms vs the floor's "
        f"{r['floor_cpu_ms_p50']:.0f} ms: {r['cpu_ratio']:.2f}",
        f"idle services' RSS {idle.get('rss_total_mib', 0):.1f} MiB (PSS {idle.get('pss_total_mib', 0):.1f}; "
        f"target < 160): {mem}",
        f"  the supervisor: RSS {sup.get('rss_mib', 0):.1f} MiB (PSS {sup.get('pss_mib', 0):.1f})",
    ])
