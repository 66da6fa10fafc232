"""A run's identity: which job, which agent. Every name derived from it is built
here and nowhere else: the branch `cocode/<job>/<agent>`, the worktree directory
`.cocode/worktrees/<job>-<agent>`, the issue file, the log topic
`log.<job>.<agent>`, the log files' stem and the `<job>/<agent>` key of maps and
worker beats, and a check's log `<agent>/check:<name>`; and the ones read back
(keys, branches, check logs) are parsed here.

A NamedTuple: as cheap to build and hash as the (job, agent) tuple it replaces,
and equal to it, so sets and dicts keyed by either agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

from cocode.paths import Paths

BRANCH_PREFIX = "cocode/"
LOG_TOPIC_PREFIX = "log."
CHECK_LOG = "/check:"  # a check's own log (and monitor key): agent `<agent>/check:<name>`


class RunKey(NamedTuple):
    job: str
    agent: str

    # -- built -----------------------------------------------------------------------

    @property
    def key(self) -> str:
        """`<job>/<agent>`: the key of maps, worker beats and messages."""
        return f"{self.job}/{self.agent}"

    @property
    def branch(self) -> str:
        return f"{BRANCH_PREFIX}{self.job}/{self.agent}"

    @property
    def dir_name(self) -> str:
        """`<job>-<agent>`: the worktree directory's name and the issue file's stem."""
        return f"{self.job}-{self.agent}"

    @property
    def file_stem(self) -> str:
        """`<job>-<agent>` for the log files, %-escaped (all but letters, digits and
        -_.~), so an agent called `a/b` cannot write outside .cocode/logs."""
        return f"{quote(self.job, safe='')}-{quote(self.agent, safe='')}"

    @property
    def topic(self) -> bytes:
        """The bus topic of the run's output."""
        return f"{LOG_TOPIC_PREFIX}{self.job}.{self.agent}".encode()

    def raw_log(self, logs: Path, attempt: int) -> Path:
        """A formatted run's original stdout, one file per attempt (logs/structured.py)."""
        return logs / "raw" / f"{self.file_stem}.a{attempt}.raw"

    def check_log(self, name: str) -> RunKey:
        """The identity of the run's check `name` as logs and the monitor know it."""
        return RunKey(self.job, f"{self.agent}{CHECK_LOG}{name}")

    def worktree(self, paths: Paths) -> Path:
        return paths.worktrees / self.dir_name

    def issue_file(self, tmp: Path) -> Path:
        """The issue body handed to the agent, in the worker's private temp dir."""
        return tmp / f"{self.dir_name}-issue.md"

    def run_home(self, tmp: Path) -> Path:
        """A sandboxed run's own HOME (kept across its attempts), in the worker's temp dir."""
        return tmp / f"{self.dir_name}-home"

    def __str__(self) -> str:
        return self.key

    # -- parsed ----------------------------------------------------------------------

    @classmethod
    def parse(cls, key: str) -> RunKey:
        """The inverse of `.key`. Job ids hold no `/`; an agent name may."""
        job, sep, agent = key.partition("/")
        if not sep or not job:
            raise ValueError(f"not a run key (job/agent): {key!r}")
        return cls(job, agent)

    @classmethod
    def from_branch(cls, branch: str) -> RunKey | None:
        """The run a `cocode/<job>/<agent>` branch belongs to; None for other branches."""
        if branch.startswith("refs/heads/"):
            branch = branch[len("refs/heads/"):]
        if not branch.startswith(BRANCH_PREFIX):
            return None
        try:
            return cls.parse(branch[len(BRANCH_PREFIX):])
        except ValueError:
            return None

    @staticmethod
    def split_check(agent: str) -> tuple[str, str]:
        """(agent, check name) of a log's agent field; the name is "" for the run's own log."""
        base, _, name = agent.partition(CHECK_LOG)
        return base, name

    @classmethod
    def job_topic(cls, job: str) -> bytes:
        """The prefix of every topic of a job's runs' output (subscribe to a whole job)."""
        return f"{LOG_TOPIC_PREFIX}{job}.".encode()
