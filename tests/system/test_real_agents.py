"""The real `claude` and `codex` CLIs through cocode, against scripted model servers.

Each test starts a scripted model server on 127.0.0.1 (tests/modelservers.py), a
real cocode whose environment points the agent at it (claude: ANTHROPIC_BASE_URL,
passed through by the preset; codex: $CODEX_HOME/config.toml naming a provider), and
submits with the preset unchanged. The CLIs come from `.ci/run`'s pinned npm install;
without them the tests skip and say how to install them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from modelservers import AnthropicServer, ResponsesServer, Turn, bash, shell
from support import GitRepo, agent_cli, cocode, down, isolated_env, up, wait_until

PROJECT = {
    "greet.py": "def greet():\n    return 'Helo'\n",
    # unittest: codex runs commands in a login shell, whose PATH has the system python3 only.
    "test_greet.py": "import unittest\n\nfrom greet import greet\n\n\nclass T(unittest.TestCase):\n"
                     "    def test_greet(self):\n        self.assertEqual(greet(), 'Hello')\n",
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
}
ISSUE = "Fix the greeting\n\ngreet() says Helo; it should say Hello."
TOKEN = "ghp_" + "Q7" * 18  # looks like a GitHub token: the built-in patterns hide it
COMMIT = "git add -A && git commit -q -m 'fix greeting' -m 'cocode ready for check'"
JSON_LINE = re.compile(r"^\S+\s*\|\s*\{")
WAIT_S = 120


def start(tmp: Path, agent: str, server) -> Path:
    """A project repository and a running cocode whose agent talks to `server`."""
    repo = GitRepo.init(tmp / "repo", {**PROJECT, "config.env": f"TOKEN={TOKEN}\n"}).path
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({
        "env_passthrough": ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"],
        # codex does not say its model; claude's name prices it mid-session (for budgets)
        "prices": {"codex": {"input": 1.0, "output": 10.0}, "claude": {"input": 5000.0}},
    }))
    home, scratch = tmp / "home", tmp / "tmpdir"
    home.mkdir()
    scratch.mkdir()
    path = os.pathsep.join([agent_cli(agent), os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    # codex places its sandbox helper in $CODEX_HOME, never under the temp dir; without it
    # a bubblewrap on PATH (Debian's) cannot start it and every command fails. So, as on a
    # user's machine, CODEX_HOME is not under TMPDIR.
    env = isolated_env(HOME=str(home), PATH=path, TMPDIR=str(scratch))
    if agent == "claude":
        env.update(ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="test-key-not-secret",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    else:
        codex_home = tmp / "codex-home"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(
            'model_provider = "scripted"\nmodel = "gpt-test"\n'
            "[model_providers.scripted]\n"
            f'name = "scripted"\nbase_url = "{server.url}/v1"\nenv_key = "OPENAI_API_KEY"\n'
            'wire_api = "responses"\nstream_max_retries = 0\nrequest_max_retries = 0\n'
        )
        env.update(CODEX_HOME=str(codex_home), OPENAI_API_KEY="test-key-not-secret")
    up(repo, env=env)
    ENVS[repo] = env
    return repo


ENVS: dict[Path, dict] = {}  # each test repository's environment, for every cocode call


def cli(repo: Path, *args: str):
    return cocode(repo, *args, timeout=30, env=ENVS[repo])


def submit_wait(repo: Path, agent: str) -> tuple[str, dict]:
    proc = cli(repo, "submit", "--json", "--text", ISSUE, "--agent", agent)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job"]
    return job, wait_final(repo, job)


def wait_final(repo: Path, job: str) -> dict:
    def final():
        proc = cli(repo, "status", job, "--json")
        assert proc.returncode == 0, proc.stderr
        j = json.loads(proc.stdout)
        j = j[0] if isinstance(j, list) else j
        return j if all(r["ended_at"] for r in j["runs"]) else None  # ready is recorded finished a bit later

    return wait_until(final, WAIT_S, what=f"job {job}'s runs to finish", interval=0.2)


def run_output(repo: Path, job: str, agent: str) -> dict[str, str]:
    """What a person and a program see of a finished run: tail, logs, raw, events."""
    out = {}
    for name, args in {"tail": ("tail", job, "-n", "500"), "logs": ("logs", job, agent),
                       "raw": ("logs", job, agent, "--raw"), "events": ("events", "--json")}.items():
        proc = cli(repo, *args)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        out[name] = proc.stdout
    return out


@pytest.fixture
def session(tmp_path: Path):
    """start(...) in a test; cocode is always brought down and the server stopped."""
    started: list = []

    def go(agent: str, server_cls, script=None, respond=None):
        server = server_cls(script, respond).__enter__()
        started.append(server)
        repo = start(tmp_path, agent, server)
        started.append(repo)
        return server, repo

    yield go
    for thing in reversed(started):
        if isinstance(thing, Path):
            down(thing)
            ENVS.pop(thing, None)
        else:
            thing.stop()


CLAUDE_FIX = [
    Turn(text="Let me look.", tools=[("Read", {"file_path": "greet.py"})]),
    Turn(tools=[("Edit", {"file_path": "greet.py", "old_string": "Helo", "new_string": "Hello"})]),
    bash("python3 -m unittest -v"),
    bash(COMMIT),
    Turn(text="Fixed the greeting; the tests pass."),
]
CODEX_FIX = [
    shell("sed -i s/Helo/Hello/ greet.py", text="Editing greet.py."),
    shell("python3 -m unittest -v"),
    shell(COMMIT),
    Turn(text="Fixed the greeting; the tests pass."),
]


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_edit_test_commit_is_ready_and_readable(session, agent):
    server, repo = session(agent, *((AnthropicServer, CLAUDE_FIX) if agent == "claude" else (ResponsesServer, CODEX_FIX)))
    job, j = submit_wait(repo, agent)
    run = j["runs"][0]
    assert (run["state"], run["reason"]) == ("ready", None), run
    shown = GitRepo(repo).git("show", "--stat", run["ready_commit"])
    assert "greet.py" in shown and "cocode ready for check" in shown
    assert "Hello" in GitRepo(repo).git("show", f"{run['ready_commit']}:greet.py")
    # The tests ran inside the agent's session, and passed: their output reached the model.
    outputs = [i.get("output") or i.get("content") for r in server.requests for i in (r.get("messages") or r.get("input") or [])
               if isinstance(i, dict) and i.get("type") in ("function_call_output", "tool_result", None)]
    assert "Ran 1 test" in json.dumps(outputs) and "FAILED" not in json.dumps(outputs), json.dumps(outputs)[-3000:]
    # Facts: the session, tokens, cost (claude reports it; codex's from config prices), tool calls.
    assert run["session_id"]
    u = run["usage"]
    assert u["input_tokens"] > 0, u
    assert u["input_tokens"] > 0 and u["output_tokens"] > 0 and u["cost_usd"] > 0, u
    assert u["tool_calls"] == (4 if agent == "claude" else 3), u
    assert j["usage"]["cost_usd"] == pytest.approx(u["cost_usd"])
    out = run_output(repo, job, agent)
    # Readable: no JSON object lines in tail or logs; tool calls one line each.
    assert not [line for line in out["tail"].splitlines() if JSON_LINE.match(line)], out["tail"]
    assert not [line for line in out["logs"].splitlines() if line.startswith("{")], out["logs"]
    assert "Fixed the greeting; the tests pass." in out["logs"]
    assert ("Bash: " if agent == "claude" else "Shell: ") + "python3 -m unittest -v" in out["logs"]
    if agent == "claude":
        assert "Edit: greet.py" in out["logs"] and "✓ done" in out["logs"]
    # --raw gives the CLI's own JSON lines.
    raw = [json.loads(line) for line in out["raw"].splitlines() if line.strip()]
    assert raw and all(isinstance(obj, dict) for obj in raw)
    status = cli(repo, "status", job).stdout
    assert "tokens" in status and "tool calls" in status, status
    metrics = json.loads(cli(repo, "metrics", "--json").stdout)
    row = next(r for r in metrics["runs"] if r["job"] == job)
    assert row["cost_usd"] == pytest.approx(u["cost_usd"]) and row["tokens"] > 0, row
    assert metrics["agents"][agent]["tool_calls"] == u["tool_calls"]


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_model_gives_up_fails_with_its_reason(session, agent):
    give_up = Turn(text="I cannot fix this: the greeting is defined by a vendored library.")
    server, repo = session(agent, AnthropicServer if agent == "claude" else ResponsesServer, [give_up])
    job, j = submit_wait(repo, agent)
    run = j["runs"][0]
    assert (run["state"], run["reason"]) == ("failed", "no_ready_marker"), run
    assert "defined by a vendored library" in run["detail"], run
    assert "vendored library" in cli(repo, "status", job).stdout


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_model_server_dies_mid_stream(session, agent):
    dying = [Turn(text="Let me", die=True) for _ in range(8)]
    server, repo = session(agent, AnthropicServer if agent == "claude" else ResponsesServer, dying)
    job, j = submit_wait(repo, agent)
    run = j["runs"][0]
    assert run["state"] == "failed", run
    assert re.search(r"stream|disconnect|connection|closed|error", run["detail"], re.I), run
    assert server.requests, "the agent never reached the model server"


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_secret_in_tool_result_is_redacted_everywhere(session, agent):
    read = Turn(tools=[("Read", {"file_path": "config.env"})]) if agent == "claude" else shell("cat config.env")
    script = [read, Turn(text="I found the token in config.env and stop here.")]
    server, repo = session(agent, AnthropicServer if agent == "claude" else ResponsesServer, script)
    job, j = submit_wait(repo, agent)
    # It did reach the model: the redaction is cocode's, on what it shows and records.
    assert TOKEN in json.dumps(server.requests)
    out = run_output(repo, job, agent)
    out["status"] = json.dumps(j)
    for name, text in out.items():
        assert TOKEN not in text, f"the token is in {name}"
    assert "[REDACTED:github-token]" in out["logs"] and "[REDACTED:github-token]" in out["raw"]


def test_best_of_three_claude_runs_in_three_worktrees(session):
    """`--agent claude:3`: claude-1..claude-3, each its own session, worktree and branch."""
    def respond(request: dict) -> Turn:
        answered = "tool_result" in json.dumps(request.get("messages", [])[-1:])
        return Turn(text="Committed.") if answered else bash(
            "git commit -q --allow-empty -m 'try' -m 'cocode ready for check'")

    server, repo = session("claude", AnthropicServer, respond=respond)
    proc = cli(repo, "submit", "--json", "--text", ISSUE, "--agent", "claude:3")
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job"]
    j = wait_final(repo, job)
    runs = {r["agent"]: r for r in j["runs"]}
    assert list(runs) == ["claude-1", "claude-2", "claude-3"]
    assert j["groups"] == {"claude": ["claude-1", "claude-2", "claude-3"]}
    assert all(r["state"] == "ready" for r in runs.values()), runs
    assert len({r["worktree"] for r in runs.values()}) == 3
    assert len({r["branch"] for r in runs.values()}) == 3 and len({r["session_id"] for r in runs.values()}) == 3
    for r in runs.values():
        assert "cocode ready for check" in GitRepo(repo).git("log", "-1", "--format=%B", r["branch"])
    assert "best of 3: 3 ready" in cli(repo, "status", job).stdout
    bad = cli(repo, "submit", "--text", ISSUE, "--agent", "claude:0")
    assert bad.returncode == 2 and "NAME:N with N from 1 to 10" in bad.stderr


def test_budget_stops_the_run_and_keeps_its_commits(session):
    """5000 $/Mtok: the first request (100 tokens) costs $0.50, the second passes $1."""
    script = [bash("git commit -q --allow-empty -m 'work in progress'"), bash("sleep 60"), Turn(text="done")]
    server, repo = session("claude", AnthropicServer, script)
    proc = cli(repo, "submit", "--json", "--text", ISSUE, "--agent", "claude", "--max-cost", "1")
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job"]
    t0 = time.monotonic()
    run = wait_final(repo, job)["runs"][0]
    assert (run["state"], run["reason"]) == ("failed", "budget_exceeded"), run
    assert time.monotonic() - t0 < 50  # stopped, not waiting out `sleep 60`
    assert run["commits"] == 1, run
    # The crossing was recorded before the stop (claude may then report its own cost).
    usage = [json.loads(line) for line in cli(repo, "events", "--json").stdout.splitlines()]
    assert any(e["type"] == "run_usage" and e["job"] == job and (e["cost_usd"] or 0) >= 1.0 for e in usage)
    assert "work in progress" in GitRepo(repo).git("log", "-1", "--format=%s", run["branch"])


@pytest.mark.parametrize("agent", ["claude", "codex"])
def test_say_continues_a_finished_run_in_its_session(session, agent):
    """`cocode say`: the agent's own session resumed (its earlier turns reach the model
    again), a new commit on the same branch, the run ready again as attempt 2."""
    step = bash if agent == "claude" else shell
    script = [step("sed -i s/Helo/Hello/ greet.py && " + COMMIT), Turn(text="Fixed."),
              step("echo '# greets' >> greet.py && git commit -qam 'comment' -m 'cocode ready for check'"),
              Turn(text="Added the comment.")]
    server, repo = session(agent, AnthropicServer if agent == "claude" else ResponsesServer, script)
    job, j = submit_wait(repo, agent)
    first = j["runs"][0]
    assert first["state"] == "ready" and first["attempt"] == 1, first
    said = cli(repo, "say", job, agent, "Please also add a comment to greet.py.")
    assert said.returncode == 0 and "attempt 2" in said.stdout, said.stderr
    run = wait_final(repo, job)["runs"][0]
    assert (run["state"], run["attempt"]) == ("ready", 2), run
    assert run["ready_commit"] != first["ready_commit"]
    log = GitRepo(repo).git("log", "--format=%s", run["branch"]).splitlines()
    assert log[:2] == ["comment", "fix greeting"], log  # the same branch, on top of the first
    follow = json.dumps(server.requests[-2])
    assert "Please also add a comment" in follow
    assert "sed -i s/Helo/Hello/ greet.py" in follow  # the earlier session came back with it
    assert run["session_id"] == first["session_id"] or agent == "claude"
    again = cli(repo, "say", job, "nobody", "hi")
    assert again.returncode != 0 and "has no agent 'nobody'" in again.stderr


def test_model_server_that_hangs_ends_in_the_runs_timeout(session):
    server, repo = session("claude", AnthropicServer, [Turn(hang=True)])
    proc = cli(repo, "submit", "--json", "--text", ISSUE, "--agent", "claude", "--timeout", "15")
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job"]
    run = wait_final(repo, job)["runs"][0]
    assert (run["state"], run["reason"]) == ("failed", "timeout_exceeded"), run
    assert server.requests  # it was waiting on the model, not failing to start


def test_run_requeued_after_a_worker_crash_resumes_its_session(session):
    """kill -9 of the worker mid-session: the run is requeued and claude resumes its own
    session (the earlier turns reach the model again) instead of starting from nothing."""
    def respond(request: dict) -> Turn:
        last = json.dumps(request.get("messages", [])[-1:])
        if "You were interrupted" in json.dumps(request.get("messages", [])):
            return Turn(text="Done.") if "tool_result" in last else bash(
                "git commit -q --allow-empty -m 'finished' -m 'cocode ready for check'")
        return Turn(hang=True) if "tool_result" in last else bash("git commit -q --allow-empty -m 'wip'")

    server, repo = session("claude", AnthropicServer, respond=respond)
    proc = cli(repo, "submit", "--json", "--text", ISSUE, "--agent", "claude")
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job"]
    assert server.wait_requests(2, timeout=60), "the session did not reach its second turn"
    ps = json.loads(cli(repo, "ps", "--json").stdout)
    (worker,) = [r["pid"] for r in ps if r["name"] == "worker"]
    os.kill(worker, signal.SIGKILL)
    run = wait_final(repo, job)["runs"][0]
    assert (run["state"], run["attempt"]) == ("ready", 2), run
    assert GitRepo(repo).git("log", "--format=%s", run["branch"]).splitlines()[:2] == ["finished", "wip"]
    resumed = next(r for r in server.requests if "You were interrupted" in json.dumps(r))
    assert "git commit -q --allow-empty -m 'wip'" in json.dumps(resumed)  # the earlier session, resumed
