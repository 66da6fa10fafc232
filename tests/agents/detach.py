"""The classic daemon, for the agent scripts that leave one behind (daemons.py,
hostile.py): fork, setsid, fork again, chdir /, stdio to /dev/null, exec `argv`.
The caller returns at once; the grandchild is re-parented away from the run."""

from __future__ import annotations

import os


def double_fork_exec(argv: list[str]) -> None:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.chdir("/")
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execvp(argv[0], argv)
        os._exit(0)
