"""Sampling each run's processes cheaply, and signalling all of them.

A run's processes are (1) its session: the worker starts every agent with
start_new_session, so the agent's pid is both the session id and the process-group
id, and whatever it forks stays in that session unless it calls setsid; (2) the
descendants that left the session (setsid, or a double fork while the parent
lives); (3) processes that escaped both, orphaned into another session, but still
work in the run's worktree with the run's COCODE_JOB_ID/COCODE_AGENT_NAME in their
environment. All of them count toward the run's memory, and all are signalled when
it is stopped, not only its process group.

What one sample costs (MEASURED.md: a 10-process `children(recursive=True)` is
~2 ms, a cached psutil read ~0.5 ms): one getsid() per pid on the host, for all
runs together (~0.8 ms for 200 pids); then, per member, one read of its numbers
through a resources/procread.py reader (on Linux one pread of /proc/PID/stat,
~5 µs; elsewhere, or when forced, psutil). Descendants outside the session and
escaped processes are looked for only every SCAN_EVERY samples, with one pass over
the host shared by all runs (parent pids, then cwd, then environ). Members found
that way keep a cached psutil.Process, which refuses to signal a pid that was
reused meanwhile.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cocode import envnames
from cocode.resources import procread, reaper
from cocode.resources.policy import cpu_percent
from cocode.runkey import RunKey

SCAN_EVERY = 5  # samples between the host-wide looks for escaped processes


@dataclass
class RunSample:
    job: str
    agent: str
    rss: int  # bytes, summed over every member (shared pages count in each)
    peak_rss: int
    cpu: float  # percent of one core since the previous sample
    procs: int
    escaped: int  # members outside the run's process group
    pids: list[int]


@dataclass
class RunTree:
    job: str
    agent: str
    sid: int  # = the leader's pid = the process-group id
    worktree: str
    session: set[int] = field(default_factory=set)
    extra: dict[int, psutil.Process] = field(default_factory=dict)  # members outside the session
    pgrp: dict[int, int] = field(default_factory=dict)  # member -> its process group, last sample
    cpu: dict[int, float] = field(default_factory=dict)
    last_t: float = 0.0
    peak_rss: int = 0
    leader_born: float = 0.0  # the leader's create time: its pid may be reused once it is gone
    leader_gone: bool = False

    @property
    def key(self) -> str:
        return RunKey(self.job, self.agent).key

    def owns_environ(self, env: dict) -> bool:
        return env.get(envnames.JOB_ID) == self.job and env.get(envnames.AGENT_NAME) == self.agent

    def in_worktree(self, cwd: str) -> bool:
        return bool(self.worktree) and (cwd == self.worktree or cwd.startswith(self.worktree + os.sep))


def is_session_leader(pid: int) -> bool:
    """Whether `pid` still is a run's leader (its own session): pids get reused."""
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


