"""`cocode bench top`: the live view driven headless (Textual's pilot) in this
process while 5 agents each stream 1 MB/s of stamped ~1 KB lines (bench/logs.py's
writer), on a fresh repository with cocode started there. The agents are gated
(bench/topbase.py): they stream only once all five run, so every phase measures 5
agents streaming together however long cocode took to start them.

- agent output -> visible: each batch the app applies asks for a callback after
  the next screen refresh; the newest line stamp of each shown chunk against the
  clock then is the latency (write -> pipe -> worker -> collector/bus -> feed
  thread -> app -> painted). Baselines, printed as ratios: the same stamps when
  the feed thread received them from the bus (what any subscriber sees, same
  run); and a bare Textual app showing the same kind of stream (its own job,
  same load), i.e. what any Textual view pays.
- key press -> screen updated: a cursor move in the runs table every 200 ms while
  streaming (timed until the cursor moved and the screen was refreshed), and after
  the stream 20 switches between two jobs (panes rebuilt). Baselines: the bare app's
  cursor moves while its stream runs; the view's own with nothing streaming.
- the TUI's RSS (peak) and CPU while streaming, in this process and for a real
  `cocode top` in tmux (what a person runs); RSS floors: Python with textual
  imported, an empty Textual app.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from cocode import updown
from cocode.bench import percentile
from cocode.bench.logs import AGENTS
from cocode.bench.stamped import STAMP
from cocode.bench.topbase import EMPTY_APP_FLOOR, IMPORT_FLOOR, START_TIMEOUT_S, Gate, cpu_seconds, floor_mib, loadavg
from cocode.configload import load_config
from cocode.errors import CocodeError

# Every phase measures the stream minus its first WARM_UP_S (agents starting, the
# first lines reaching the view): with less than MEASURED_S left, a phase saw a
# handful of key presses or none, and its percentiles were noise or NaN.
WARM_UP_S = 1.5
MEASURED_S = 3.5
MIN_SECONDS = WARM_UP_S + MEASURED_S


class Probe:
    """Line stamps against the clock when shown (and when the feed received them)."""

    def __init__(self) -> None:
        self.visible: list[float] = []
        self.received: list[float] = []
        self.on = False

    def record(self, newest: bytes, at: float, now: int) -> None:
        stamps = STAMP.findall(newest)
        if stamps:
            sent = int(stamps[-1])
            self.visible.append((now - sent) / 1e6)
            self.received.append((at * 1e9 - sent) / 1e6)

    def chunks(self, chunks) -> None:
        """TopApp's chunks: the newest complete line of each."""
        if self.on:
            now = time.time_ns()
            for c in chunks:
                lines = getattr(c, "lines", None)  # a view that sends bytes has no lines
                self.record(lines[-1].encode() if lines else c.data[-2000:], c.at, now)

    def pairs(self, pairs) -> None:
        """The bare app's (bytes, received at)."""
        if self.on:
            now = time.time_ns()
            for data, at in pairs:
                self.record(data[-2000:], at, now)


async def refreshed(app) -> float:
    fut = asyncio.get_running_loop().create_future()
    app.call_after_refresh(lambda: fut.done() or fut.set_result(time.perf_counter()))
    return await fut


async def press(app, key: str, changed) -> float:
    """A key event as the terminal driver delivers it; timed until `changed()` holds
    and the screen was refreshed after it (pilot.press waits for idle: no timer)."""
    from textual import events  # here: cocode.top (drive's import) sets textual's frame rate before its first import

    t0 = time.perf_counter()
    app.post_message(events.Key(key, None))
    deadline = t0 + 10
    while not changed():
        if time.perf_counter() > deadline:
            raise CocodeError(f"bench top: key {key!r} changed nothing within 10 s", 124)
        await asyncio.sleep(0.0005)
    return (await refreshed(app) - t0) * 1000


async def cursor_presses(app, seconds: float) -> list[float]:
    runs = app.query_one("#runs")
    runs.focus()
    out, deadline, i = [], time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        before = runs.cursor_row
        key = "down" if before == 0 or (before < runs.row_count - 1 and i % 8 < 4) else "up"
        out.append(await press(app, key, lambda: runs.cursor_row != before))
        i += 1
        await asyncio.sleep(0.2)
    return out


async def job_switches(app, n: int = 20) -> list[float]:
    jobs = app.query_one("#jobs")
    jobs.focus()
    await until(lambda: app.focused is jobs, 10, "the jobs table focused")
    out = []
    for _ in range(n):
        before = app.job
        out.append(await press(app, "down" if jobs.cursor_row == 0 else "up", lambda: app.job != before))
        await asyncio.sleep(0.1)
    return out


