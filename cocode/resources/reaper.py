"""Everything a run starts ends with it, sandboxed or not: the worker (and the
checks service) as child subreaper, the sweep of one run's processes when it
ends, and the reaping of the orphans that re-parent to the service.

Without a pid namespace (`sandbox: off`, or no bubblewrap) an agent can leave its
process group and session (setsid, a double fork, `setsid -f`, nohup), chdir
away from its worktree and clear its environment (`env -i`). Two subreaper
levels keep every such process findable:
- the service is a subreaper (PR_SET_CHILD_SUBREAPER, Linux), so nothing it
  starts re-parents to init: all of it stays in the service's tree, found from
  /proc/PID/task/*/children;
- each unsandboxed run's own process (an agent, a setup or check command) is a
  subreaper too (`preexec`), so while it lives, its orphans re-parent to it and
  stay under it, wherever they moved and whatever they cleared.
A process therefore becomes the service's own child ("a stray") only when the
run process above it has exited, that is when its run is ending.

A descendant belongs to run (job, agent) when it carries the run's
COCODE_JOB_ID/COCODE_AGENT_NAME in its environment, or is in the run's session
or process group, or descends from one that belongs, or is a stray that no other
live run claims (by its mark or its session). A mark names an owner only if
that owner is live: a made-up mark protects nothing. (job, agent) names one run
on a service at a time: an attempt starts only after the previous one ended
there. (A setup command's daemon that both left its session and cleared its
environment is a stray as soon as the command exits: the next sweep kills it,
even if its run has not started its agent yet.)

Orphans that exit become the service's zombies: reap() waits for them by pid,
never with waitpid(-1), which would take the exit status a subprocess.Popen is
waiting for. A child is reaped (or taken for a stray) only if it is no Popen's:
not in the service's own session (its git subprocesses), and not registered by
`spawning()` (agents, setup and check commands, notifications: anything started
in a session of its own). Signals go through a pidfd opened after the process's
start time is checked, so a reused pid is never hit. Elsewhere than Linux all of
this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

from cocode import envnames

PR_SET_CHILD_SUBREAPER = 36
SWEEP_S = 1.0  # a run's sweep kills until nothing of it is left, or this long (a fork bomb)
_JOB = envnames.JOB_ID.encode() + b"="
_AGENT = envnames.AGENT_NAME.encode() + b"="
_REPO = envnames.REPO_PATH.encode() + b"="


class Proc(NamedTuple):
    pid: int
    ppid: int
    pgrp: int
    sid: int
    state: str  # "Z": exited, not yet reaped
    start: int  # clock ticks after boot: with the pid, the process's identity


def _find_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _find_prctl()  # looked up once: a preexec function must not load anything


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux only)."""
    return _prctl is not None and _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _child_subreaper() -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # kept across exec: the run's program has it


def preexec(confined: bool) -> Callable[[], None] | None:
    """Popen's `preexec_fn` for a run's own process (agent, setup or check command):
    it becomes the subreaper of what it starts (see the module doc). None when the
    sandbox confines it (its pid namespace ends everything with it) or off Linux:
    Popen keeps its vfork fast path then."""
    return None if confined or _prctl is None else _child_subreaper