class Sampler:
    """The runs being watched on this host, and their samples."""

    def __init__(self, scan_every: int = SCAN_EVERY, portable: bool | None = None) -> None:
        """`portable=True` forces the psutil reader even where /proc is there
        (None: COCODE_PORTABLE_SAMPLER decides, else /proc when it exists)."""
        self.trees: dict[str, RunTree] = {}
        self.scan_every = scan_every
        self.ticks = 0
        self.stats = procread.reader(portable)
        self.me = os.getpid()

    def track(self, job: str, agent: str, pgid: int, worktree: str) -> RunTree:
        key = RunKey(job, agent).key
        tree = self.trees.get(key)
        if tree is None or tree.sid != pgid:
            tree = self.trees[key] = RunTree(job, agent, pgid, os.path.realpath(worktree) if worktree else "")
            try:
                tree.leader_born = psutil.Process(pgid).create_time()
            except psutil.Error:
                pass
        return tree

    @staticmethod
    def still_ours(tree: RunTree) -> bool:
        """Whether the run's session/group id still names its processes: true while
        the leader lives, or while it is gone and no one new took its pid (a pid is
        never reused while a group or session still carries it)."""
        try:
            return psutil.Process(tree.sid).create_time() == tree.leader_born
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False

    def untrack(self, key: str) -> RunTree | None:
        return self.trees.pop(key, None)

    def close(self) -> None:
        self.stats.close()

    # -- sampling ----------------------------------------------------------------------

    def sample(self, now: float) -> dict[str, RunSample]:
        if not self.trees:
            self.stats.close()
            return {}
        pids = psutil.pids()
        sessions = self.sessions(pids)
        if self.ticks % self.scan_every == 0:
            self.scan(list(self.trees.values()), pids, sessions)
        self.ticks += 1
        out = {}
        for tree in self.trees.values():
            session = sessions[tree.sid]
            if tree.leader_gone and session and not self.still_ours(tree):
                session = set()  # someone new has the leader's pid: not the run's session
            out[tree.key] = self.sample_tree(tree, session, now)
        self.stats.keep_only({pid for t in self.trees.values() for pid in t.pgrp})
        return out

    def sessions(self, pids: list[int]) -> dict[int, set[int]]:
        """Each tracked run's session members, by one getsid() per pid on the host."""
        sessions: dict[int, set[int]] = {t.sid: set() for t in self.trees.values()}
        getsid = os.getsid
        for pid in pids:
            try:
                sid = getsid(pid)
            except OSError:
                continue
            if sid in sessions:
                sessions[sid].add(pid)
        return sessions

    def sample_tree(self, tree: RunTree, session: set[int], now: float) -> RunSample:
        tree.session = session
        rss = 0
        times: dict[int, float] = {}
        pgrp: dict[int, int] = {}
        for pid in session | set(tree.extra):
            stat = self.stats.stat(pid)
            if stat is None:
                tree.extra.pop(pid, None)  # gone
                tree.leader_gone |= pid == tree.sid
                continue
            rss += stat.rss
            times[pid] = stat.cpu
            pgrp[pid] = stat.pgrp
        born = {pid for pid in times if pid not in tree.cpu}
        cpu = cpu_percent(tree.cpu, times, born if tree.last_t else set(), now - tree.last_t) if tree.last_t else 0.0
        tree.cpu, tree.pgrp, tree.last_t = times, pgrp, now
        tree.peak_rss = max(tree.peak_rss, rss)
        escaped = sum(1 for g in pgrp.values() if g != tree.sid)
        return RunSample(tree.job, tree.agent, rss, tree.peak_rss, cpu, len(times), escaped, sorted(times))

    def scan(self, trees: list[RunTree], pids: list[int], sessions: dict[int, set[int]]) -> None:
        """One pass over the host for processes that left their run's session: the
        descendants of its members (by parent pid), then whatever works in its
        worktree under its job id (by cwd, then environ)."""
        members = {pid: t for t in trees for pid in sessions.get(t.sid, ()) | set(t.extra)}
        outside = [pid for pid in pids if pid not in members and pid != self.me]
        children: dict[int, list[int]] = {}
        for pid in outside:
            ppid = self.stats.ppid(pid)
            if ppid is not None:
                children.setdefault(ppid, []).append(pid)
        descendants: dict[int, RunTree] = {}
        stack = list(members.items())
        while stack:
            parent, tree = stack.pop()
            for kid in children.get(parent, ()):
                if kid not in descendants:
                    descendants[kid] = tree
                    stack.append((kid, tree))
        for pid, tree in descendants.items():
            if pid not in tree.extra:
                try:
                    tree.extra[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
        with_worktree = [t for t in trees if t.worktree]
        for pid in outside:
            if pid in descendants or not with_worktree:
                continue
            cwd = self.stats.cwd(pid)
            if cwd is None:
                continue
            tree = next((t for t in with_worktree if t.in_worktree(cwd)), None)
            if tree is None or pid in tree.extra:
                continue
            try:
                p = psutil.Process(pid)
                if tree.owns_environ(p.environ()):  # not a person's shell looking around
                    tree.extra[pid] = p
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    # -- signalling -----------------------------------------------------------------------

    def outside_group(self, tree: RunTree) -> list[psutil.Process]:
        """Members a killpg of the run's group would miss (their group, last sampled)."""
        out = []
        for pid, group in tree.pgrp.items():
            if group == tree.sid:
                continue
            p = tree.extra.get(pid)
            try:
                out.append(p or psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        return out

    def signal(self, tree: RunTree, sig: int) -> int:
        """Send `sig` to the run's process group and to every member outside it."""
        sent = 0
        if self.still_ours(tree):
            try:
                os.killpg(tree.sid, sig)
                sent += 1
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.outside_group(tree):
            try:
                p.send_signal(sig)  # psutil refuses a pid that was reused meanwhile
                sent += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return sent

    def leftovers(self, tree: RunTree) -> list[psutil.Process]:
        """Everything of the run still alive, looked up afresh: its session, and what
        left it (descendants, or working in its worktree under its job id)."""
        pids = psutil.pids()
        session = {pid for pid in pids if _sid(pid) == tree.sid} if self.still_ours(tree) else set()
        self.scan([tree], pids, {tree.sid: session})
        found: dict[int, psutil.Process] = dict(tree.extra)
        for pid in session:
            try:
                found.setdefault(pid, psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def kill_leftovers(self, tree: RunTree) -> int:
        """After the run ended (the worker killed its group): SIGKILL what escaped it."""
        killed = 0
        for p in self.leftovers(tree):
            try:
                p.send_signal(signal.SIGKILL)
                killed += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        return killed


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def kill_stale_group(pgid: int, worktree: str) -> None:
    """Kill a group a dead worker (or checks service) left, if it still is that run's
    or check's (pids get reused)."""
    try:
        leader = psutil.Process(pgid)
        # Still that run's if it works in its worktree (an agent may cd into a
        # subdirectory) or carries its COCODE_REPO_PATH; otherwise the pid was reused.
        if worktree and not (Path(worktree) in (cwd := Path(leader.cwd()), *cwd.parents)
                             or leader.environ().get(envnames.REPO_PATH) == worktree):
            return
        reaper.kill_tree(pgid)  # what it keeps under it as subreaper, before its death frees them
    except psutil.NoSuchProcess:
        pass  # the leader is gone; other members may live on in the group
    except psutil.AccessDenied:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
