"""`cocode bench top`: the live view driven headless (Textual's pilot) in this
process while 5 agents each stream 1 MB/s of stamped ~1 KB lines (bench/logs.py's
writer), on a fresh repository with cocode started there.

- agent output -> visible: each batch the app applies asks for a callback after
  the next screen refresh; the newest line stamp of each chunk against the clock
  then is the latency (write -> pipe -> worker -> collector/bus -> feed thread ->
  app -> painted). Same-run baseline: the same stamps against the time the feed
  thread received the chunk from the bus, i.e. what any bus subscriber sees.
- key press -> screen updated: a cursor move in the runs table every 200 ms while
  streaming (pilot.press, then a callback after the next refresh), and after the
  stream, 20 switches between two jobs (the panes rebuilt). Baseline: the same
  key presses with cocode idle (nothing streaming).
- the TUI's RSS (peak) and CPU while streaming, against the same app idle for as long;
  then the same for a real `cocode top` process in tmux (what a person runs), and the
  RSS of an empty Textual app as the floor any Textual view pays.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
from textual import events

from cocode import supervisor
from cocode.bench import percentile
from cocode.bench.stamped import STAMP
from cocode.bench.logs import AGENTS, writer_repo
from cocode.configload import load_config
from cocode.errors import CocodeError


class Probe:
    def __init__(self) -> None:
        self.visible: list[float] = []
        self.received: list[float] = []
        self.on = False

    def chunks(self, chunks) -> None:
        if not self.on:
            return
        now = time.time_ns()
        for c in chunks:
            stamps = STAMP.findall(c.data[-2000:])
            if stamps:
                sent = int(stamps[-1])
                self.visible.append((now - sent) / 1e6)
                self.received.append((c.at * 1e9 - sent) / 1e6)


async def refreshed(app) -> float:
    fut = asyncio.get_running_loop().create_future()
    app.call_after_refresh(lambda: fut.done() or fut.set_result(time.perf_counter()))
    return await fut


async def press(app, key: str, changed) -> float:
    """A key event as the terminal driver delivers it; timed until `changed()` holds
    and the screen was refreshed after it (pilot.press waits for idle: no timer)."""
    t0 = time.perf_counter()
    app.post_message(events.Key(key, None))
    deadline = t0 + 10
    while not changed():
        if time.perf_counter() > deadline:
            raise CocodeError(f"bench top: key {key!r} changed nothing within 10 s")
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
    app.query_one("#jobs").focus()
    out = []
    for i in range(n):
        before = app.job
        out.append(await press(app, "down" if i % 2 == 0 else "up", lambda: app.job != before))
        await asyncio.sleep(0.1)
    return out


async def until(pilot, cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise CocodeError(f"bench top: {what} did not happen within {timeout:.0f} s")
        await pilot.pause(0.1)


def submit(paths, agents, title) -> str:
    """`cocode submit` in its own process: this one's RSS stays the view's."""
    args = [a for name in agents for a in ("--agent", name)]
    out = subprocess.run([sys.executable, "-m", "cocode", "-C", str(paths.root), "submit", "--text", title, *args,
                          "--json"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CocodeError(f"bench top: cocode submit failed: {out.stderr.strip()}")
    return json.loads(out.stdout)["job"]


async def drive(paths, seconds: float, say) -> dict:
    from cocode.top.app import TopApp

    config = load_config(paths.config)
    proc = psutil.Process()
    probe = Probe()
    app = TopApp(paths, config, config.limits.tui_log_lines)
    app.on_visible = probe.chunks
    async with app.run_test(size=(160, 48)) as pilot:
        small = await asyncio.to_thread(submit, paths, AGENTS[:2], "bench top: the other job")  # streams `seconds` too
        await until(pilot, lambda: small in app.model.state.jobs and app.model.state.jobs[small].done,
                    seconds + 30, "the first job's end")
        say("idle baseline: key presses and CPU with nothing streaming ...")
        await pilot.pause(1.0)
        c0, t0 = proc.cpu_times(), time.monotonic()
        idle_keys = await cursor_presses(app, min(seconds, 5.0))
        c1, t1 = proc.cpu_times(), time.monotonic()
        idle_cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100
        idle_rss = proc.memory_info().rss
        say(f"streaming: {len(AGENTS)} agents x 1 MB/s for {seconds:g} s, shown in the app ...")
        job = await asyncio.to_thread(submit, paths, AGENTS, "bench top: 5 agents streaming")
        app.query_one("#jobs").focus()
        await until(pilot, lambda: job in app.model.state.jobs, 15, "the job's arrival")
        await pilot.press("up")
        await until(pilot, lambda: app.job == job, 10, "selecting the job")
        await until(pilot, lambda: all(r.state == "running" for r in app.model.state.jobs[job].runs.values()),
                    30, "5 agents running")
        await pilot.pause(1.0)  # past the start-up burst
        probe.on = True
        peak = 0
        c0, t0 = proc.cpu_times(), time.monotonic()
        keys_task = asyncio.ensure_future(cursor_presses(app, seconds - 2))
        while not keys_task.done():
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.25)
        busy_keys = keys_task.result()
        c1, t1 = proc.cpu_times(), time.monotonic()
        probe.on = False
        busy_cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100
        await until(pilot, lambda: app.model.state.jobs[job].done, seconds + 30, "the stream's end")
        say("switching between the two jobs ...")
        switches = await job_switches(app)
        batches = app.batches
    return {
        "visible_p50_ms": round(percentile(probe.visible, 50), 2),
        "visible_p99_ms": round(percentile(probe.visible, 99), 2),
        "received_p50_ms": round(percentile(probe.received, 50), 2),
        "received_p99_ms": round(percentile(probe.received, 99), 2),
        "visible_samples": len(probe.visible),
        "key_p50_ms": round(percentile(busy_keys, 50), 2),
        "key_p99_ms": round(percentile(busy_keys, 99), 2),
        "key_samples": len(busy_keys),
        "idle_key_p99_ms": round(percentile(idle_keys, 99), 2),
        "switch_p50_ms": round(percentile(switches, 50), 2),
        "switch_p99_ms": round(percentile(switches, 99), 2),
        "rss_peak_mib": round(peak / 2**20, 1),
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "cpu_percent": round(busy_cpu, 1),
        "idle_cpu_percent": round(idle_cpu, 1),
        "batches": batches,
    }


FLOOR = r"""
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


