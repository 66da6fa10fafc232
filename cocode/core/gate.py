"""Who may append what: the store's check of each append against its sender.

The sender is the process at the other end of the store's socket, as the kernel
reports it (SO_PEERCRED, which libzmq exposes as a frame's `Peer-Address`,
`<host>:<uid>:<gid>:<pid>` for ipc): a pid a process cannot choose, unlike the
producer id it writes into its own messages. Two rules (issue 11, defect 4):

- An agent writes nothing: a sender descended from the worker (an agent, or
  anything an agent started) is refused whole. The sandbox hides the socket from
  agents; this holds where runs go unsandboxed too: the worker is subreaper
  (resources/reaper.py), so even a daemon's orphan stays in its tree.
- A live run's reports (started, progress, ready, finished, interrupted) come
  from the worker process it was dispatched to (`worker_pid`, bound at dispatch
  from the worker's beats) while that process lives: a forged `run_finished` from
  anyone else is refused. Once that process is gone, others may settle the run
  (the scheduler's `worker_lost`, a restarted worker's recovery).

The scheduler checks worker beats the same way (`beat_refusal`): a WorkerBeat is
taken only from the process whose pid it claims, and never from an agent, so an
unsandboxed agent cannot keep a dead worker's runs alive nor claim runs.

The rules are pure functions of the folded state and pids; reading /proc is kept
to `ancestors` so the rules are tested without processes.
"""

from __future__ import annotations

from typing import Callable, Iterable

from cocode.core import events as ev
from cocode.core.views import State

# Reports about a run that only its worker makes while it runs the run.
# Tested as `type(event) in OWNED`: isinstance() against msgspec classes takes the
# metaclass's slow path (~0.26 us per class, 1.3 us per event for these five), and
# event classes are never subclassed (each is one tag of the union).
OWNED = frozenset({ev.RunStarted, ev.RunProgress, ev.RunReady, ev.RunFinished, ev.RunInterrupted})
MAX_DEPTH = 64


def peer_pid(frame) -> int:
    """The sending process of a received zmq.Frame (0: unknown, e.g. over tcp)."""
    try:
        address = frame.get("Peer-Address")
    except Exception:  # no such property on this transport or libzmq
        return 0
    try:
        return int(address.rsplit(":", 1)[-1])
    except (ValueError, AttributeError):
        return 0


def ancestors(pid: int) -> Iterable[int]:
    """`pid`'s parent, grandparent ... up to init, read from /proc (empty where there is none)."""
    for _ in range(MAX_DEPTH):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            return
        if pid <= 1:
            return
        yield pid


def runner_pids(state: State) -> set[int]:
    """The processes that run code an agent wrote: the worker service, every live run's
    worker, and the checks service (a check runs the run's own tests: a conftest.py an
    agent committed is the agent's code, so it is refused like the agent)."""
    pids = {r.worker_pid for j in state.jobs.values() if not j.done for r in j.runs.values() if r.live}
    for name in ("worker", "checks"):
        service = state.services.get(name)
        if service is not None and service.state == "running":
            pids.add(service.pid)
    pids.discard(0)
    return pids


def agent_refusal(pid: int, workers: set[int], parents: Callable[[int], Iterable[int]] = ancestors) -> str | None:
    """Why a sender is refused whole (it is an agent), or None."""
    if not pid or not workers or pid in workers:
        return None
    for parent in parents(pid):
        if parent in workers:
            return (f"pid {pid} runs an agent's code (under worker or checks pid {parent}): "
                    "agents do not write the log")
    return None


def beat_refusal(claimed: int, peer: int, workers: set[int],
                 parents: Callable[[int], Iterable[int]] = ancestors) -> str | None:
    """Why the scheduler drops a worker beat claiming pid `claimed` from process `peer`
    (0: the transport does not say; such a beat is taken, as appends are)."""
    if peer and claimed != peer:
        return f"a beat claiming pid {claimed} came from pid {peer}"
    return agent_refusal(peer, workers, parents)


def event_refusal(state: State, event: ev.Event, pid: int, alive: Callable[[int], bool]) -> str | None:
    """Why the store refuses `event` from sender `pid`, or None to accept it."""
    if not pid or type(event) not in OWNED:
        return None
    job = state.jobs.get(event.job)
    run = job.runs.get(event.agent) if job else None
    if run is None or not run.live or not run.worker_pid or run.worker_pid == pid:
        return None
    if not alive(run.worker_pid):
        return None  # its worker is gone: the run is anyone's to settle
    return (f"{event.type} for {event.job}/{event.agent} from pid {pid}: "
            f"the run belongs to worker pid {run.worker_pid}")
