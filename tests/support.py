"""What tests share: real git repositories with the user's git config shut out, the
real `cocode` CLI as a subprocess, `up`/`down` of a real running cocode, finding and
reaping the processes a test left, one `wait_until` (it raises, saying what it waited
for and what it last saw), and the job helpers (submit, status, wait for a job or a
run, read events) the system tests drive cocode with.

Fixtures live in conftest.py and use these; test modules import from here, never
from conftest or from each other.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from cocode import client, render
from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State
from cocode.paths import Paths

ROOT = Path(__file__).resolve().parent.parent  # the project
AGENTS_DIR = ROOT / "tests" / "agents"  # small real agent scripts
# The real agent CLIs, pinned: `.ci/run` installs them here (npm install --prefix .ci/node).
CLI_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin"
CLI_INSTALL = "npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0"


def agent_cli(name: str) -> str:
    """The directory holding the real `name` CLI (.ci/node first, then PATH); skips
    the test, saying how to install it, when there is none."""
    import pytest
    import shutil

    found = shutil.which(name, path=f"{CLI_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.skip(f"the real `{name}` CLI is not installed; `{CLI_INSTALL}` (bash .ci/run does it)")
    return str(Path(found).parent)

# pytest-timeout's 60 s (pyproject) bounds every test; one that takes over ~10 s alone
# gets 180 s: room for a machine loaded three-fold, still bounded.
heavy = pytest.mark.timeout(180)

# Agents commit with a fixed identity and without the user's git config (hooks, signing).
AGENT_GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}

IDENTITY = {
    "GIT_AUTHOR_NAME": "cocode-test", "GIT_AUTHOR_EMAIL": "test@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-test", "GIT_COMMITTER_EMAIL": "test@cocode.invalid",
}


def isolated_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", **IDENTITY, **extra)
    return env


class GitRepo:
    """A git repository in a directory, with one-line helpers to change and commit."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def init(cls, path: Path, files: dict[str, str] | None = None) -> "GitRepo":
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        repo.commit("initial", files or {"README.md": "hello\n"})
        return repo

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.path, env=isolated_env(), capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, files: dict[str, str | bytes], cwd: Path | None = None) -> None:
        for name, content in files.items():
            p = (cwd or self.path) / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)

    def commit(self, message: str, files: dict[str, str | bytes] | None = None, cwd: Path | None = None) -> str:
        """Write `files`, commit everything (empty commits allowed), return the sha."""
        if files:
            self.write(files, cwd)
        self.git("add", "-A", cwd=cwd)
        self.git("commit", "-q", "--allow-empty", "-m", message, cwd=cwd)
        return self.head(cwd)

    def head(self, cwd: Path | None = None) -> str:
        return self.git("rev-parse", "HEAD", cwd=cwd)


def git(repo: Path, *args: str) -> str:
    return GitRepo(repo).git(*args)


def make_repo(path: Path, files: int = 3) -> Path:
    """A repository on `main` with one commit of `files` small files."""
    GitRepo.init(path, {f"file{i}.txt": f"line {i}\n" for i in range(files)})
    return path


def cocode(repo: Path, *args: str, timeout: float = 60, check: bool = False, env=None, input=None):
    """Run the real `cocode` CLI as a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "cocode", "-C", str(repo), *args],
        capture_output=True, text=True, timeout=timeout, env=env, input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"cocode {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


COCODE_BIN = Path(sys.executable).parent / "cocode"  # completion keys on the program's name


def complete(repo: Path | None, words: str, shell: str = "bash", cwd: Path | None = None) -> str:
    """What the shell's TAB gets for the line `words` (the cursor at its end)."""
    line = f"cocode -C {repo} {words}" if repo else f"cocode {words}"
    env = {**os.environ, "_COCODE_COMPLETE": f"{shell}_complete", "COMP_WORDS": line,
           "COMP_CWORD": str(len(line.split()) - (0 if line.endswith(" ") else 1))}
    if shell == "fish":
        env["COMP_CWORD"] = "" if line.endswith(" ") else line.split()[-1]
    proc = subprocess.run([str(COCODE_BIN)], env=env, capture_output=True, text=True, timeout=30,
                          cwd=cwd or repo)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout


def bash_values(out: str) -> list[str]:
    """The values in bash completion output."""
    return [line.split(",", 1)[1] for line in out.splitlines() if line.startswith("plain,")]


