"""Nothing a check starts outlives it (issue 11, defect 3, for checks): a check that
leaves daemons (`setsid -f`, and `setsid -f env -i`: neither the check's session nor
its marks left) has none of them running once its check_finished is recorded, in
the sandbox (its pid namespace) and out of it (`sandbox: off`: the checks service is
a subreaper, the check's shell too, and the check's end sweeps them).

Real services, the real CLI, real processes.
"""

from __future__ import annotations

import os

import psutil

from cocode.paths import Paths
from cocode.runkey import RunKey
from support import (
    AGENT_GIT_ENV, GitRepo, agents, down, events, heavy, live, procs_matching, submit, up, wait_none,
    wait_until, write_config,
)

AGENT = 'cd "$COCODE_REPO_PATH"; echo x > x.txt; git add x.txt; git commit -q -m x -m "$COCODE_READY_MARKER"'
VARIANTS = ("setsid", "env_i")


def check_command(tag: str) -> str:
    """Two daemons, then wait for `release` in the worktree (the test's go), bounded."""
    quiet = "</dev/null >/dev/null 2>&1"
    return (f"setsid -f bash -c 'exec -a cocode-daemon-setsid-{tag} sleep 1000' {quiet}; "
            f"setsid -f env -i bash -c 'exec -a cocode-daemon-env_i-{tag} sleep 1000' {quiet}; "
            "for i in $(seq 600); do [ -e release ] && exit 0; sleep 0.05; done; exit 1")


def daemons(tag: str) -> dict[str, psutil.Process]:
    found = procs_matching(lambda argv: bool(argv) and argv[0].startswith("cocode-daemon-")
                           and argv[0].endswith(f"-{tag}"))
    return {p.info["cmdline"][0].split("-")[2]: p for p in found}


@heavy
def test_a_checks_daemons_are_gone_once_it_is_finished(calc: GitRepo, sandbox_mode: str):
    mode = sandbox_mode
    repo = calc.path
    (repo / ".git" / "info" / "exclude").write_text(".cocode/\nrelease\n")
    tag = f"check{os.getpid()}{mode}"
    write_config(repo, {"agents": {"a": {"command": ["bash", "-c", AGENT], "env": AGENT_GIT_ENV}},
                        "checks": {"leave": check_command(tag)}, "sandbox": mode})
    up(repo)
    started: dict[str, psutil.Process] = {}
    try:
        job = submit(repo, *agents("a"))
        # Both really started: else their absence proves nothing.
        started = wait_until(lambda: len(d := daemons(tag)) == len(VARIANTS) and d, 30,
                             what="the check's daemons to start")
        (RunKey(job, "a").worktree(Paths(repo)) / "release").touch()
        done = wait_until(lambda: events(repo, "check_finished"), 30, what="the check's check_finished")
        assert done[0]["status"] == "passed", done
        # The sweep runs before check_finished is recorded: the bound covers a SIGKILL's delivery.
        wait_none(lambda: [p for p in started.values() if live(p)], 5,
                  what=f"the check's daemons to be gone once it finished (sandbox: {mode})")
    finally:
        for p in [*started.values(), *daemons(tag).values()]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        down(repo)
