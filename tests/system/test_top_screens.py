"""`cocode top` as a person meets it: in a real terminal (tmux runs it, send-keys
navigates, capture-pane reads the screen) and in a browser (`--web`, headless
Chromium, every request checked to stay on 127.0.0.1). Real cocode, demo agents.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from cocode import client
from support import cocode, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def submit(repo: Path, agent: str, text: str) -> str:
    proc = cocode(repo, "submit", "--text", text, "--agent", agent, "--json", check=True)
    return json.loads(proc.stdout)["job"]


def both_done(paths, *jobs: str) -> None:
    wait_until(lambda: all(client.current_state(paths).jobs[j].done for j in jobs), 40, what="the demo jobs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reap_tree(proc: subprocess.Popen) -> None:
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for k in kids:
        try:
            k.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(kids, timeout=10)


# ---------------------------------------------------------------------------------------- tmux


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_person_in_a_real_terminal_sees_jobs_and_moves_between_them(running, repo):
    older = submit(repo, "demo-fail", "Older in tmux")
    newer = submit(repo, "demo", "Newer in tmux")
    both_done(running, older, newer)
    server = f"cocode-top-test-{os.getpid()}"  # a tmux server of its own: nobody else's sessions
    tmux = ["tmux", "-L", server]
    cmd = f"{sys.executable} -m cocode -C {repo} top"
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run([*tmux, "new-session", "-d", "-s", "top", "-x", "120", "-y", "32", cmd], check=True, env=env,
                   timeout=30)
    try:
        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True,
                                  timeout=10).stdout

        wait_until(lambda: "up ·" in screen() and newer in screen() and "Submit" in screen()
                   and "ready marker" in screen(), 30, what="the view drawn in tmux, the pane's output in it")
        first = screen()
        lines = first.splitlines()
        assert lines[0].lstrip().startswith("up ·"), first
        assert first.index(newer) < first.index(older), "newest job first"
        assert "committed" in first and "ready marker" in first, "the demo agent's output is in its pane"
        subprocess.run([*tmux, "send-keys", "-t", "top", "Down"], check=True, timeout=10)
        wait_until(lambda: "exit_1" in screen() and "demo-fail" in screen(), 20, what="the older job's runs")
        wait_until(lambda: "cannot reproduce the bug" in screen(), 20, what="the failed agent's output in its pane")
        subprocess.run([*tmux, "send-keys", "-t", "top", "q"], check=True, timeout=10)
        wait_until(lambda: subprocess.run([*tmux, "has-session", "-t", "top"], capture_output=True,
                                          timeout=10).returncode != 0, 15, what="q to quit")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_demo_runs_inside_the_view_and_q_stops_everything(tmp_path):
    from support import cocode_processes

    where = tmp_path / "demo"
    tmux = ["tmux", "-L", f"cocode-demo-test-{os.getpid()}"]
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run([*tmux, "new-session", "-d", "-s", "demo", "-x", "130", "-y", "34",
                    f"{sys.executable} -m cocode demo --top {where}; sleep 30"], check=True, env=env, timeout=30)
    try:
        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "demo"], capture_output=True, text=True,
                                  timeout=10).stdout

        wait_until(lambda: "demo-slow" in screen() and "thinking" in screen(), 60, what="the demo in the view")
        done = re.compile(r"\bdone\s+\S+\s+2/3\b")  # the job row: state, age, ready
        wait_until(lambda: done.search(screen()), 30, what="the job done: demo and demo-slow ready")
        wait_until(lambda: "★" in screen(), 15, what="a star on the run `cocode compare` recommends")
        subprocess.run([*tmux, "send-keys", "-t", "demo", "q"], check=True, timeout=10)
        wait_until(lambda: "cocode down: stopped" in screen(), 30, what="the demo stopping cocode")
        # The demo ends with the one command that lands the recommended run (issue 10).
        assert "cocode pick" in screen() and "--merge" in screen()
        wait_until(lambda: not cocode_processes(where), 15, what="every service gone")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
        subprocess.run([sys.executable, "-m", "cocode", "-C", str(where), "down"], capture_output=True, timeout=60)


# ----------------------------------------------------------------------------------------- web


async def cdp_visit(debug_port: int, url: str, want: list[str], timeout: float) -> dict:
    """Open `url` in the page target over the DevTools protocol; note every request
    and WebSocket, and the app's frames until each of `want` was drawn."""
    import aiohttp

    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=10).read())
    page = next(t for t in targets if t["type"] == "page")
    seen = {"requests": [], "sockets": [], "frames": "", "screenshot": b""}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))

            async def send(method: str, **params) -> int:
                i = next(ids)
                await ws.send_json({"id": i, "method": method, "params": params})
                return i

            for m in ("Network.enable", "Page.enable"):
                await send(m)
            await send("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            shot = None
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the page did not draw {want} in {timeout:.0f} s; "
                                         f"requests {seen['requests']}, frames so far: {seen['frames'][-500:]!r}")
                try:
                    msg = await asyncio.wait_for(ws.receive(), left)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"DevTools closed the connection: {msg}")
                data = json.loads(msg.data)
                method, params = data.get("method"), data.get("params", {})
                if method == "Network.requestWillBeSent":
                    seen["requests"].append(params["request"]["url"])
                elif method == "Network.webSocketCreated":
                    seen["sockets"].append(params["url"])
                elif method == "Network.webSocketFrameReceived":
                    frame = params["response"]
                    payload = frame["payloadData"]
                    if frame.get("opcode") == 2:
                        payload = base64.b64decode(payload).decode("utf-8", "replace")
                    seen["frames"] += payload
                    if shot is None and all(w in seen["frames"] for w in want):
                        await asyncio.sleep(0.5)  # let xterm.js paint what arrived
                        shot = await send("Page.captureScreenshot", format="png")
                elif shot is not None and data.get("id") == shot:
                    seen["screenshot"] = base64.b64decode(data["result"]["data"])
                    return seen


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_web_serves_the_app_to_a_browser_with_no_request_leaving_localhost(running, repo, tmp_path):
    job = submit(repo, "demo", "Seen in a browser")
    both_done(running, job)
    port, debug_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "cocode", "-C", str(repo), "top", "--web", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    browser = None
    try:
        def serving() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
            except OSError:
                return False

        wait_until(serving, 30, what="cocode top --web answering")
        profile = tempfile.mkdtemp(dir=tmp_path)
        browser = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    f"--remote-debugging-port={debug_port}", "--window-size=1280,800",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def devtools() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/version", timeout=2)
                return True
            except OSError:
                return False

        wait_until(devtools, 30, what="chromium's DevTools endpoint")
        seen = asyncio.run(cdp_visit(debug_port, f"http://127.0.0.1:{port}/", [job, "Submit", "Seen in a b"], 60))
        assert seen["sockets"] and all(u.startswith(f"ws://127.0.0.1:{port}/") for u in seen["sockets"]), seen
        outside = [u for u in seen["requests"] if not u.startswith(("http://127.0.0.1", "data:", "about:"))]
        assert not outside, f"requests left 127.0.0.1: {outside}"
        assert any(u.endswith("/static/js/textual.js") for u in seen["requests"])
        png = seen["screenshot"]
        assert png.startswith(b"\x89PNG") and len(png) > 20_000, "a screenshot with the app drawn in it"
        (tmp_path / "top-web.png").write_bytes(png)
    finally:
        if browser is not None:
            reap_tree(browser)
        reap_tree(server)
