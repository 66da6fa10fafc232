"""forkstart's pieces that need no running cocode: the Popen-like handle of a
forked child, and retitling a process without losing its environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from cocode.forkstart import Forked


def _fork(code: str) -> Forked:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(sys.executable, [sys.executable, "-c", code])
    return Forked(pid)


def test_forked_handle_polls_waits_and_kills():
    quick = _fork("raise SystemExit(3)")
    assert quick.wait(10) == 3 and quick.poll() == 3
    slow = _fork("import time; time.sleep(60)")  # pacing: a child that outlives the waits below
    try:
        assert slow.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            slow.wait(0.05)
        slow.send_signal(signal.SIGTERM)
        assert slow.wait(10) == -signal.SIGTERM
        slow.kill()  # already gone: no error
    finally:
        if slow.poll() is None:
            os.kill(slow.pid, signal.SIGKILL)
            slow.wait(10)


def _retitle(tmp_path, title: str, env: dict) -> list[str]:
    script = tmp_path / "t.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "from cocode.forkstart import set_title\n"
        f"print(set_title({title!r}, 'cocode-scheduler'))\n"
        "print(open('/proc/self/cmdline', 'rb').read().decode().rstrip(chr(0)))\n"
        "print(open('/proc/self/comm').read().strip())\n"
        "print(subprocess.run(['env', '-0'], capture_output=True).stdout == b''.join("
        "k.encode() + b'=' + v.encode() + b'\\0' for k, v in os.environ.items()))\n"
    )
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_set_title_shows_the_title_and_keeps_the_environment(tmp_path):
    # The title overruns the arguments into the environment strings: a known first
    # variable is the one written over.
    env = {"AAA_FIRST": "x" * 60, **{k: v for k, v in os.environ.items() if k != "AAA_FIRST"}}
    title = f"{sys.executable} -m cocode -C {tmp_path} service scheduler"
    ok, cmdline, comm, same_env = _retitle(tmp_path, title, env)
    assert ok == "True"
    assert cmdline == title
    assert comm == "cocode-schedule"  # the kernel keeps 15 characters
    assert same_env == "True", "a child of the retitled process sees the environment unchanged"


def test_a_title_shorter_than_the_arguments_is_refused(tmp_path):
    ok, cmdline, comm, same_env = _retitle(tmp_path, "x service bus", dict(os.environ))
    assert ok == "False"
    assert cmdline.endswith("t.py") and comm != "cocode-schedule" and same_env == "True"
