"""`cocode doctor`: what this machine has and lacks for cocode, one check a line.

A required check that fails makes the exit code 1; optional ones (an agent CLI
nobody configured, gh) only warn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from cocode.errors import CocodeError
from cocode.gitops import runner
from cocode.jobs import agents
from cocode.paths import Paths
from cocode.resources import cpushare, policy


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _git_version() -> str | None:
    try:
        out = runner.git(None, "--version", timeout=10)
    except CocodeError:
        return None
    return (os.fsdecode(out).strip().splitlines() or [None])[0]


def run_checks(paths: Paths | None, config) -> list[Check]:
    checks = []
    git = _git_version()
    checks.append(Check("git", git is not None, git or "git not found on PATH: install git"))
    table = agents.merge_agents(config.agents if config else None)
    configured = set(config.agents) | set(config.default_agents) if config else set()
    for name in sorted(table):
        command = agents.render_command(table[name].command, "")
        missing = agents.missing_binary(command, None)
        required = name in configured
        where = shutil.which(command[0]) if not missing else None
        checks.append(Check(f"agent {name}", missing is None,
                            where or f"`{missing}` not on PATH" + ("" if required else " (optional)"),
                            required=required))
    gh = shutil.which("gh")
    if gh:
        auth = subprocess.run(["gh", "auth", "status"], capture_output=True, text=True, timeout=15)
        checks.append(Check("gh", auth.returncode == 0,
                            "logged in" if auth.returncode == 0 else "not logged in: run `gh auth login`",
                            required=False))
    else:
        checks.append(Check("gh", False, "not installed (only --issue needs it)", required=False))
    if paths is not None:
        free = shutil.disk_usage(paths.root).free
        checks.append(Check("disk", not policy.disk_low_next(False, free),
                            f"{free / 2**30:.1f} GiB free on {paths.root}"))
        checks.append(services_check(paths))
        checks.append(event_log_check(paths))
        checks.append(cpu_share_check())
    checks.append(sandbox_check(config.sandbox if config else "auto"))
    return checks


def services_check(paths: Paths) -> Check:
    from cocode import client, lock

    if not lock.running_pid(paths):
        return Check("services", True, "not running (`cocode up` starts them)", required=False)
    reply = client.request(paths, "ps")
    if not reply:
        return Check("services", False, "the supervisor does not answer: `cocode down` then `cocode up`")
    bad = [s["name"] for s in reply["services"] if s["state"] != "ready"]
    return Check("services", not bad, "all ready" if not bad else f"not ready: {', '.join(bad)}")


def sandbox_check(mode: str) -> Check:
    """Whether agent runs are confined, and if not, why (issue 11: never silently)."""
    from cocode.jobs import sandbox

    on, why = sandbox.active(mode)
    if on:
        return Check("sandbox", True, f"active ({why})", required=mode == "bwrap")
    return Check("sandbox", False, f"agent runs are NOT sandboxed: {why}", required=mode == "bwrap")


def cpu_share_check() -> Check:
    return Check("cpu shares", True, cpushare.describe(), required=False)


def event_log_check(paths: Paths) -> Check:
    """The log's schema, read with sqlite-utils (an admin tool: kept out of services)."""
    import sqlite3

    import sqlite_utils

    if not paths.db.exists():
        return Check("event log", True, "none yet (`cocode up` creates it)", required=False)
    try:
        db = sqlite_utils.Database(sqlite3.connect(f"file:{paths.db}?mode=ro", uri=True))
        tables = set(db.table_names())
        triggers = {t.name for t in db.triggers}
        count = db["events"].count if "events" in tables else 0
    except sqlite3.DatabaseError as err:
        from cocode.core import eventlog

        return Check("event log", False, f"{paths.db}: corrupt or not a log ({err}); {eventlog.WAY_OUT}")
    missing = {"events_no_update", "events_no_delete"} - triggers
    if "events" not in tables or missing:
        return Check("event log", False, f"{paths.db}: not append-only (missing {', '.join(sorted(missing)) or 'events'})")
    from cocode.core import eventlog

    try:
        problems = eventlog.full_check(db.conn, paths.db)
    except sqlite3.DatabaseError as err:
        problems = [str(err)]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return Check("event log", False, f"{paths.db}: corrupt: {problems[0]}{more}; {eventlog.WAY_OUT}")
    return Check("event log", True, f"{count:,} events, append-only triggers in place, "
                                    "integrity checked, every event decodes")
