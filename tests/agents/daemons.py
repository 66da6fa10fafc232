"""An agent that leaves daemons behind every way it can (issue 11, defect 3), then
waits for `release` in its worktree (or 60 s) and exits 0.

Each daemon is a `sleep 1000` whose argv[0] is `cocode-daemon-<variant>-<tag>`
(tag: $DAEMON_TAG, else the job id), so a test finds it with psutil:
doublefork (fork, setsid, fork, chdir /), nohup (`nohup … &`, in the agent's
group), setsid_f (`setsid -f`), ignore_term (its own session, SIGTERM ignored),
own_group (same session, its own process group: killpg misses it), env_i (a double
fork that also clears its environment with `env -i`: neither the run's marks nor its
session are left to link it to the run; only its ancestry does). A config
`setup:` command can add one more the same way (see tests/system/test_daemons.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from detach import double_fork_exec  # beside this script (its directory is on sys.path)

TAG = os.environ.get("DAEMON_TAG") or os.environ["COCODE_JOB_ID"]
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def named(variant: str) -> list[str]:
    return ["bash", "-c", f"exec -a cocode-daemon-{variant}-{TAG} sleep 1000"]


def doublefork() -> None:
    double_fork_exec(named("doublefork"))
    os.wait()


def env_i() -> None:
    double_fork_exec(["env", "-i", "bash", "-c", f"exec -a cocode-daemon-env_i-{TAG} sleep 1000"])
    os.wait()


def main() -> None:
    doublefork()
    env_i()
    subprocess.Popen(["nohup", *named("nohup")], **QUIET)
    subprocess.Popen(["setsid", "-f", *named("setsid_f")], **QUIET)
    subprocess.Popen(["bash", "-c", f"trap '' TERM; exec -a cocode-daemon-ignore_term-{TAG} sleep 1000"],
                     start_new_session=True, **QUIET)
    subprocess.Popen(named("own_group"), process_group=0, **QUIET)
    release = Path(os.environ.get("COCODE_REPO_PATH", ".")) / "release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("daemons left behind")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