async def until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise CocodeError(f"bench top: {what} did not happen within {timeout:.0f} s", 124)
        await asyncio.sleep(0.05)


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise CocodeError(f"bench top: {what} did not happen within {timeout:.0f} s", 124)
        time.sleep(0.05)


def submit(paths, agents, title) -> str:
    """`cocode submit` in its own process: this one's RSS stays the view's."""
    args = [a for name in agents for a in ("--agent", name)]
    out = subprocess.run([sys.executable, "-m", "cocode", "-C", str(paths.root), "submit", "--text", title, *args,
                          "--json"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CocodeError(f"bench top: cocode submit failed: {out.stderr.strip()}")
    return json.loads(out.stdout)["job"]


async def start_streaming(gate: Gate, job: str, agents) -> None:
    """Every agent of the job running, then go: they stream together from now."""
    await asyncio.to_thread(gate.wait_started, job, agents)
    gate.go(job)


async def measure(proc: psutil.Process, app, seconds: float, probe: Probe) -> dict:
    """Key presses while the stream runs, the process's CPU and peak RSS meanwhile."""
    try:
        await until(lambda: probe.visible, 30, "the first streamed line shown")
    except CocodeError as err:
        panes = {a: (p.total_lines, p.unseen) for a, p in getattr(app, "panes", {}).items()}
        streams = {a: (getattr(s, "shown", True), s.expected, bool(s.asked_at)) for a, s in getattr(app.feed, "streams", {}).items()}
        raise CocodeError(f"{err.message} (job {getattr(app, 'job', '?')}, hidden {sorted(getattr(app, 'hidden', []))}, "
                          f"panes lines/unseen {panes}, feed shown/expected/asking {streams}) {getattr(app.feed, 'dbg', None)} now {time.monotonic() % 1000:.1f}", err.exit_code) from None
    peak, c0, t0 = 0, cpu_seconds(proc), time.monotonic()
    keys_task = asyncio.ensure_future(cursor_presses(app, seconds))
    while not keys_task.done():
        peak = max(peak, proc.memory_info().rss)
        await asyncio.sleep(0.25)
    cpu = (cpu_seconds(proc) - c0) / (time.monotonic() - t0) * 100
    return {"keys": keys_task.result(), "cpu": cpu, "peak": peak}


def bare_phase(paths, tmp: Path, seconds: float, say) -> dict:
    """The bare Textual app, in a process of its own: its CPU and RSS are its own."""
    say(f"baseline: a bare Textual app showing 5 agents x 1 MB/s for {seconds:g} s ...")
    out = subprocess.run([sys.executable, "-m", "cocode.bench.topbare", str(paths.root), str(tmp), str(seconds)],
                         capture_output=True, text=True, timeout=START_TIMEOUT_S + seconds + 120)
    if out.returncode != 0:
        raise CocodeError(f"bench top: the bare Textual baseline failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout)


def job_done(paths, job: str) -> bool:
    from cocode import client

    j = client.current_state(paths).jobs.get(job)
    return j is not None and j.done


async def drive(paths, gate: Gate, seconds: float, say) -> dict:
    from cocode.top.app import TopApp

    config = load_config(paths.config)
    proc = psutil.Process()
    probe = Probe()
    app = TopApp(paths, config, config.limits.tui_log_lines)
    app.on_visible = probe.chunks
    async with app.run_test(size=(160, 48)) as pilot:
        small = await asyncio.to_thread(submit, paths, AGENTS[:2], "bench top: the other job")
        await start_streaming(gate, small, AGENTS[:2])
        await until(lambda: small in app.model.state.jobs and app.model.state.jobs[small].done,
                    seconds + 60, "the first job's end")
        say("idle baseline: key presses and CPU with nothing streaming ...")
        await pilot.pause(1.0)
        c0, t0 = cpu_seconds(proc), time.monotonic()
        idle_keys = await cursor_presses(app, min(seconds, 5.0))
        idle_cpu = (cpu_seconds(proc) - c0) / (time.monotonic() - t0) * 100
        idle_rss = proc.memory_info().rss
        say(f"streaming: {len(AGENTS)} agents x 1 MB/s for {seconds:g} s, shown in the app ...")
        job = await asyncio.to_thread(submit, paths, AGENTS, "bench top: 5 agents streaming")
        app.query_one("#jobs").focus()
        await until(lambda: job in app.model.state.jobs, 30, "the job's arrival in the view")
        for _ in range(5):  # listed first; the cursor stayed on the job it was on
            if app.job == job:
                break
            await pilot.press("up")
            await pilot.pause(0.2)
        await until(lambda: app.job == job, 10, f"selecting job {job} in the view")
        await start_streaming(gate, job, AGENTS)
        await until(lambda: all(r.state == "running" for r in app.model.state.jobs[job].runs.values()),
                    30, "the view showing 5 agents running")
        probe.on = True
        m = await measure(proc, app, seconds - WARM_UP_S, probe)
        probe.on = False
        await until(lambda: app.model.state.jobs[job].done, seconds + 60, "the stream's end")
        say("switching between the two jobs ...")
        switches = await job_switches(app)
        batches = app.batches
    return {
        "visible_p50_ms": round(percentile(probe.visible, 50), 2),
        "visible_p99_ms": round(percentile(probe.visible, 99), 2),
        "received_p50_ms": round(percentile(probe.received, 50), 2),
        "received_p99_ms": round(percentile(probe.received, 99), 2),
        "visible_samples": len(probe.visible),
        "key_p50_ms": round(percentile(m["keys"], 50), 2),
        "key_p99_ms": round(percentile(m["keys"], 99), 2),
        "key_samples": len(m["keys"]),
        "idle_key_p99_ms": round(percentile(idle_keys, 99), 2),
        "switch_p50_ms": round(percentile(switches, 50), 2),
        "switch_p99_ms": round(percentile(switches, 99), 2),
        "rss_peak_mib": round(m["peak"] / 2**20, 1),
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "cpu_percent": round(m["cpu"], 1),
        "idle_cpu_percent": round(idle_cpu, 1),
        "batches": batches,
    }


def real_terminal(paths, gate: Gate, seconds: float, say) -> dict:
    """`cocode top` as a person runs it (its own process, in tmux at 160x48): RSS and
    CPU idle, then while 5 agents stream; empty if tmux is missing."""
    if shutil.which("tmux") is None:
        return {}
    say(f"real terminal: `cocode top` in tmux, idle then 5 agents x 1 MB/s for {seconds:g} s ...")
    tmux = ["tmux", "-L", f"cocode-bench-top-{os.getpid()}"]

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True,
                              timeout=10).stdout

    def find() -> psutil.Process | None:
        return next((p for p in psutil.process_iter(["cmdline"])
                     if (p.info["cmdline"] or [])[-1:] == ["top"] and str(paths.root) in p.info["cmdline"]), None)

    from cocode import client
    shown_job = max(client.current_state(paths).jobs.values(), key=lambda j: j.seq).job
    subprocess.run([*tmux, "new-session", "-d", "-s", "top", "-x", "160", "-y", "48",
                    shlex.join(["exec", sys.executable, "-m", "cocode", "-C", str(paths.root), "top"])],
                   check=True, env={**os.environ, "TERM": "xterm-256color"}, timeout=30)
    try:
        wait_for(lambda: find() is not None, 30, "`cocode top` starting in tmux")
        proc = find()
        wait_for(lambda: shown_job in screen() and "up ·" in screen(), 30,
                 f"`cocode top` in tmux showing job {shown_job} and cocode up")
        c0 = cpu_seconds(proc)
        time.sleep(3.0)  # the idle measurement's window; RSS at its end (the backlog's load has passed)
        idle_cpu = (cpu_seconds(proc) - c0) / 3.0 * 100
        idle_rss = proc.memory_info().rss
        job = submit(paths, AGENTS, "bench top: in a real terminal")
        wait_for(lambda: job in screen(), 30, f"job {job} listed in tmux")
        # The new job is listed first, the cursor stays on the job it was on: select it.
        subprocess.run([*tmux, "send-keys", "-t", "top", "Up"], check=True, timeout=10)
        wait_for(lambda: "a5" in screen(), 30, "the streaming job's tabs shown in tmux")
        gate.wait_started(job, AGENTS)
        gate.go(job)
        wait_for(lambda: "T1" in screen(), 30, "streamed lines in tmux")
        peak, t0, c0 = 0, time.monotonic(), cpu_seconds(proc)
        while time.monotonic() - t0 < seconds - WARM_UP_S:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.25)
        cpu = (cpu_seconds(proc) - c0) / (time.monotonic() - t0) * 100
        return {"term_idle_rss_mib": round(idle_rss / 2**20, 1), "term_idle_cpu_percent": round(idle_cpu, 1),
                "term_rss_peak_mib": round(peak / 2**20, 1), "term_cpu_percent": round(cpu, 1)}
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def run(seconds: float = 10.0, progress: bool = True) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    if seconds < MIN_SECONDS:
        raise CocodeError(f"bench top: --seconds {seconds:g} is too short: give at least {MIN_SECONDS:g}"
                          f" (the stream's first {WARM_UP_S:g} s are its warm-up, the {MEASURED_S:g} s after"
                          " are what is measured)", 2)
    # Killed (timeout, kill): stop the cocode started here on the way out, as on an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-top-"))
    load = loadavg()
    try:
        gate = Gate(tmp)
        paths = gate.repo(seconds)
        updown.start_detached(paths)
        try:
            result = bare_phase(paths, tmp, seconds, say)
            result.update(asyncio.run(drive(paths, gate, seconds, say)))
            result.update(real_terminal(paths, gate, seconds, say))
        finally:
            updown.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(textual_floor_mib=floor_mib(EMPTY_APP_FLOOR), import_floor_mib=floor_mib(IMPORT_FLOOR),
                  agents=len(AGENTS), agent_mb_per_s=1.0, seconds=seconds, load_avg_1m=load,
                  load_avg_1m_end=loadavg(), start_timeout_s=START_TIMEOUT_S)
    return result


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and b == b and a == a else "n/a"


def report(r: dict) -> str:
    lines = [
        f"agent output -> visible      p50 {r['visible_p50_ms']:.2f} ms  p99 {r['visible_p99_ms']:.2f} ms"
        f"   ({r['agents']} agents x 1 MB/s, {r['visible_samples']} chunks; target p99 < 50 ms)",
        f"  baseline: -> feed thread   p50 {r['received_p50_ms']:.2f} ms  p99 {r['received_p99_ms']:.2f} ms"
        f"   (view / feed p99 {ratio(r['visible_p99_ms'], r['received_p99_ms'])})",
        f"  baseline: bare Textual app p50 {r['bare_visible_p50_ms']:.2f} ms  p99 {r['bare_visible_p99_ms']:.2f} ms"
        f"   (view / bare p50 {ratio(r['visible_p50_ms'], r['bare_visible_p50_ms'])},"
        f" p99 {ratio(r['visible_p99_ms'], r['bare_visible_p99_ms'])})",
        f"key press -> screen updated  p50 {r['key_p50_ms']:.2f} ms  p99 {r['key_p99_ms']:.2f} ms"
        f"   ({r['key_samples']} presses while streaming; target p99 < 30 ms)",
        f"  baseline: bare Textual app p50 {r['bare_key_p50_ms']:.2f} ms  p99 {r['bare_key_p99_ms']:.2f} ms"
        f"   (view / bare p99 {ratio(r['key_p99_ms'], r['bare_key_p99_ms'])});"
        f" the view idle p99 {r['idle_key_p99_ms']:.2f} ms",
        f"job switch (panes rebuilt)   p50 {r['switch_p50_ms']:.2f} ms  p99 {r['switch_p99_ms']:.2f} ms",
        f"TUI CPU while streaming      {r['cpu_percent']:.1f}% of a core   (idle {r['idle_cpu_percent']:.1f}%;"
        f" bare Textual app {r['bare_cpu_percent']:.1f}%, view / bare {ratio(r['cpu_percent'], r['bare_cpu_percent'])};"
        " target < 15%)",
        f"TUI RSS peak, in this process {r['rss_peak_mib']:.1f} MiB   (idle {r['idle_rss_mib']:.1f} MiB)",
    ]
    if "term_rss_peak_mib" in r:
        lines += [f"`cocode top` in tmux: RSS peak {r['term_rss_peak_mib']:.1f} MiB (idle {r['term_idle_rss_mib']:.1f};"
                  f" {ratio(r['term_rss_peak_mib'], r['textual_floor_mib'])} the empty app);"
                  f" CPU {r['term_cpu_percent']:.1f}% of a core (idle {r['term_idle_cpu_percent']:.1f}%);"
                  " targets < 60 MiB, < 15%"]
    lines += [
        f"  baseline RSS: python + textual imported {r['import_floor_mib']:.1f} MiB,"
        f" an empty Textual app {r['textual_floor_mib']:.1f} MiB",
        f"batches applied              {r['batches']}",
        f"host load average            {r['load_avg_1m']:.2f} at the start, {r['load_avg_1m_end']:.2f} at the end",
    ]
    return "\n".join(lines)