def read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        f_ = data.rsplit(b")", 1)[1].split()  # the command name may hold spaces and parens
        return Proc(pid, int(f_[1]), int(f_[2]), int(f_[3]), f_[0].decode(), int(f_[19]))
    except (OSError, ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """`pid`'s children, from every thread's children list (a thread's forks are its own)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def descendants(root: int) -> dict[int, Proc]:
    """Every process under `root` (not `root` itself), by pid."""
    found: dict[int, Proc] = {}
    stack = children(root)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        p = read(pid)
        if p is None:
            continue
        found[pid] = p
        stack.extend(children(pid))
    return found


def run_mark(pid: int, with_repo: bool = False) -> tuple[str, ...] | None:
    """The (job, agent) in the process's environment, or None (none, or unreadable);
    `with_repo`: (job, agent, its COCODE_REPO_PATH)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    job = agent = None
    repo = ""
    for item in env.split(b"\0"):
        if item.startswith(_JOB):
            job = item[len(_JOB):].decode(errors="replace")
        elif item.startswith(_AGENT):
            agent = item[len(_AGENT):].decode(errors="replace")
        elif with_repo and item.startswith(_REPO):
            repo = item[len(_REPO):].decode(errors="replace")
    if job is None or agent is None:
        return None
    return (job, agent, repo) if with_repo else (job, agent)


def kill_marked(job: str, agent: str, worktree: str) -> int:
    """A dead worker's run: SIGKILL whatever on the host still carries its marks
    (its orphans went to init, out of any worker's tree); how many. Its worktree
    path is part of the mark: another cocode's job may have the same id."""
    if not sys.platform.startswith("linux"):
        return 0
    killed = 0
    for name in os.listdir("/proc"):
        if name.isdigit() and run_mark(int(name), with_repo=True) == (job, agent, worktree):
            p = read(int(name))
            killed += bool(p is not None and p.state != "Z" and kill(p))
    return killed


def kill(p: Proc, sig: int = signal.SIGKILL) -> bool:
    """Signal `p` if the pid still is that process (checked through a pidfd)."""
    try:
        fd = os.pidfd_open(p.pid)
    except (AttributeError, OSError):
        fd = -1
    try:
        again = read(p.pid)
        if again is None or again.start != p.start:
            return False  # gone, or someone else has the pid now
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(p.pid, sig)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def kill_tree(pid: int) -> int:
    """SIGKILL everything under `pid`, until nothing is, then `pid` itself; how many.
    For a run process a dead service left (a subreaper, see the module doc): while it
    lives, every orphan of its run is under it; once it is dead they would go to init."""
    root = read(pid)
    if root is None or not sys.platform.startswith("linux"):
        return 0
    killed: set[int] = set()
    deadline = time.monotonic() + SWEEP_S
    while True:
        below = [p for p in descendants(pid).values() if p.state != "Z"]
        killed.update(p.pid for p in below if kill(p))
        if not below or time.monotonic() > deadline:
            break
        time.sleep(0.002)  # SIGKILL is delivered, not waited for: look again
    return len(killed) + kill(root)


# Children some Popen of this process waits for (one process, one registry: the
# subreaper setting is the process's too), and the lock held while one starts.
_own: set[int] = set()
_lock = threading.Lock()


@contextmanager
def spawning() -> Iterator[Callable[[int], None]]:
    """Around a Popen whose process starts its own session: `keep(pid)` registers it
    before reap() can see it; `release(pid)` once its Popen has waited for it."""
    with _lock:
        yield _own.add


def release(pid: int) -> None:
    _own.discard(pid)


class Reaper:
    """The worker's descendants: swept per run, reaped when orphaned."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.my_sid = os.getsid(0)
        self.active = become_subreaper()

    def reap(self) -> int:
        """Wait for the worker's zombie children that are no Popen's; how many."""
        if not self.active or not _lock.acquire(blocking=False):
            return 0  # a start is under way: its pid is not registered yet
        try:
            reaped = 0
            for pid in children(self.me):
                if pid in _own:
                    continue
                p = read(pid)
                if p is None or p.state != "Z" or p.sid == self.my_sid:
                    continue
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        reaped += 1
                except ChildProcessError:
                    pass
            return reaped
        finally:
            _lock.release()

    def sweep(self, job: str, agent: str, sid: int = 0, spare: set[int] = frozenset(),
              live: set[tuple[str, str]] = frozenset()) -> int:
        """SIGKILL every descendant that belongs to run (job, agent) (see the module
        doc; `sid` its session, `spare` other live runs' sessions, `live` their
        (job, agent) marks), until none is left; then reap. How many were killed."""
        ours = (job, agent)

        def pick(procs: dict[int, Proc]) -> list[Proc]:
            marks: dict[int, tuple[str, ...] | None] = {}

            def belongs(p: Proc, depth: int = 0) -> bool:
                if p.pid not in marks:
                    marks[p.pid] = run_mark(p.pid)
                if marks[p.pid] == ours:
                    return True
                if marks[p.pid] in live:
                    return False
                if sid and sid not in spare and sid != self.my_sid and sid in (p.sid, p.pgrp):
                    return True
                if p.sid in spare or p.pgrp in spare:
                    return False
                if p.ppid == self.me:  # a stray: its run process above it has exited
                    return p.pid not in _own and p.sid != self.my_sid
                parent = procs.get(p.ppid)
                return parent is not None and depth < 64 and belongs(parent, depth + 1)

            return [p for p in procs.values() if belongs(p)]

        return self._kill_until_gone(pick)

    def sweep_all(self) -> int:
        """The service is stopping: every descendant outside its own session dies, but
        for a live process some Popen still waits for (a notification under way) and
        its session."""
        def pick(procs: dict[int, Proc]) -> list[Proc]:
            waited = _own & procs.keys()
            return [p for p in procs.values() if p.sid != self.my_sid and p.sid not in waited]

        return self._kill_until_gone(pick)

    def _kill_until_gone(self, pick: Callable[[dict[int, Proc]], list[Proc]]) -> int:
        """SIGKILL what `pick` chooses among the live descendants, again until it
        chooses none (a process may fork while its siblings die), then reap."""
        if not sys.platform.startswith("linux"):
            return 0
        killed: set[int] = set()
        deadline = time.monotonic() + SWEEP_S
        while True:
            with _lock:  # a child being spawned is registered before it can look like a stray
                victims = pick({pid: p for pid, p in descendants(self.me).items() if p.state != "Z"})
                for p in victims:
                    if kill(p):
                        killed.add(p.pid)
            if not victims or time.monotonic() > deadline:
                break
            time.sleep(0.002)  # SIGKILL is delivered, not waited for: look again
        self.reap()
        return len(killed)
