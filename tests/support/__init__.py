"""What tests share, one module a concern: project.py (where things are, the real
agent CLIs, `heavy`), git.py (real repositories with the user's git config shut out),
procs.py (finding and reaping the processes a test left), waiting.py (`wait_until`:
it raises, saying what it waited for and what it last saw), cli.py (the real `cocode`
CLI, `up`/`down`), jobs.py (submit, status, wait for a job or a run, read events),
oldlog.py (an events.db another cocode version wrote) and following.py (a recording
Follower, acked appends, "it still follows").

This package is their public face: test modules write `from support import ...`,
never from conftest, from each other or from a module in here. Fixtures live in
conftest.py and use these.
"""

from .cli import bash_values, cocode, complete, down, ipc_files, one_line_error, up, write_config
from .following import Following, append_acked, db_head, settle, still_follows
from .git import AGENT_GIT_ENV, IDENTITY, GitRepo, git, isolated_env, make_repo, rev_parse, subjects
from .jobs import (
    ISSUE, PASSED, SECRET, agents, events, job_now, ps, runs_of, service_pid, state_with, status, submit,
    two_scheduler_decisions, wait_job, wait_run,
)
from .oldlog import older_log
from .procs import agent_processes, alive, cocode_processes, kill_all, live, procs_matching, reap, sleeps_of
from .project import AGENTS_DIR, ROOT, agent_cli, agent_module, heavy
from .waiting import wait_none, wait_until

__all__ = [
    "AGENTS_DIR", "AGENT_GIT_ENV", "Following", "GitRepo", "IDENTITY", "ISSUE", "PASSED", "ROOT", "SECRET",
    "agent_cli", "agent_module", "agent_processes", "agents", "alive", "append_acked", "bash_values",
    "cocode", "cocode_processes", "complete", "db_head", "down", "events", "git", "heavy", "ipc_files",
    "isolated_env", "job_now", "kill_all", "live", "make_repo", "older_log", "one_line_error", "procs_matching",
    "ps", "reap", "rev_parse", "runs_of", "service_pid", "settle", "sleeps_of", "state_with", "status",
    "still_follows", "subjects", "submit", "two_scheduler_decisions", "up", "wait_job", "wait_none",
    "wait_run", "wait_until", "write_config",
]
