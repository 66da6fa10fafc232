"""Checks, compare and pick (issue 10) from outside, with real parts only.

A real repository with a real (small) unittest suite and a bug; real agent
scripts, one that fixes the bug and one that does not; the real services and
CLI; merges into the real main checkout; pushes to a real bare repository as the
remote. `gh` is the one part that cannot run here (it needs the network and an
account): tests/agents/gh_standin.py stands in for it on PATH, checks the
arguments it gets, and records them for the test to read.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from review_support import CALC, UNITTEST, checks_done, good_and_bad_checked, ok, submit, write_config
from support import AGENTS_DIR, GitRepo, cocode, down, events, status, up, wait_until

@pytest.fixture
def gh(tmp_path: Path, monkeypatch) -> Path:
    """The recording `gh` stand-in first on PATH; returns its record file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").symlink_to(AGENTS_DIR / "gh_standin.py")
    record = tmp_path / "gh-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GH_RECORD", str(record))
    return record


# -------------------------------------------------------------------------------------------------


def test_checks_rank_and_pick_merge(calc: GitRepo, tmp_path: Path):
    """The fixing run passes its tests, the other fails them; compare recommends the
    fixing one with the rule; pick lands it as a merge commit on main, records
    `picked`, releases the other worktree; a second pick is refused, changing nothing."""
    repo = calc.path
    with good_and_bad_checked(repo, tmp_path) as (job, runs):
        assert runs, status(repo, job)
        good, bad = runs["good"]["checks"]["tests"], runs["bad"]["checks"]["tests"]
        assert (good["status"], good["passed"], good["failed"]) == ("passed", 3, 0), good
        assert (bad["status"], bad["failed"]) == ("failed", 3), bad
        assert good["commit"] == runs["good"]["ready_commit"]
        finished = [e for e in events(repo, "check_finished") if e["name"] == "tests"]
        assert {e["agent"]: e["exit_code"] for e in finished} == {"good": 0, "bad": 1}
        assert all(e["duration_s"] > 0 for e in finished)

        cmp = json.loads(ok(repo, "compare", job, "--json"))
        assert cmp["recommended"] == "good"
        assert "all checks pass" in cmp["why"] and "rule:" in cmp["why"]
        rows = {r["agent"]: r for r in cmp["runs"]}
        assert (rows["good"]["added"], rows["good"]["removed"], rows["good"]["files"]) == (1, 1, 1)
        assert (rows["bad"]["added"], rows["bad"]["files"]) == (2, 1)
        text = ok(repo, "compare", job)
        assert f"cocode pick {job} good" in text
        table = ok(repo, "status", job)
        assert "Fix add()" in table and "+1/-1" in table and "1/1 pass" in table

        # The tests are in the run's log under the check's name, and `cocode logs` reads it.
        log = ok(repo, "logs", job, "good/check:tests")
        assert "Ran 3 tests" in log
        tail = ok(repo, "tail", job)
        assert re.search(r"^good/check:tests +\| Ran 3 tests", tail, re.M), tail
        assert re.search(r"^bad/check:tests +\| FAILED \(failures=3\)", tail, re.M), tail
        followed = ok(repo, "tail", "-f", job, "bad/check:tests", timeout=30)
        assert re.search(r"^-- check tests: failed: FAILED \(failures=3\) \(\d+\.\ds\)$", followed.strip(), re.M), \
            followed

        stat = ok(repo, "diff", job, "good", "--stat")
        assert re.search(r"calc.py \| 2 \+-", stat) and "1 file changed" in stat, stat
        between = ok(repo, "diff", job, "good", "bad")
        assert "+++ b/NOTES.md" in between and "-    return a + b\n+    return a + b + 1" in between, between
        assert "\x1b[" not in between, "no colour into a pipe"

        before = calc.head()
        out = ok(repo, "pick", job, "--merge", "--yes")
        assert "merged good" in out and "released the worktrees of bad" in out
        parents = calc.git("rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
        assert parents == [before, runs["good"]["ready_commit"]]
        assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
        assert calc.git("status", "--porcelain") == ""
        picked = events(repo, "picked")
        assert [(e["agent"], e["mode"], e["landed_sha"]) for e in picked] == [("good", "merge", calc.head())]
        assert not Path(runs["bad"]["worktree"]).exists()
        assert calc.git("rev-parse", f"cocode/{job}/bad")  # the branch stays
        st = status(repo, job)
        assert (st["picked"], st["picked_mode"]) == ("good", "merge")

        head = calc.head()
        again = cocode(repo, "pick", job, "good", "--merge", "--yes")
        assert again.returncode == 1 and "already picked" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        assert calc.head() == head



def test_pick_refuses_dirty_checkout_moved_base_and_running(calc: GitRepo, tmp_path: Path):
    """Each refusal is one line with the fixing command, and the main checkout is
    left exactly as it was (head, index, files)."""
    repo = calc.path
    write_config(repo, tmp_path, {})
    up(repo)
    try:
        job = submit(repo, "good")
        wait_until(lambda: status(repo, job)["state"] == "done", 30, what="the job done")

        (repo / "calc.py").write_text("# local edit\n" + CALC)
        head = calc.head()
        proc = cocode(repo, "pick", job, "good", "--yes")
        assert proc.returncode == 1 and "uncommitted change" in proc.stderr and "git stash" in proc.stderr
        assert calc.head() == head and (repo / "calc.py").read_text().startswith("# local edit")
        calc.git("checkout", "calc.py")

        calc.commit("main moved", {"calc.py": "def add(a, b):\n    return b + a + 0\n"})
        head = calc.head()
        proc = cocode(repo, "pick", job, "good", "--squash", "--yes")
        assert proc.returncode == 1 and "conflicts" in proc.stderr and "calc.py" in proc.stderr
        assert "git merge" in proc.stderr
        assert calc.head() == head and calc.git("status", "--porcelain") == ""
        assert not (Path(calc.git("rev-parse", "--git-dir")) / "MERGE_HEAD").exists()

        dry = cocode(repo, "pick", job, "good", "--rebase", "--dry-run")
        assert dry.returncode == 0 and "conflicts in calc.py" in dry.stdout
        assert calc.head() == head

        none = cocode(repo, "pick", job, "nosuch", "--yes")
        assert none.returncode == 2 and "has no agent" in none.stderr
        no_tty = cocode(repo, "pick", job, "good")
        assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    finally:
        down(repo)


def test_pick_rebase_on_moved_base_and_squash(calc: GitRepo, tmp_path: Path):
    """The base moved without conflict: --rebase replays the run's commit on top
    (linear history, the same change)."""
    repo = calc.path
    write_config(repo, tmp_path, {})
    up(repo)
    try:
        job = submit(repo, "good", "bad")
        wait_until(lambda: status(repo, job)["state"] == "done", 30, what="the job done")
        moved = calc.commit("unrelated", {"README.md": "calc\n"})
        ok(repo, "pick", job, "good", "--rebase", "--yes")
        assert calc.git("rev-parse", "HEAD~1") == moved
        assert calc.git("rev-list", "--count", "--merges", "HEAD") == "0"
        assert "return a + b\n" in (repo / "calc.py").read_text()
        assert calc.git("log", "-1", "--format=%s") == "fix add()"
    finally:
        down(repo)


def test_pr_dry_run_then_pr_to_bare_remote(calc: GitRepo, tmp_path: Path, gh: Path):
    """--pr --dry-run prints what would be pushed and the PR text and pushes nothing;
    --pr pushes the ready commit to the (bare) remote and calls `gh pr create` with
    the issue's title and a body that closes the issue."""
    repo = calc.path
    bare = tmp_path / "remote.git"
    calc.git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    calc.git("remote", "add", "origin", str(bare))
    calc.git("push", "-q", "origin", "main")
    write_config(repo, tmp_path, {"tests": UNITTEST})
    up(repo)
    try:
        job = submit(repo, "good", "bad", extra=("--issue", "7"))
        assert wait_until(checks_done(repo, job, ("good", "bad")), 60, what="both runs' tests check finished")
        ready = status(repo, job)["runs"][0]["ready_commit"]

        dry = ok(repo, "pick", job, "--pr", "--dry-run")
        assert f"would push {ready} to origin ({bare})" in dry
        assert f"refs/heads/cocode/{job}/good" in dry
        assert f"gh pr create --head cocode/{job}/good --base main --title 'Fix add()' --body-file -" in dry
        assert "Fixes #7" in dry and "Checks: pass (3 passed, 0 failed)" in dry and "+1/-1" in dry
        assert calc.git("ls-remote", str(bare), f"cocode/{job}/good") == ""
        calls = [json.loads(line) for line in gh.read_text().splitlines()]
        assert [c["args"][:2] for c in calls] == [["issue", "view"]]  # the dry run called no gh

        out = ok(repo, "pick", job, "--pr", "--yes")
        assert "pull request: https://github.com/example/calc/pull/" in out
        assert calc.git("ls-remote", str(bare), f"refs/heads/cocode/{job}/good").split()[0] == ready
        call = [json.loads(line) for line in gh.read_text().splitlines()][-1]
        assert call["args"][:2] == ["pr", "create"]
        opts = dict(zip(call["args"][2::2], call["args"][3::2]))
        assert opts == {"--head": f"cocode/{job}/good", "--base": "main", "--title": "Fix add()",
                        "--body-file": "-"}
        assert call["stdin"].startswith("Fixes #7\n") and "`good` agent" in call["stdin"]
        st = status(repo, job)
        assert st["pr_url"].startswith("https://github.com/example/calc/pull/") and st["picked_mode"] == "pr"
        assert "pull/" in ok(repo, "status")
    finally:
        down(repo)


def test_pr_refusals_missing_gh_and_no_remote(calc: GitRepo, tmp_path: Path, monkeypatch):
    repo = calc.path
    write_config(repo, tmp_path, {})
    up(repo)
    try:
        job = submit(repo, "good")
        wait_until(lambda: status(repo, job)["state"] == "done", 30, what="the job done")
        no_remote = cocode(repo, "pick", job, "--pr", "--dry-run")
        assert no_remote.returncode == 1 and "git remote add origin" in no_remote.stderr
        calc.git("remote", "add", "origin", str(tmp_path / "remote.git"))
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}
        missing = cocode(repo, "pick", job, "--pr", "--yes", env=env)
        assert missing.returncode == 3 and "cli.github.com" in missing.stderr
    finally:
        down(repo)


