"""Config `setup:` and `copy:`: run in every new worktree before its agent, with a real
running cocode and a real agent that commits everything it finds (`git add -A`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cocode.jobs import sandbox
from support import GitRepo, cocode, down, up, wait_until

GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
# Commits whatever is in its worktree, so a copied file would land in the commit
# unless cocode keeps it out.
ADDER = ["bash", "-c", "echo agent found: $(cat built.txt); git add -A && "
                       "git commit -q -m work -m 'cocode ready for check'"]


def start(tmp: Path, setup: list[str], copy: list[str], command: list[str] = ADDER, **config) -> Path:
    repo = GitRepo.init(tmp / "repo", {"README.md": "hi\n"}).path
    (repo / ".env").write_text("API_TOKEN=local-only\n")  # untracked, as .env files are
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({
        "agents": {"adder": {"command": command, "env": GIT_ENV}}, "setup": setup, "copy": copy, **config,
    }))
    up(repo)
    return repo


def finished(repo: Path, job: str) -> dict:
    def run():
        j = json.loads(cocode(repo, "status", job, "--json", check=True).stdout)
        j = j[0] if isinstance(j, list) else j
        return j["runs"][0] if all(r["ended_at"] for r in j["runs"]) else None

    return wait_until(run, 60, what=f"job {job}'s run to finish")


@pytest.fixture
def repos():
    made: list[Path] = []
    yield made
    for repo in made:
        down(repo)


def submit(repo: Path) -> str:
    return json.loads(cocode(repo, "submit", "--json", "--text", "Build it", "--agent", "adder", check=True).stdout)["job"]


def test_setup_and_copy_run_before_the_agent(tmp_path, repos):
    repo = start(tmp_path, ["echo preparing", "cat .env > built.txt"], [".env"])
    repos.append(repo)
    job = submit(repo)
    run = finished(repo, job)
    assert (run["state"], run["reason"]) == ("ready", None), run
    assert run["setup_ms"] > 0
    files = GitRepo(repo).git("show", "--name-only", "--format=", run["ready_commit"]).split()
    assert files == ["built.txt"], files  # the copied .env stayed out of the commit
    log = cocode(repo, "logs", job, "adder", check=True).stdout
    # Setup's output first, then the agent's, which saw what setup made from the copy.
    assert log.index("[setup] copied .env") < log.index("[setup] $ echo preparing") < log.index("preparing\n") \
        < log.index("agent found: API_TOKEN=local-only")
    assert "setup" in cocode(repo, "status", job, check=True).stdout


def test_failing_setup_ends_the_run_setup_failed_with_its_last_line(tmp_path, repos):
    repo = start(tmp_path, ["echo step one", "echo installing; echo 'npm ERR! missing package.json' >&2; exit 3",
                            "echo never"], [])
    repos.append(repo)
    job = submit(repo)
    run = finished(repo, job)
    assert (run["state"], run["reason"]) == ("failed", "setup_failed"), run
    assert "exited 3: npm ERR! missing package.json" in run["detail"], run
    assert run["commits"] == 0 and run["ready_commit"] is None
    log = cocode(repo, "logs", job, "adder", check=True).stdout
    assert "step one" in log and "npm ERR! missing package.json" in log and "never" not in log


def test_copy_of_a_missing_file_fails_the_run_saying_which(tmp_path, repos):
    repo = start(tmp_path, [], [".env.local"])
    repos.append(repo)
    run = finished(repo, submit(repo))
    assert (run["state"], run["reason"]) == ("failed", "setup_failed")
    assert ".env.local does not exist" in run["detail"]


@pytest.mark.skipif(sandbox.unavailable() is not None, reason="bubblewrap cannot confine runs here")
def test_setup_runs_in_the_agents_sandbox(tmp_path, repos):
    """A sandboxed run's setup: commands run where its agent does: the workspace
    writable, the run's own HOME (the agent sees what setup left there), and no
    write reaches the main checkout or .cocode/ (unsandboxed, both did)."""
    root = tmp_path / "repo"
    setup = [f"echo escaped > {root}/escaped.txt; echo escaped > {root}/.cocode/escaped.txt; "
             "echo from-setup > $HOME/setup-was-here; echo built > built.txt"]
    agent = ["bash", "-c", "echo agent home: $(cat $HOME/setup-was-here) built: $(cat built.txt); "
                           "git add -A && git commit -q -m work -m 'cocode ready for check'"]
    repo = start(tmp_path, setup, [], agent, sandbox="bwrap")
    repos.append(repo)
    job = submit(repo)
    run = finished(repo, job)
    assert (run["state"], run["reason"]) == ("ready", None), run
    assert not (repo / "escaped.txt").exists(), "setup wrote into the main checkout"
    assert not (repo / ".cocode" / "escaped.txt").exists(), "setup wrote into .cocode/"
    log = cocode(repo, "logs", job, "adder", check=True).stdout
    assert "agent home: from-setup built: built" in log, log
