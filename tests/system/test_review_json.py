"""`--json` of `check`, `say`, `compare` and `pick` (issue 12) against a real running cocode:
each prints the shape docs/cli.md gives, errors stay one line with ADR-003's exit
codes, and `pick --json` without `--yes` refuses at once (it cannot ask) instead of
waiting on a prompt. Real repository, real unittest check, real agent scripts.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from review_support import good_and_bad_checked, ok
from support import GitRepo, cocode, events, one_line_error, status

RESULT_KEYS = {"agent", "name", "status", "summary", "passed", "failed", "exit_code", "duration_s", "commit"}


def test_check_say_and_pick_json(calc: GitRepo, tmp_path):
    repo = calc.path
    with good_and_bad_checked(repo, tmp_path) as (job, runs):

        # check: every result, in agent then check order; exit 1 because bad's tests fail
        proc = cocode(repo, "check", job, "--json", "--timeout", "60")
        assert proc.returncode == 1 and proc.stderr == "", proc.stderr
        out = json.loads(proc.stdout)
        assert {k: out[k] for k in ("job", "agent", "names", "waited", "done")} == \
            {"job": job, "agent": None, "names": ["tests"], "waited": True, "done": True}
        assert sorted(out["agents"]) == ["bad", "good"]
        by_agent = {r["agent"]: r for r in out["results"]}
        assert all(set(r) == RESULT_KEYS for r in out["results"]) and len(out["results"]) == 2
        assert (by_agent["good"]["status"], by_agent["good"]["passed"], by_agent["good"]["failed"]) == ("passed", 3, 0)
        assert by_agent["good"]["commit"] == runs["good"]["ready_commit"]
        assert (by_agent["bad"]["status"], by_agent["bad"]["failed"], by_agent["bad"]["exit_code"]) == ("failed", 3, 1)
        good_only = cocode(repo, "check", job, "good", "--json")
        assert good_only.returncode == 0 and [r["agent"] for r in json.loads(good_only.stdout)["results"]] == ["good"]
        asked = json.loads(ok(repo, "check", job, "good", "--no-wait", "--json"))
        assert (asked["waited"], asked["done"], asked["results"], asked["agent"]) == (False, False, [], "good")
        bad_name = cocode(repo, "check", job, "--name", "lint", "--json")
        assert "no such check" in one_line_error(bad_name) and bad_name.returncode == 2 and bad_name.stdout == ""

        # compare: the documented shape (docs/cli.md), rows in rank order
        cmp = json.loads(ok(repo, "compare", job, "--json"))
        assert set(cmp) == {"job", "title", "rank_by", "recommended", "why", "runs"}
        assert (cmp["recommended"], [r["rank"] for r in cmp["runs"]][0]) == ("good", 1)
        assert set(cmp["runs"][0]) == {"agent", "state", "reason", "commit", "checks", "checks_ok", "passed", "failed",
                                       "failures", "added", "removed", "files", "commits", "ready_s", "tokens",
                                       "cost_usd", "rank"}
        assert cmp["runs"][0]["checks"] == {"tests": "passed"} and cmp["runs"][0]["checks_ok"] is True

        # say: the queued follow-up at once, then --wait's exit code (bad commits again: ready)
        before = status(repo, job)["runs"][1]
        assert before["agent"] == "bad"
        proc = cocode(repo, "say", job, "bad", "  one more note  ", "--json", "--wait", timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        said = json.loads(proc.stdout)  # only the object: --json streams no progress
        assert said == {"job": job, "agent": "bad", "attempt": before["attempt"] + 1, "state": "queued",
                        "message": "one more note", "branch": f"cocode/{job}/bad", "worktree": before["worktree"]}
        assert [e["message"] for e in events(repo, "follow_up_requested")] == ["one more note"]
        nothing = cocode(repo, "say", job, "nosuch", "hi", "--json")
        assert "has no agent" in one_line_error(nothing) and nothing.returncode == 1 and nothing.stdout == ""

        # pick: --json without --yes refuses at once (no prompt to hang on), changing nothing
        head = calc.head()
        tty, terminal = pty.openpty()  # stdin a terminal: the prompt would be asked and wait
        try:
            refused = subprocess.run([sys.executable, "-m", "cocode", "-C", str(repo), "pick", job, "good", "--json"],
                                     capture_output=True, text=True, timeout=30, stdin=terminal)
        finally:
            os.close(tty)
            os.close(terminal)
        assert refused.returncode == 2 and refused.stdout == "", refused.stdout + refused.stderr
        assert "--json cannot ask" in one_line_error(refused) and calc.head() == head
        dry = json.loads(ok(repo, "pick", job, "good", "--dry-run", "--json"))
        assert (dry["dry_run"], dry["mode"], dry["landed_sha"], dry["released"]) == (True, "merge", None, [])
        assert dry["lines"][0].startswith(f"would merge {runs['good']['ready_commit'][:12]} (good) onto main")
        assert calc.head() == head

        done = json.loads(ok(repo, "pick", job, "--json", "--yes"))  # the recommended run: good
        assert done == {"job": job, "agent": "good", "mode": "merge", "pr": False, "dry_run": False,
                        "commit": runs["good"]["ready_commit"], "landed_sha": calc.head(), "pr_url": None,
                        "released": ["bad"], "lines": done["lines"]}
        assert calc.head() != head and done["lines"][0].startswith("merged good")
        assert [e["landed_sha"] for e in events(repo, "picked")] == [calc.head()]
        again = cocode(repo, "pick", job, "--json", "--yes")
        assert "already picked" in one_line_error(again) and again.returncode == 1 and again.stdout == ""
