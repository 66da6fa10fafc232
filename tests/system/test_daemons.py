"""Issue 11, defect 3, from outside: nothing a run starts outlives it, in the sandbox
(`sandbox: bwrap`, a pid namespace) or out of it (`sandbox: off`, the worker as
subreaper, each run's agent too): daemons every way an agent can make them
(tests/agents/daemons.py: env_i clears its environment as well) and
one started by a config `setup:` command, dead once the run is final, and once
`cocode down` has stopped a run that still held them.

Real running cocode, the real CLI, real agent processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from cocode import client
from cocode.paths import Paths
from support import AGENTS_DIR, cocode, down, heavy, live, make_repo, up, wait_none, wait_until

VARIANTS = {"doublefork", "env_i", "nohup", "setsid_f", "ignore_term", "own_group", "setup"}
# A setup: command's daemon: out of its group and session. The command returns once the
# daemon is in its own session (setup's group is killed after it). Sandboxed, setup runs in
# a pid namespace of its own: its daemon dies as the command ends, before the agent starts.
SETUP = ("setsid -f bash -c 'touch .daemon; exec -a cocode-daemon-setup-$COCODE_JOB_ID sleep 1000' "
         "</dev/null >/dev/null 2>&1; until [ -e .daemon ]; do sleep 0.01; done; rm .daemon")


def daemons(job: str) -> dict[str, psutil.Process]:
    """The job's daemons still running, by variant."""
    out = {}
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if (cmd and cmd[0].startswith("cocode-daemon-") and cmd[0].endswith(f"-{job}")
                and p.info["status"] != psutil.STATUS_ZOMBIE):
            out[cmd[0].split("-")[2]] = p
    return out


def events(repo: Path, kind: str) -> list[dict]:
    proc = cocode(repo, "events", "--json", "--type", kind, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def run_of(repo: Path, job: str):
    j = client.current_state(Paths(repo)).jobs.get(job)
    return j.runs.get("daemons") if j else None


def submit(repo: Path) -> str:
    proc = cocode(repo, "submit", "--json", "--text", "leave daemons", "--agent", "daemons", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["job"]


@heavy
def test_no_daemon_outlives_its_run_nor_cocode_down(tmp_path, sandbox_mode):
    mode = sandbox_mode
    repo = make_repo(tmp_path / "repo")
    config = {"agents": {"daemons": {"command": ["{python}", str(AGENTS_DIR / "daemons.py")]}},
              "setup": [SETUP], "sandbox": mode}
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config))
    up(repo)
    ended = held = "none-yet"
    try:
        ended, held = submit(repo), submit(repo)
        # Every daemon really started: else their absence proves nothing.
        started = VARIANTS - {"setup"} if mode == "bwrap" else VARIANTS
        for job in (ended, held):
            wait_until(lambda: set(daemons(job)) == started, 30, what=f"job {job}'s daemons to start")
        first = daemons(ended)  # by pid: what must be gone once the run is recorded final
        (Path(run_of(repo, ended).worktree) / "release").touch()
        run = wait_until(lambda: (r := run_of(repo, ended)) and r.final and r, 30, what="the run's run_finished")
        # The sweep runs before run_finished is recorded: the bound covers a SIGKILL's delivery.
        wait_none(lambda: [p for p in first.values() if live(p)], 5,
                  what=f"the run's daemons to be gone once it is final (sandbox: {mode})")
        assert run.state == "failed" and run.reason == "no_ready_marker", run
        second = daemons(held)
        assert set(second) == started, "the other run's daemons live on with it"
        assert cocode(repo, "down", timeout=60).returncode == 0
        wait_none(lambda: [p for p in second.values() if live(p)], 5,
                  what=f"the other run's daemons to be gone after `cocode down` (sandbox: {mode})")
    finally:
        for p in [*daemons(ended).values(), *daemons(held).values()]:
            p.kill()
        down(repo)


@heavy
def test_a_killed_workers_run_leaves_no_daemon_once_recovered(tmp_path):
    """kill -9 of the worker: its runs' orphans go to init, out of any worker's tree;
    the restarted worker kills them (by the run's marks) before it records the run
    interrupted."""
    import os
    import signal

    from support import service_pid

    repo = make_repo(tmp_path / "repo")
    config = {"agents": {"daemons": {"command": ["{python}", str(AGENTS_DIR / "daemons.py")]}},
              "setup": [SETUP], "sandbox": "off"}
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config))
    up(repo)
    job = ""
    try:
        job = submit(repo)
        first = wait_until(lambda: set(d := daemons(job)) == VARIANTS and d, 30, what="the daemons to start")
        os.kill(service_pid(repo, "worker"), signal.SIGKILL)
        wait_until(lambda: [e for e in events(repo, "run_interrupted") if e["job"] == job], 30,
                   what="the run to be recorded interrupted")
        # By pid: the requeued attempt's daemons carry the same names.
        left = sorted(v for v, p in first.items() if live(p))
        assert left == [], f"{left} of {len(VARIANTS)} outlived their killed worker"
    finally:
        for p in daemons(job).values() if job else ():
            p.kill()
        down(repo)