def textual_floor_mib() -> float:
    """RSS of an empty Textual app run the same way: what any Textual view costs."""
    out = subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True, timeout=60)
    return round(int(out.stdout.split()[-1]) / 2**20, 1) if out.returncode == 0 else float("nan")


def real_terminal(paths, seconds: float, say) -> dict:
    """`cocode top` as a person runs it (its own process, in tmux at 160x48): RSS and
    CPU idle, then while 5 agents stream; empty if tmux is missing."""
    if shutil.which("tmux") is None:
        return {}
    say(f"real terminal: `cocode top` in tmux, idle then 5 agents x 1 MB/s for {seconds:g} s ...")
    tmux = ["tmux", "-L", f"cocode-bench-top-{os.getpid()}"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "top", "-x", "160", "-y", "48",
                    shlex.join(["exec", sys.executable, "-m", "cocode", "-C", str(paths.root), "top"])],
                   check=True, env={**os.environ, "TERM": "xterm-256color"}, timeout=30)
    try:
        time.sleep(4.0)  # started, caught up, idle
        proc = next(p for p in psutil.process_iter(["cmdline"])
                    if (p.info["cmdline"] or [])[-1:] == ["top"] and str(paths.root) in p.info["cmdline"])
        idle_rss = proc.memory_info().rss
        c0 = proc.cpu_times()
        time.sleep(3.0)
        c1 = proc.cpu_times()
        idle_cpu = (c1.user + c1.system - c0.user - c0.system) / 3.0 * 100
        submit(paths, AGENTS, "bench top: in a real terminal")
        time.sleep(1.0)
        # The new job is listed first, the cursor stays on the job it was on: select it.
        subprocess.run([*tmux, "send-keys", "-t", "top", "Up"], check=True, timeout=10)
        time.sleep(1.5)  # the runs started
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True,
                                timeout=10).stdout
        if "a5" not in screen:
            raise CocodeError("bench top: the streaming job is not shown in the real terminal")
        peak, t0, c0 = 0, time.monotonic(), proc.cpu_times()
        while time.monotonic() - t0 < seconds - 3.5:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.25)
        c1, t1 = proc.cpu_times(), time.monotonic()
        return {"term_idle_rss_mib": round(idle_rss / 2**20, 1), "term_idle_cpu_percent": round(idle_cpu, 1),
                "term_rss_peak_mib": round(peak / 2**20, 1),
                "term_cpu_percent": round((c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100, 1)}
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def run(seconds: float = 10.0, progress: bool = True) -> dict:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    tmp = Path(tempfile.mkdtemp(prefix="cocode-bench-top-"))
    load = os.getloadavg()[0]
    try:
        paths = writer_repo(tmp, 1.0, seconds)
        supervisor.start_detached(paths)
        try:
            result = asyncio.run(drive(paths, seconds, say))
            result.update(real_terminal(paths, seconds, say))
        finally:
            supervisor.stop(paths)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(textual_floor_mib=textual_floor_mib(), agents=len(AGENTS), agent_mb_per_s=1.0, seconds=seconds, load_avg_1m=round(load, 2))
    return result


def report(r: dict) -> str:
    return "\n".join([
        f"agent output -> visible      p50 {r['visible_p50_ms']:.2f} ms  p99 {r['visible_p99_ms']:.2f} ms"
        f"   ({r['agents']} agents x 1 MB/s, {r['visible_samples']} chunks; target p99 < 50 ms)",
        f"  baseline: -> feed thread   p50 {r['received_p50_ms']:.2f} ms  p99 {r['received_p99_ms']:.2f} ms",
        f"key press -> screen updated  p50 {r['key_p50_ms']:.2f} ms  p99 {r['key_p99_ms']:.2f} ms"
        f"   ({r['key_samples']} presses while streaming; target p99 < 30 ms)",
        f"  baseline: idle             p99 {r['idle_key_p99_ms']:.2f} ms",
        f"job switch (panes rebuilt)   p50 {r['switch_p50_ms']:.2f} ms  p99 {r['switch_p99_ms']:.2f} ms",
        f"TUI RSS peak, in this process {r['rss_peak_mib']:.1f} MiB   (idle {r['idle_rss_mib']:.1f} MiB)",
        *([f"`cocode top` in tmux: RSS peak {r['term_rss_peak_mib']:.1f} MiB (idle {r['term_idle_rss_mib']:.1f});"
           f" CPU {r['term_cpu_percent']:.1f}% of a core (idle {r['term_idle_cpu_percent']:.1f}%);"
           " targets < 60 MiB, < 15%"] if "term_rss_peak_mib" in r else []),
        f"  baseline: empty Textual app  {r['textual_floor_mib']:.1f} MiB",
        f"TUI CPU while streaming      {r['cpu_percent']:.1f}% of a core   (idle {r['idle_cpu_percent']:.1f}%;"
        f" target < 15%)",
        f"batches applied              {r['batches']}",
        f"host load average at the start  {r['load_avg_1m']:.2f}",
    ])