def test_a_refused_push_and_a_github_that_never_answers(calc: GitRepo, tmp_path: Path, gh: Path, monkeypatch):
    """The remote already has the run's branch at another commit: the push is refused,
    nothing is recorded. Then gh hangs past github_timeout (5 s): exit 124, the branch
    pushed, no `picked` event, and the message says how to retry."""
    repo = calc.path
    bare = tmp_path / "remote.git"
    calc.git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    calc.git("remote", "add", "origin", str(bare))
    write_config(repo, tmp_path, {}, {"github_timeout": 5})
    up(repo)
    try:
        job = submit(repo, "good")
        wait_until(lambda: status(repo, job)["state"] == "done", 30, what="the job done")
        other = calc.git("commit-tree", "HEAD^{tree}", "-m", "someone else's")  # not an ancestor
        calc.git("push", "-q", "origin", f"{other}:refs/heads/cocode/{job}/good")
        refused = cocode(repo, "pick", job, "--pr", "--yes")
        assert refused.returncode == 1 and "git push refused, nothing changed" in refused.stderr, refused.stderr
        assert f"git push origin --delete cocode/{job}/good" in refused.stderr
        assert not gh.exists() or "pr" not in gh.read_text(), "no PR after a refused push"
        calc.git("push", "-q", "origin", "--delete", f"cocode/{job}/good")

        monkeypatch.setenv("GH_SLEEP", "30")
        t0 = time.monotonic()
        slow = cocode(repo, "pick", job, "--pr", "--yes", timeout=60)
        assert slow.returncode == 124 and "took over 5 s (github_timeout)" in slow.stderr, slow.stderr
        assert time.monotonic() - t0 < 20
        assert f"cocode pick {job} good --pr" in slow.stderr
        assert events(repo, "picked") == []
    finally:
        down(repo)
