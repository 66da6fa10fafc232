"""Notifications (issue 10): a command and a webhook on run_ready, run_failed,
job_done and checks_done. The webhook goes to a real HTTP server on 127.0.0.1;
a second "server" accepts connections and never answers, so each try times out,
is retried, and ends as a notify_failed event while the job goes on unhindered.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from review_support import UNITTEST, submit, write_config
from support import GitRepo, cocode, down, events, status, up, wait_until


class Recorder(BaseHTTPRequestHandler):
    got: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append({"path": self.path, "type": self.headers["Content-Type"], **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    Recorder.got = []
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", Recorder.got
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent():
    """Listens, and never says a word: a webhook that never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"
    finally:
        sock.close()


def with_notify(repo: Path, notify: dict) -> None:
    path = repo / ".cocode" / "config.yaml"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "notify": notify}))


def test_command_and_webhook_on_each_moment(calc: GitRepo, tmp_path: Path, hook):
    url, got = hook
    repo = calc.path
    out = tmp_path / "notes"
    out.mkdir()
    write_config(repo, tmp_path, {"tests": UNITTEST})
    # One file per notification, named from placeholders, holding a placeholder and the environment's view.
    script = "import os, sys; open(sys.argv[1], 'w').write(sys.argv[2] + '|' + os.environ['COCODE_NOTIFY_TITLE'])"
    with_notify(repo, {"webhook": url, "timeout": 5,
                       "command": [sys.executable, "-c", script, f"{out}/{{trigger}}-{{agent}}", "{state}"]})
    up(repo)
    try:
        job = submit(repo, "good", "bad")
        assert wait_until(lambda: len(got) >= 4, 30, what="four webhook posts"), got
        seen = sorted((g["trigger"], g["agent"], g["state"]) for g in got)
        assert seen == [("checks_done", "", "1 run(s) pass every check"), ("job_done", "", "2/2 ready"),
                        ("run_ready", "bad", "ready"), ("run_ready", "good", "ready")]
        assert all(g["job"] == job and g["title"] == "Fix add()" and g["path"] == "/hook"
                   and g["type"] == "application/json" for g in got)
        files = wait_until(lambda: len(list(out.iterdir())) >= 4 and sorted(p.name for p in out.iterdir()), 20,
                           what="four command notifications")
        assert files == ["checks_done-", "job_done-", "run_ready-bad", "run_ready-good"], files
        assert (out / "run_ready-good").read_text() == "ready|Fix add()"
        assert (out / "job_done-").read_text() == "2/2 ready|Fix add()"
        assert events(repo, "notify_failed") == []
    finally:
        down(repo)


def test_a_webhook_that_never_answers_is_retried_then_recorded(calc: GitRepo, tmp_path: Path, silent):
    repo = calc.path
    write_config(repo, tmp_path, {"tests": UNITTEST})
    with_notify(repo, {"webhook": silent, "timeout": 1, "retries": 1, "events": ["run_ready"]})
    up(repo)
    try:
        job = submit(repo, "good")
        # The pipeline does not wait for it: the checks ran and the job ended meanwhile.
        failed = wait_until(lambda: events(repo, "notify_failed"), 30, what="a notify_failed event")
        assert failed, "no notify_failed recorded"
        f = failed[0]
        assert (f["trigger"], f["target"], f["attempts"], f["agent"]) == ("run_ready", silent, 2, "good")
        assert f["error"] == "no answer within 1 s"
        st = status(repo, job)
        assert st["state"] == "done" and st["runs"][0]["checks"]["tests"]["status"] == "passed"
        check_end = [e for e in events(repo, "check_finished")][0]["ts"]
        assert check_end < f["ts"], "the check finished while the webhook was still being tried"
    finally:
        down(repo)


def test_submit_wait_and_tail_f_notify_the_desktop_unless_no_bell(calc: GitRepo, tmp_path: Path):
    """`notify-send` cannot show anything here: a stand-in on PATH records its
    arguments (the terminal bell itself needs a terminal, which a test has not)."""
    repo = calc.path
    bin_dir, record = tmp_path / "bin", tmp_path / "notify-send.txt"
    bin_dir.mkdir()
    stand_in = bin_dir / "notify-send"
    stand_in.write_text(f"#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"$2\" >> {record}\n")
    stand_in.chmod(0o755)
    write_config(repo, tmp_path, {})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    up(repo)
    try:
        proc = cocode(repo, "submit", "--text", "Fix add()", "--agent", "good", "--wait", "--no-bell", env=env)
        assert proc.returncode == 0, proc.stderr
        job = re.search(r"job (\w+):", proc.stdout).group(1)
        proc = cocode(repo, "submit", "--text", "Fix add()", "--agent", "good", "--wait", env=env)
        assert proc.returncode == 0, proc.stderr
        second = re.search(r"job (\w+):", proc.stdout).group(1)
        lines = wait_until(lambda: record.exists() and record.read_text().splitlines(), 10,
                           what="the desktop notification")
        assert lines == [f"cocode: job {second} done|1/1 ready: Fix add()"], lines
        assert cocode(repo, "tail", "-f", job, env=env).returncode == 0
        wait_until(lambda: len(record.read_text().splitlines()) == 2, 10, what="the second desktop notification")
        assert record.read_text().splitlines()[1] == f"cocode: job {job}|its runs ended"
    finally:
        down(repo)