def cocode_processes(repo: Path) -> list[psutil.Process]:
    """Live processes started for this repository's cocode (services, supervisor)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = p.info["cmdline"] or []
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if "cocode" in cmd and str(repo) in cmd:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def reap(procs: list[psutil.Process], what: str) -> None:
    """Kill processes a test left behind, then fail the test for having left them."""
    shown = [_describe(p) for p in procs]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    assert not procs, f"{what}: {shown}"


def ipc_files(paths: Paths) -> list[str]:
    """The socket files of a repository's cocode (none once it is down)."""
    return sorted(p.name for p in paths.socket_dir.glob("*.ipc")) if paths.socket_dir.exists() else []


def kill_all(repo: Path) -> None:
    for p in cocode_processes(repo):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def up(repo: Path, *args: str, env=None) -> Paths:
    """`cocode up --detach` (extra args passed on); fails the test if it does not start."""
    proc = cocode(repo, "up", "--detach", *args, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Paths(repo)


def down(repo: Path) -> None:
    """`cocode down`, then: no process of this repository's cocode may be left."""
    try:
        cocode(repo, "down", timeout=60)
        leftover = cocode_processes(repo)
    finally:
        kill_all(repo)
    assert not leftover, f"processes left after down: {[p.info['cmdline'] for p in leftover]}"


def wait_until(cond, timeout: float, *, what: str, interval: float = 0.1):
    """cond()'s first truthy value within `timeout` seconds; past it, AssertionError
    naming `what` was awaited and the last value cond() returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last saw {_short(value)}")
        time.sleep(interval)


def wait_none(find, timeout: float, *, what: str, interval: float = 0.1) -> None:
    """Wait until find() returns nothing (no process left, no file...); past `timeout`,
    AssertionError naming `what` and what find() still returned."""
    left = []

    def gone() -> bool:
        nonlocal left
        left = find()
        return not left

    try:
        wait_until(gone, timeout, what=what, interval=interval)
    except AssertionError as err:
        shown = [_describe(p) for p in left] if isinstance(left, list) else left
        raise AssertionError(f"{err}; still there: {_short(shown)}") from None


def _describe(item):
    if isinstance(item, psutil.Process):
        try:
            return item.pid, item.cmdline()
        except psutil.Error:
            return item.pid
    return item


def _short(value, limit: int = 800) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def alive(pid: int) -> bool:
    try:
        return live(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def live(p: psutil.Process) -> bool:
    """The very process `p` (not a later one with its pid) still runs and is not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def agent_module(name: str) -> ModuleType:
    """A Python agent script in tests/agents/, loaded as a module (for its expected output)."""
    spec = importlib.util.spec_from_file_location(name, AGENTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def state_with(jobs: list[tuple[str, int]], agents=("a",)) -> State:
    """A folded state holding these (job, priority) submissions, queued, for pure
    scheduler tests."""
    s = State()
    for seq, (job, priority) in enumerate(jobs, 1):
        st.apply(s, ev.JobSubmitted(seq=seq, job=job, title="t", body="b", agents=list(agents),
                                    base_sha="x", priority=priority))
    return s


# ------------------------------------------------------------------ driving a running cocode

ISSUE = "Fix the greeting\n\nThe greeting says Helo; it should say Hello."
SECRET = "x-secret-value-7731"  # in the environment `cocode up` inherits; never passed on
PASSED = "passed-value-7731"  # listed in env_passthrough: passed on


def ps(repo: Path) -> dict[str, dict]:
    """`cocode ps --json`, by service name."""
    proc = cocode(repo, "ps", "--json", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


def service_pid(repo: Path, name: str) -> int:
    """The service's pid as `cocode ps` shows it, 0 while it is not ready."""
    row = ps(repo)[name]
    return row["pid"] if row["state"] == "ready" else 0


def submit(repo: Path, *args: str, text: str | None = ISSUE) -> str:
    """`cocode submit --json` (args as on the command line, --agent NAME...); the job id."""
    source = ("--text", text) if text is not None and not {"--issue", "--issue-file"} & set(args) else ()
    proc = cocode(repo, "submit", "--json", *source, *args, timeout=30)
    assert proc.returncode == 0, f"submit failed ({proc.returncode}): {proc.stderr}"
    out = json.loads(proc.stdout)
    assert [r["agent"] for r in out["runs"]] == [args[i + 1] for i, a in enumerate(args) if a == "--agent"]
    return out["job"]


def agents(*names: str) -> list[str]:
    """--agent NAME for each name, for submit()."""
    return [a for name in names for a in ("--agent", name)]


def status(repo: Path, job: str | None = None):
    """`cocode status [JOB] --json`: one job, or the list of all."""
    proc = cocode(repo, "status", *([job] if job else []), "--json", timeout=30)
    assert proc.returncode == 0, f"status failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


def runs_of(job_json: dict) -> dict[str, dict]:
    return {r["agent"]: r for r in job_json["runs"]}


def job_now(repo: Path, job: str) -> dict | None:
    """The job as `status --json` shows it, read in-process through the running store:
    cheap enough to poll (the CLI then confirms what the wait found)."""
    j = client.current_state(Paths(repo)).jobs.get(job)
    return render.job_json(j) if j is not None else None


def wait_job(repo: Path, job: str, timeout: float = 20, until=lambda j: j["state"] == "done") -> dict:
    """Wait until the job satisfies `until` (default: done); `cocode status` must agree."""
    last = None

    def check():
        nonlocal last
        last = job_now(repo, job)
        return last is not None and until(last)

    try:
        wait_until(check, timeout, what=f"job {job}", interval=0.05)
    except AssertionError as err:
        raise AssertionError(f"{err}; last status: {json.dumps(last)}") from None
    shown = status(repo, job)
    assert until(shown), f"cocode status disagrees: {json.dumps(shown)}"
    return shown


def wait_run(repo: Path, job: str, agent: str, state: str, timeout: float = 20) -> dict:
    return runs_of(wait_job(repo, job, timeout, lambda j: runs_of(j)[agent]["state"] == state))[agent]


def two_scheduler_decisions(repo: Path, agent: str, reason: str) -> None:
    """Make the scheduler decide twice more, so a test can assert a queued run was NOT
    dispatched without pausing: a probe job that must wait for `reason` gets its note
    (one decision over the whole queue), then is cancelled (the next decision, whose
    outcome the scheduler writes after anything it wrote in the one before). Once the
    probe shows cancelled, any dispatch those decisions made is in the log."""
    probe = submit(repo, "--agent", agent, text="probe: the scheduler decides again")
    wait_job(repo, probe, 15, lambda j: runs_of(j)[agent]["reason"] == reason)
    proc = cocode(repo, "cancel", probe, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert runs_of(wait_job(repo, probe, 15))[agent]["state"] == "cancelled"


def events(repo: Path, *types: str, archived: bool = False) -> list[dict]:
    """`cocode events --json [--archived] [--type T]...`, decoded."""
    args = [a for t in types for a in ("--type", t)] + (["--archived"] if archived else [])
    proc = cocode(repo, "events", "--json", *args, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def rev_parse(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", ref)


def subjects(repo: Path, base: str, ref: str) -> list[str]:
    return git(repo, "log", "--format=%s", f"{base}..{ref}").splitlines()


def one_line_error(proc) -> str:
    """A user error: non-zero exit, exactly one line on stderr, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, f"expected a failure, got exit 0: {proc.stdout}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]


# ------------------------------------------------------------------ agents' processes


def write_config(repo: Path, config: dict) -> None:
    """.cocode/config.yaml (JSON is YAML), written before `cocode up` reads it."""
    (repo / ".cocode").mkdir(mode=0o700, exist_ok=True)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps(config, indent=1))


def agent_processes(where: Path) -> list[psutil.Process]:
    """Live processes working under `where` (by working directory or an argument):
    agents and their children; cocode's own processes are left to down()."""
    where_s, found = str(where), []
    for p in psutil.process_iter(["cmdline", "status", "cwd"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            cmd = p.info["cmdline"] or []
            if "cocode" in cmd:
                continue
            if (p.info["cwd"] or "").startswith(where_s) or any(where_s in a for a in cmd):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def procs_matching(pred) -> list[psutil.Process]:
    """Live (not zombie) processes whose argv satisfies pred(argv)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and pred(p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def sleeps_of(job: str, *prefixes: str) -> list[psutil.Process]:
    """The `sleep P.N` processes of a job's agent (N = the job id in decimal)."""
    n = int(job, 16)
    wanted = [["sleep", f"{prefix}.{n}"] for prefix in prefixes]
    return procs_matching(lambda argv: argv in wanted)
