"""A hostile agent (issue 11, defect 4): `hostile.py ATTACK` really tries one attack
on cocode's state from inside its run, as a malicious agent would, and writes what
it saw happen to hostile-report.json in its worktree. The test judges success by
the effects (the log, the victims' branches and states), not by this report.

Targets are the other runs named `victim`, found from the shared .git's refs (a
run sees them; in the sandbox read-only). Attacks: forge_cancel, forge_finished
(appends to the store socket), bus_in (fake evt.* on the bus input), update_ref
(other runs' branches moved to a forged ready commit: on top of one's tip, an
orphan for the sibling's), write_db (a row
inserted into .cocode/events.db), read_others (other runs' worktrees, logs and
environments searched for their secret), daemonise (two `sleep 4242.N` that should
not outlive the run: fork, setsid, fork, chdir /; and the same through `env -i`,
which leaves it neither the run's session nor its marks).
"""

from __future__ import annotations

import glob
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from detach import double_fork_exec  # beside this script (its directory is on sys.path)

ATTACK = sys.argv[1]
HERE = Path(os.environ["COCODE_REPO_PATH"])
JOB, ME = os.environ["COCODE_JOB_ID"], os.environ["COCODE_AGENT_NAME"]
MARKER = os.environ["COCODE_READY_MARKER"]
report: dict = {"attack": ATTACK}


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=check).stdout.strip()


def repo_root() -> Path:
    # <root>/.git is the common dir of a linked worktree; a clone's origin names it.
    common = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir"))
    if common.parent != HERE:
        return common.parent
    url = git("config", "--get", "remote.origin.url", check=False)
    return Path(url.removeprefix("file://")) if url else HERE


def victims(want: int = 2, wait_s: float = 20.0) -> list[tuple[str, str, str]]:
    """(job, agent, branch) of the victim runs, waiting for `want` of them to exist."""
    root = repo_root()
    deadline = time.monotonic() + wait_s
    while True:
        refs = subprocess.run(["git", "for-each-ref", "--format=%(refname:short)", "refs/heads/cocode/"],
                              cwd=root, capture_output=True, text=True).stdout.split()
        found = [(b.split("/")[1], b.split("/")[2], b) for b in refs
                 if b.count("/") == 2 and b.endswith("/victim")]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def endpoint(name: str) -> str:
    from cocode.paths import Paths

    return Paths(repo_root()).endpoint(name)


def append(events) -> str:
    """Send an Append as some producer; the store's reply, or why there was none."""
    import zmq

    from cocode.core import wire

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint("store"))
        sock.send(wire.encoder.encode(wire.Append(f"hostile-{os.getpid()}", 1, events)))
        if not sock.poll(3000):
            return "no reply"
        return type(wire.reply_decoder.decode(sock.recv())).__name__
    except Exception as err:
        return f"error: {err}"
    finally:
        ctx.destroy(linger=0)


def forge_cancel() -> None:
    from cocode.core import events as ev

    report["replies"] = [append([ev.CancelRequested(job=job, agent=agent)]) for job, agent, _ in victims()]


def forge_finished() -> None:
    from cocode.core import events as ev

    report["replies"] = [
        append([ev.RunFinished(job=job, agent=agent, state="ready", ready_commit="0" * 40,
                               detail="FORGED-FINISH", attempt=a) for a in (1, 2)])
        for job, agent, _ in victims()
    ]


def bus_in() -> None:
    import zmq

    from cocode.core import events as ev

    victim = victims()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    try:
        pub.connect(endpoint("bus-in"))
        time.sleep(0.5)  # a PUB's first messages go nowhere until subscriptions arrive
        sent = 0
        for seq in range(1, 400):
            for job, agent, _ in victim:
                event = ev.RunFinished(seq=seq, job=job, agent=agent, state="ready", ready_commit="0" * 40,
                                       detail="FORGED-BUS")
                pub.send_multipart([b"evt.run_finished", ev.encode(event)])
                sent += 1
        time.sleep(0.5)
        report["published"] = sent
    except Exception as err:
        report["error"] = str(err)
    finally:
        ctx.destroy(linger=500)


