"""Equal CPU shares for agents (ADR-005 §1): cgroup v2 `cpu.weight` where cocode
may create a cgroup, otherwise the same nice value for every agent process group.

With cgroup v2, each run gets its own child cgroup under one `cocode` parent, every
child with the same cpu.weight, so the kernel shares CPU per run however many
processes a run starts. Without it (cgroup v1, or no permission), every agent's
process group gets nice AGENT_NICE; where the kernel groups by session
(autogroup) the agent's session gets that nice too, and since each agent is its
own session, CPU is again shared per run rather than per process.

The worker calls apply() right after spawning an agent, and kill() when the run
ends: a run's own cgroup is the strongest way to end all of it at once
(`cgroup.kill`, Linux 5.14+: forks racing the kill included), before the worker's
subreaper sweep (resources/reaper.py) finds what left or never joined it (a
`setup:` command's daemon, or what forked in the moment before apply()).
`cocode doctor` prints describe(). Nothing here ever fails a run: a share that
cannot be set is logged.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cocode import envnames

CGROUP_ROOT = Path("/sys/fs/cgroup")
WEIGHT = 100  # every run the same; cgroup v2's default
AGENT_NICE = 5  # every agent the same; a little under the services, which must stay responsive


@lru_cache(maxsize=1)
def mode() -> tuple[str, Path | None, str]:
    """("cgroup", parent, "") when cgroup v2 can be used, else ("nice", None, why not)."""
    root = Path(os.environ.get(envnames.CGROUP_PARENT) or CGROUP_ROOT)
    controllers = root / "cgroup.controllers"
    if not controllers.exists():
        return "nice", None, "no cgroup v2 here"
    try:
        if "cpu" not in controllers.read_text().split():
            return "nice", None, "cgroup v2 without the cpu controller"
    except OSError as err:
        return "nice", None, f"cgroup v2 unreadable ({err.strerror})"
    candidates = [root / "cocode"] if os.environ.get(envnames.CGROUP_PARENT) else [root / "cocode", *_delegated()]
    why = "no writable cgroup v2 directory"
    for parent in candidates:
        try:
            _prepare(parent)
            return "cgroup", parent, ""
        except OSError as err:
            why = f"cannot create a cgroup in {parent.parent} ({err.strerror})"
    return "nice", None, why


def _delegated() -> list[Path]:
    """Our own cgroup's parent, where a systemd user session delegates to us."""
    try:
        line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines() if ln.startswith("0::"))
    except (OSError, StopIteration):
        return []
    own = CGROUP_ROOT / line[3:].lstrip("/")
    return [own.parent / "cocode"] if own.parent != CGROUP_ROOT else []


def _prepare(parent: Path) -> None:
    """Create the cocode parent with the cpu controller on for its children, and
    prove a child cgroup can be made and weighted."""
    subtree = parent.parent / "cgroup.subtree_control"
    if "cpu" not in subtree.read_text().split():  # not ours to turn on
        raise PermissionError(1, "the cpu controller is not delegated there")
    parent.mkdir(exist_ok=True)
    (parent / "cgroup.subtree_control").write_text("+cpu")
    probe = parent / f"probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        (probe / "cpu.weight").write_text(str(WEIGHT))
    finally:
        probe.rmdir()


def describe() -> str:
    kind, parent, why = mode()
    if kind == "cgroup":
        return f"cgroup v2: each run in its own cgroup under {parent}, cpu.weight {WEIGHT} each"
    text = f"nice {AGENT_NICE} for every agent process group ({why})"
    if _autogroup():
        text += "; autogroup on, so each agent's session gets an equal share"
    return text


def _autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _cgroup_name(key: str) -> str:
    return key.replace("/", "-").replace(".", "_")


def apply(pgid: int, key: str) -> str:
    """Give the run whose group is `pgid` its equal share; returns how ("cgroup"/"nice")."""
    kind, parent, _ = mode()
    if kind == "cgroup":
        try:
            _tidy(parent)
            group = parent / _cgroup_name(key)
            group.mkdir(exist_ok=True)
            (group / "cpu.weight").write_text(str(WEIGHT))
            for pid in _group_members(pgid):
                try:
                    (group / "cgroup.procs").write_text(str(pid))
                except ProcessLookupError:
                    pass
            return "cgroup"
        except OSError:
            pass  # fall through: a nice value is better than nothing
    try:
        os.setpriority(os.PRIO_PGRP, pgid, AGENT_NICE)
    except OSError:
        pass
    if _autogroup():
        try:
            Path(f"/proc/{pgid}/autogroup").write_text(str(AGENT_NICE))
        except OSError:
            pass
    return "nice"


def kill(key: str) -> bool:
    """SIGKILL everything in the run's cgroup at once; False where it has none."""
    kind, parent, _ = mode()
    return kind == "cgroup" and kill_cgroup(parent / _cgroup_name(key))


def kill_cgroup(group: Path) -> bool:
    try:
        (group / "cgroup.kill").write_text("1")
        return True
    except OSError:  # no such cgroup, or a kernel before 5.14
        return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    members.append(int(name))
            except OSError:
                continue
    return members


def _tidy(parent: Path) -> None:
    """Remove the cgroups of runs that ended (an empty cgroup can be removed)."""
    try:
        for child in parent.iterdir():
            if child.is_dir() and not (child / "cgroup.procs").read_text().strip():
                try:
                    child.rmdir()
                except OSError:
                    pass
    except OSError:
        pass
