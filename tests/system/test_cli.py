"""The command line's conventions (issue 12) against a real running cocode: every
`--json` parses into its documented shape (docs/cli.md), colour follows --color
and NO_COLOR without changing the text, `status --active/--limit` and its TITLE
column, and shell completion of job ids and agent names through click's
completion variables, while cocode runs and after it stopped.

One cocode serves the module (the tests run in file order: `down` comes last);
its jobs use the built-in demo agents and a `napper` that sleeps until cancelled.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cocode import client, lock
from cocode.paths import Paths
from support import bash_values, cocode, complete, down, git, make_repo, wait_until

ISSUE = "Greet politely\n\nThe greeting says Helo; it should say Hello."
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ok(repo: Path, *args: str, env=None) -> str:
    proc = cocode(repo, *args, timeout=60, env=env)
    assert proc.returncode == 0, f"cocode {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def as_json(repo: Path, *args: str):
    return json.loads(ok(repo, *args, "--json"))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(repo, the demo job's id, `up --detach --json`'s object); brought down after."""
    repo = make_repo(tmp_path_factory.mktemp("cli") / "repo")
    (repo / ".cocode").mkdir(mode=0o700)
    config = {"agents": {"napper": {"command": ["bash", "-c", "sleep 300"]}}}
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config))
    try:
        started = as_json(repo, "up", "--detach")
        proc = cocode(repo, "submit", "--text", ISSUE, "--agent", "demo", "--agent", "demo-fail", "--wait",
                      timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        job = re.search(r"^job (\w+):", proc.stdout, re.M).group(1)
        yield repo, job, started
    finally:
        down(repo)


# ------------------------------------------------------------------------------ start-up


def test_init_and_up_json(live, tmp_path):
    repo, _, started = live
    assert started["pid"] == lock.running_pid(Paths(repo))
    assert started["root"] == str(repo) and started["ready_ms"] > 0
    assert started["endpoints"] == as_json(repo, "endpoints")

    fresh = make_repo(tmp_path / "fresh")
    first, again = as_json(fresh, "init"), as_json(fresh, "init")
    assert first == {"config": str(fresh / ".cocode" / "config.yaml"), "created": True}
    assert again == {**first, "created": False} and Path(first["config"]).is_file()

    proc = cocode(fresh, "up", "--json", timeout=30)
    assert proc.returncode == 2 and "--detach" in proc.stderr and proc.stdout == "", proc.stderr
    assert not lock.running_pid(Paths(fresh))


# ------------------------------------------------------------------------------ status and colour


def test_status_title_and_colour(live):
    repo, job, _ = live
    plain = ok(repo, "status")
    header = plain.splitlines()[0].split()
    assert header == ["JOB", "TITLE", "AGENT", "STATE", "REASON", "COMMITS", "DIFF", "CHECKS", "TIME",
                      "READY"], plain
    assert re.search(rf"^{job} +Greet politely +demo +ready ", plain, re.M), plain
    assert re.search(rf"^{job} +demo-fail +failed +exit_1 ", plain, re.M), plain
    assert "\x1b[" not in plain  # a pipe: auto means no colour

    coloured = ok(repo, "--color=always", "status")
    assert "\x1b[32mready" in coloured and "\x1b[31mfailed" in coloured, coloured
    assert ANSI.sub("", coloured) == plain, "colour changed the text"
    assert ok(repo, "--color=always", "status", env={**os.environ, "NO_COLOR": "1"}) == coloured
    assert ok(repo, "--color=never", "status") == plain
    bad = cocode(repo, "--color=sometimes", "status", timeout=30)
    assert bad.returncode == 2 and "sometimes" in bad.stderr


def test_status_active_limit_and_cancel_json(live):
    repo, job, _ = live
    assert ok(repo, "status", "--active").strip() == "no active job"
    assert as_json(repo, "status", "--active") == []

    napping = json.loads(ok(repo, "submit", "--text", ISSUE, "--agent", "napper", "--json"))["job"]
    assert [j["job"] for j in as_json(repo, "status", "--active")] == [napping]
    wait_until(lambda: as_json(repo, "status", napping)["runs"][0]["state"] == "running", 20,
               what="the napper to run")
    assert [j["job"] for j in as_json(repo, "status", "--limit", "1")] == [napping]  # active jobs first
    assert {j["job"] for j in as_json(repo, "status", "--limit", "5")} == {napping, job}
    assert cocode(repo, "status", "--limit", "0", timeout=30).returncode == 2

    out = as_json(repo, "cancel", napping)
    assert out["cancelled"] == {"job": napping, "agent": None} and out["waited"] is True
    assert out["job"] == napping and out["state"] == "done" and out["title"] == "Greet politely"
    assert [(r["agent"], r["state"]) for r in out["runs"]] == [("napper", "cancelled")]
    assert as_json(repo, "status", "--active") == []
    assert [j["job"] for j in as_json(repo, "status", "--limit", "1")] == [napping]  # the newest finished


# ------------------------------------------------------------------------------ a run's output


def test_diff_json_is_the_diff(live):
    repo, job, _ = live
    out = as_json(repo, "diff", job, "demo")
    assert out["diff"] == ok(repo, "diff", job, "demo") and out["diff"].startswith("diff --git ")
    assert out["branch"] == f"cocode/{job}/demo"
    assert out["head_sha"] == git(repo, "rev-parse", out["branch"])
    assert out["base_sha"] == as_json(repo, "status", job)["base_sha"]


def test_logs_json_lines_and_offsets(live):
    repo, job, _ = live
    raw = ok(repo, "logs", job, "demo")
    lines = [json.loads(x) for x in ok(repo, "logs", job, "demo", "--json").splitlines()]
    assert [x["line"] for x in lines] == raw.splitlines() and len(lines) >= 3
    assert {(x["job"], x["agent"]) for x in lines} == {(job, "demo")}
    offset = 0
    for x in lines:  # one attempt: each line starts where the one before ended
        assert x["offset"] == offset, x
        offset += len(x["line"].encode()) + 1


# ------------------------------------------------------------------------------ the event log and cleanup


def test_clean_dry_run_and_compact_json(live):
    repo, job, _ = live
    plan = as_json(repo, "clean", "--dry-run", "--older-than", "0")
    assert plan["dry_run"] is True and plan["done"] == [] and plan["older_than_days"] == 0
    mine = {(a["job"], a["agent"]): a for a in plan["actions"]}
    demo = mine[(job, "demo")]
    assert demo["kind"] == "remove_worktree" and demo["destroys"] is None
    assert Path(demo["target"]).is_dir(), "a dry run removed the worktree"
    assert set(ok(repo, "clean", "--dry-run", "--older-than", "0").splitlines()) == {
        f"would remove worktree {a['target']} ({a['job']}/{a['agent']}, {a['why']})" for a in plan["actions"]}

    before = as_json(repo, "replay", "--verify")
    assert before["identical"] is True and before["seq"] > 0 and before["jobs"] >= 2
    done = as_json(repo, "compact", "--older-than", "0")
    assert job in done["jobs"] and done["events"] > 0 and Path(done["archive"]).is_file()
    assert done["db_bytes_after"] < done["db_bytes_before"]
    assert as_json(repo, "status", job)["state"] == "done", "compaction changed status"
    again = as_json(repo, "compact", "--older-than", "0")
    assert again["archive"] is None and again["events"] == 0 and again["jobs"] == []


# ------------------------------------------------------------------------------ completion


def test_completion_of_job_ids_and_agents(live, tmp_path):
    repo, job, _ = live
    assert job in bash_values(complete(repo, "status "))
    assert bash_values(complete(repo, f"status {job[:2]}")) == [
        j for j in bash_values(complete(repo, "status ")) if j.startswith(job[:2])]
    assert bash_values(complete(repo, f"diff {job} ")) == ["demo", "demo-fail"]
    assert bash_values(complete(repo, f"tail {job} demo ")) == ["demo-fail"]  # once each
    assert bash_values(complete(repo, f"logs {job} demo-")) == ["demo-fail"]
    assert job in bash_values(complete(repo, "say "))  # say had no completion (issue 12's audit)
    assert bash_values(complete(repo, f"say {job} ")) == ["demo", "demo-fail"]
    assert bash_values(complete(repo, f"say {job} demo-")) == ["demo-fail"]
    assert f"demo\tready" in complete(repo, f"say {job} d", shell="fish")
    for command in ("check", "pick"):
        assert bash_values(complete(repo, f"{command} {job} ")) == ["demo", "demo-fail"], command
    agents = bash_values(complete(repo, "submit --agent "))
    assert agents[0] == "napper" and {"demo", "demo-fail", "claude"} <= set(agents), agents
    assert bash_values(complete(repo, "submit --agent demo-f")) == ["demo-fail"]
    # zsh and fish get the job's title, and a run's state, as the description
    assert f"{job}\nGreet politely\n" in complete(repo, f"cancel {job[:3]}", shell="zsh")
    assert f"demo-fail\tfailed" in complete(repo, f"cancel {job} demo-", shell="fish")
    # outside a repository, or for an unknown job: nothing, quietly
    assert bash_values(complete(None, "status ", cwd=tmp_path)) == []
    assert bash_values(complete(repo, "diff nosuchjob ")) == []


# ------------------------------------------------------------------------------ last: down


def test_down_json_then_completion_from_the_file(live):
    repo, job, started = live
    assert as_json(repo, "down") == {"was_running": True, "pid": started["pid"], "leftovers": []}
    assert as_json(repo, "down") == {"was_running": False, "pid": None, "leftovers": []}
    assert not client.is_running(Paths(repo))
    assert job in bash_values(complete(repo, "status "))  # now read from events.db
    assert bash_values(complete(repo, f"diff {job} ")) == ["demo", "demo-fail"]
    assert bash_values(complete(repo, f"say {job} ")) == ["demo", "demo-fail"]