def update_ref() -> None:
    """Move each victim's branch where it lives: in the repository, and in the victim's
    own workspace if this run can reach it (a run's clone keeps its own refs)."""
    from cocode.paths import Paths
    from cocode.runkey import RunKey

    root = repo_root()
    moved = {}
    for job, agent, branch in victims():
        for where in (RunKey(job, agent).worktree(Paths(root)), root):
            if not where.is_dir():
                moved[f"{where}:{branch}"] = {"ok": False, "stderr": "not reachable"}
                continue
            def g(*args: str) -> subprocess.CompletedProcess:
                return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True)

            tip = g("rev-parse", f"refs/heads/{branch}").stdout.strip()
            tree = g("rev-parse", f"{tip}^{{tree}}").stdout.strip()
            # The sibling's branch goes to an orphan (not from its base), the other's on top of its tip.
            parent = [] if job == JOB else ["-p", tip]
            forged = g("commit-tree", tree, *parent, "-m", f"hostile: forged\n\n{MARKER}").stdout.strip()
            proc = g("update-ref", f"refs/heads/{branch}", forged, tip) if forged else None
            moved[f"{where}:{branch}"] = {"forged": forged, "ok": bool(proc and proc.returncode == 0),
                                          "stderr": (proc.stderr if proc else "no forged commit").strip()[-200:]}
    report["moved"] = moved


def write_db() -> None:
    import msgspec

    db = repo_root() / ".cocode" / "events.db"
    try:
        conn = sqlite3.connect(db, timeout=5)
        head = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        payload = msgspec.msgpack.encode({"type": "warning", "seq": head + 2, "ts": time.time(), "job": "",
                                          "agent": "", "code": "FORGED-DB", "message": "FORGED-DB"})
        conn.execute("INSERT INTO events (seq, ts, type, job, run, payload) VALUES (?, ?, 'warning', '', '', ?)",
                     (head + 2, time.time(), payload))
        conn.commit()
        conn.close()
        report["inserted_seq"] = head + 2
    except Exception as err:
        report["error"] = f"{type(err).__name__}: {err}"


def read_others() -> None:
    found: set[str] = set()
    places = [str(repo_root() / ".cocode"), "/tmp", str(Path.home())]
    for place in places:
        for path in glob.glob(f"{place}/**", recursive=True):
            if path.startswith(str(HERE)):
                continue
            try:
                if os.path.isfile(path) and os.path.getsize(path) < 10_000_000:
                    data = Path(path).read_bytes()
                    found.update(t.decode() for t in _tokens(data))
            except OSError:
                continue
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            found.update(t.decode() for t in _tokens(Path(environ).read_bytes()))
        except OSError:
            continue
    report["found"] = sorted(found)


def _tokens(data: bytes):
    import re

    return set(re.findall(rb"VICTIM-SECRET-[0-9a-f]{8}", data))


def daemonise() -> None:
    argv = ["sleep", f"4242.{int(JOB, 16)}"]
    double_fork_exec(argv)
    double_fork_exec(["env", "-i", *argv])
    want = "\0".join(argv).encode() + b"\0"

    def running() -> int:
        n = 0
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                n += Path(cmdline).read_bytes() == want
            except OSError:
                pass
        return n

    deadline = time.monotonic() + 10
    while running() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    report["daemon"] = " ".join(argv)
    report["daemons"] = running()  # as this run sees them (in the sandbox: its pid namespace)


ATTACKS = {"forge_cancel": forge_cancel, "forge_finished": forge_finished, "bus_in": bus_in,
           "update_ref": update_ref, "write_db": write_db, "read_others": read_others, "daemonise": daemonise}

if __name__ == "__main__":
    try:
        ATTACKS[ATTACK]()
    except Exception as err:  # an attack that cannot even be tried is a blocked attack
        report["error"] = f"{type(err).__name__}: {err}"
    (HERE / "hostile-report.json").write_text(json.dumps(report))
    print(json.dumps(report))
