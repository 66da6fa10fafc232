"""`cocode top` driven by Textual's pilot against a real running cocode: real
services, real agents (the demo presets and tests/agents/), real sockets.

Each scenario runs in asyncio.run under a deadline; the app's feed thread and
every cocode started here are stopped by the fixtures.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from cocode import client
from cocode.configload import load_config
from cocode.paths import Paths
from cocode.top import model as vm
from cocode.top.app import TopApp
from cocode.top.paneview import PaneView
from cocode.top.screens import ConfirmScreen, DiffScreen, SayScreen
from support import AGENTS_DIR, cocode, down, git, make_repo, up

LOGS_AGENT = str(AGENTS_DIR / "logs_agent.py")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "cocode-agent", "GIT_AUTHOR_EMAIL": "agent@cocode.invalid",
    "GIT_COMMITTER_NAME": "cocode-agent", "GIT_COMMITTER_EMAIL": "agent@cocode.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}
AGENTS = {
    "lines": {"command": ["{python}", LOGS_AGENT, "lines", "400", "8"]},
    "weird": {"command": ["{python}", LOGS_AGENT, "weird"]},
    "few": {"command": ["{python}", LOGS_AGENT, "lines", "60", "1"]},
    "sleeper": {"command": ["bash", str(AGENTS_DIR / "sleeper.sh")], "env": GIT_ENV},
    # Ready with a 30-line diff: bigger than the demo agent's, so `compare` recommends the demo run.
    "wordy": {"command": ["bash", "-c", 'cd "$COCODE_REPO_PATH" && seq 1 30 > wordy.txt && git add wordy.txt '
                          '&& git commit -q -m wordy -m "$COCODE_READY_MARKER"'], "env": GIT_ENV},
}
NOTICE = re.compile(r"^-- ")


def top_repo(path: Path) -> Path:
    repo = make_repo(path)
    (repo / ".cocode").mkdir(mode=0o700)
    (repo / ".cocode" / "config.yaml").write_text(json.dumps({"agents": AGENTS}, indent=1))
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The test agents' config, written before conftest's `running` starts cocode here."""
    return top_repo(tmp_path / "repo")


def submit(repo: Path, *agents: str, text: str = "Top test") -> str:
    args = [a for name in agents for a in ("--agent", name)]
    proc = cocode(repo, "submit", "--text", text, *args, "--json", check=True)
    return json.loads(proc.stdout)["job"]


def make_app(paths: Paths) -> TopApp:
    config = load_config(paths.config)
    return TopApp(paths, config, config.limits.tui_log_lines)


async def until(pilot, cond, timeout: float = 30.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = cond()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def drive(scenario, timeout: float = 90.0, size=(140, 40)):
    """Run `scenario(app, pilot)` with the app headless, bounded in time."""
    async def main(app):
        async with app.run_test(size=size) as pilot:
            await asyncio.wait_for(scenario(app, pilot), timeout)
    return main


def pane_text(app: TopApp, agent: str) -> list[str]:
    return list(app.widgets[agent].lines) if agent in app.widgets else []


def stored_lines(repo: Path, job: str, agent: str) -> list[str]:
    proc = cocode(repo, "logs", job, agent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def status_text(app: TopApp) -> str:
    return str(app.query_one("#status").render())


# ------------------------------------------------------------------------------------------ tests


def test_selecting_a_job_shows_its_runs_and_its_agents_output(running, repo):
    older = submit(repo, "demo", "demo-fail", text="Older job")
    newer = submit(repo, "weird", text="Newer job")
    paths = running
    app = make_app(paths)

    async def scenario(app, pilot):
        await until(pilot, lambda: [r.job for r in app.job_rows] == [newer, older], what="both jobs, newest first")
        await until(pilot, lambda: app.job == newer, what="the newest job selected")
        await until(pilot, lambda: any("after the long line" in l for l in pane_text(app, "weird")),
                    what="the weird agent's output")
        weird = pane_text(app, "weird")
        assert any("\\x1b[31mred" in l for l in weird), weird  # escapes shown, not obeyed
        assert any("\ufffd" in l for l in weird)
        assert any(l.startswith("XXXX") and l.endswith("bytes)") for l in weird), "the 1 MB line is cut"
        await pilot.press("down")
        await until(pilot, lambda: app.job == older, what="the older job selected")
        await until(pilot, lambda: [r.agent for r in app.run_rows] == ["demo", "demo-fail"], what="its runs")
        await until(pilot, lambda: {r.state for r in app.run_rows} == {"ready", "failed"}, what="final states")
        failed = app.run_rows[1]
        assert failed.reason == "exit_1" and "cannot reproduce" in failed.detail
        await until(pilot, lambda: pane_text(app, "demo") == stored_lines(repo, older, "demo"),
                    what="the demo pane holding exactly its stored output")
        assert list(app.widgets) == ["demo", "demo-fail"]
        assert "up" in status_text(app)

    asyncio.run(drive(scenario)(app))


def test_a_finished_jobs_runs_show_their_diffstat_and_the_recommended_run(running, repo):
    """The diff sizes `cocode status` shows, measured off the UI thread, and a ★ on the
    run `cocode compare` recommends (both ready, no checks: the smaller diff)."""
    job = submit(repo, "demo", "wordy", text="Two ready runs")
    paths = running
    app = make_app(paths)

    async def scenario(app, pilot):
        await until(pilot, lambda: app.model.state.jobs.get(job) and app.model.state.jobs[job].done,
                    what="the job done")
        await until(pilot, lambda: [r.agent for r in app.run_rows] == ["demo", "wordy"], what="its run rows")
        await until(pilot, lambda: all(r.diff.startswith("+") for r in app.run_rows), what="both diffs measured")
        runs = {r["agent"]: r for r in json.loads(cocode(repo, "status", job, "--json", check=True).stdout)["runs"]}
        assert [r.diff for r in app.run_rows] == [f"+{runs[a]['added']}/-{runs[a]['removed']}"
                                                  for a in ("demo", "wordy")]
        assert app.run_rows[1].diff == "+30/-0"
        compared = json.loads(cocode(repo, "compare", job, "--json", check=True).stdout)
        assert compared["recommended"] == "demo" and "changed lines against 30 for wordy" in compared["why"]
        assert [r.best for r in app.run_rows] == [True, False]
        assert [vm.run_cells(r)[0] for r in app.run_rows] == ["demo ★", "wordy"]

    asyncio.run(drive(scenario)(app))


def test_a_hidden_tab_holds_only_a_count_and_fetches_its_backlog_when_shown(running, repo):
    """Five agents: tabs. The last one's output arrives while its tab is hidden: the
    pane holds none of it (a count only); shown, it is the stored log line for line."""
    job = submit(repo, "demo", "demo-fail", "weird", "lines", "few", text="Five tabs")
    app = make_app(running)

    async def scenario(app, pilot):
        await until(pilot, lambda: app.job == job and "few" in app.widgets, what="the job's tabs")
        await until(pilot, lambda: app.model.state.jobs[job].runs["few"].final, timeout=60, what="few's run ending")
        await until(pilot, lambda: app.panes["few"].unseen >= 60, what="few's lines counted while hidden")
        assert pane_text(app, "few") == [] and "few" in app.hidden
        want = stored_lines(repo, job, "few")
        assert len(want) == 60
        app.query_one(PaneView).show_tab(4)  # what a click on its tab or → does
        await until(pilot, lambda: pane_text(app, "few") == want, what="few's backlog, fetched when shown")
        assert "few" not in app.hidden and "demo" in app.hidden and pane_text(app, "demo") == []

    asyncio.run(drive(scenario, timeout=120)(app))


def test_output_has_no_gap_or_duplicate_across_down_and_up(running, repo):
    job = submit(repo, "lines")
    app = make_app(running)

    async def scenario(app, pilot):
        await until(pilot, lambda: len(pane_text(app, "lines")) >= 40, what="some of the agent's lines")
        stopped = await asyncio.to_thread(cocode, repo, "down", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        await until(pilot, lambda: "DOWN" in status_text(app) or "not started" in status_text(app),
                    what="the view saying cocode is down")
        held = pane_text(app, "lines")
        assert held == stored_lines(repo, job, "lines")[: len(held)]
        restarted = await asyncio.to_thread(cocode, repo, "up", "--detach", timeout=60)
        assert restarted.returncode == 0, restarted.stderr
        await until(pilot, lambda: status_text(app).startswith("up "), what="the view reconnected")
        await until(pilot, lambda: app.model.state.jobs[job].done, timeout=60, what="the requeued run ending")
        # `cocode logs` heads each attempt with its own line; the pane marks it with a notice.
        want = [l for l in stored_lines(repo, job, "lines") if not l.startswith("--- attempt ")]
        await until(pilot, lambda: [l for l in pane_text(app, "lines") if not NOTICE.match(l)] == want,
                    what="the pane equal to the stored log, line for line")
        shown = pane_text(app, "lines")
        assert any(l == "-- attempt 2" for l in shown), "the second attempt is marked"
        assert len(want) > 400, "both attempts' output is there"

    asyncio.run(drive(scenario, timeout=120)(app))


def test_cancel_and_diff_go_through_the_same_calls_as_the_cli(running, repo):
    ready = submit(repo, "demo", text="Ready one")
    paths = running
    app = make_app(paths)

    async def scenario(app, pilot):
        await until(pilot, lambda: app.model.state.jobs.get(ready) and app.model.state.jobs[ready].done,
                    what="the demo job done")
        await until(pilot, lambda: app.run_rows and app.run_rows[0].state == "ready", what="its run row")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the diff view")
        want = client.run_diff(paths, ready, "demo")[1]
        assert app.screen.text == want and "COCODE_DEMO.md" in want
        await pilot.press("pagedown", "escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen), what="the diff closed")

        slow = await asyncio.to_thread(submit, repo, "sleeper", text="Slow one")
        await until(pilot, lambda: app.job == slow or [r.job for r in app.job_rows][:1] == [slow],
                    what="the new job listed")
        focused = app.focused.id if app.focused else None
        await pilot.press("up")
        await until(pilot, lambda: app.job == slow, what=f"the new job selected (focus {focused}, cursor {app.query_one('#jobs').cursor_row})")
        # Running is not enough: its partial commit reaches the branch a moment later.
        await until(pilot, lambda: client.current_state(paths).jobs[slow].runs["sleeper"].commits >= 1,
                    what="the sleeper's partial commit")
        await until(pilot, lambda: app.run_rows and app.run_rows[0].state == "running", what="the sleeper running")
        await pilot.press("d")  # a diff of a run with only a partial commit works too
        await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the sleeper's diff")
        assert "partial.txt" in app.screen.text
        await pilot.press("escape")
        await pilot.press("c")
        await until(pilot, lambda: app.run_rows[0].state == "cancelled", timeout=30, what="the run cancelled")
        assert client.current_state(paths).jobs[slow].runs["sleeper"].state == "cancelled"

        pair = await asyncio.to_thread(submit, repo, "sleeper:2", text="Two slow ones")
        await until(pilot, lambda: [r.job for r in app.job_rows][:1] == [pair], what="the pair listed")
        await pilot.press("up")
        await until(pilot, lambda: app.job == pair, what="the pair selected")
        await pilot.press("C")  # the whole job, as `cocode cancel JOB`
        await until(pilot, lambda: [r.state for r in app.run_rows] == ["cancelled", "cancelled"], timeout=30,
                    what="both runs cancelled")
        assert {r.state for r in client.current_state(paths).jobs[pair].runs.values()} == {"cancelled"}

    asyncio.run(drive(scenario)(app))


def test_say_shows_what_it_will_do_and_goes_through_the_clis_calls(running, repo):
    """m: a message, then a confirmation naming the command, the attempt, worktree and
    branch; n does nothing (the later y makes attempt 2, not 3), y queues the follow-up."""
    job = submit(repo, "demo", text="Say to me")
    paths = running
    app = make_app(paths)

    async def ask(app, pilot, message):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, SayScreen), what="the message box")
        await pilot.press(*message, "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        return app.screen.text

    async def scenario(app, pilot):
        await until(pilot, lambda: app.model.state.jobs.get(job) and app.model.state.jobs[job].done,
                    what="the demo job done")
        await until(pilot, lambda: app.run_rows and app.run_rows[0].state == "ready", what="its run row")
        text = await ask(app, pilot, "not this")
        assert text.startswith(f"cocode say {job} demo 'not this'") and "attempt 2" in text
        assert f"cocode/{job}/demo" in text and app.run_rows[0].worktree in text
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the confirmation closed")
        await ask(app, pilot, "add a line")
        await pilot.press("y")
        await until(pilot, lambda: app.model.state.jobs[job].runs["demo"].follow_up == "add a line",
                    what="the follow-up event")
        run = client.current_state(paths).jobs[job].runs["demo"]
        assert (run.follow_up_attempt, run.follow_ups) == (2, 1)  # the refused one was never sent

    asyncio.run(drive(scenario)(app))


def test_pick_shows_what_cocode_pick_would_do_then_lands_the_run(running, repo):
    """p: a confirmation with `cocode pick --dry-run`'s own words (the same choice and
    checks as the CLI); n changes nothing, y merges the run's commit into the main
    checkout, records `picked` and releases the other run's worktree, like the CLI."""
    job = submit(repo, "demo", "demo-fail", text="Pick me")
    paths = running
    app = make_app(paths)
    head_before = git_head(repo)

    async def ask(app, pilot):
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the pick confirmation")
        return app.screen.text

    async def scenario(app, pilot):
        await until(pilot, lambda: app.model.state.jobs.get(job) and app.model.state.jobs[job].done,
                    what="the demo job done")
        await until(pilot, lambda: [r.agent for r in app.run_rows] == ["demo", "demo-fail"], what="its run rows")
        app.query_one("#runs").focus()
        text = await ask(app, pilot)
        dry = cocode(repo, "pick", job, "demo", "--dry-run", check=True).stdout.strip()
        assert text.startswith(f"cocode pick {job} demo\n\n{dry}\n") and "would merge" in dry
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the confirmation closed")
        assert git_head(repo) == head_before and not app.model.state.jobs[job].picked
        await ask(app, pilot)
        await pilot.press("y")
        await until(pilot, lambda: app.model.state.jobs[job].picked == "demo", what="the picked event")
        await until(pilot, lambda: app.model.state.jobs[job].runs["demo-fail"].worktree_removed,
                    what="the other run's worktree released")
        run = client.current_state(paths).jobs[job].runs["demo"]
        assert git_head(repo) != head_before
        assert cocode(repo, "pick", job, "--dry-run").returncode != 0  # picked: the CLI refuses again too
        assert run.ready_commit in subprocess_out(repo, "git", "log", "--format=%H", "-3")

    asyncio.run(drive(scenario)(app))


def git_head(repo: Path) -> str:
    return subprocess_out(repo, "git", "rev-parse", "HEAD").strip()


def subprocess_out(repo: Path, *cmd: str) -> str:
    import subprocess

    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True, timeout=30).stdout


def test_not_started_then_up_connects_by_itself(repo):
    app = make_app(Paths(repo))

    async def scenario(app, pilot):
        await until(pilot, lambda: "not started" in status_text(app), what="the not-started notice")
        assert "cocode up" in status_text(app)
        await asyncio.to_thread(up, repo)
        try:
            await until(pilot, lambda: status_text(app).startswith("up "), what="the view connecting")
            job = await asyncio.to_thread(submit, repo, "demo")
            await until(pilot, lambda: app.job == job, what="the job appearing and selected")
        finally:
            await asyncio.to_thread(down, repo)

    asyncio.run(drive(scenario, size=(40, 10))(app))


def test_submit_from_the_view_queues_a_job_and_shows_the_clis_warnings(running, repo):
    # A Git LFS file: `cocode submit` warns that it is not counted; the view must say so too.
    (repo / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (repo / "big.bin").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 123456\n")
    git(repo, "add", ".gitattributes", "big.bin")
    git(repo, "commit", "-q", "-m", "an LFS file")
    app = make_app(running)

    async def scenario(app, pilot):
        await until(pilot, lambda: status_text(app).startswith("up "), what="connected")
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#issue").text = "Typed in top\n\nbody"
        agents = app.screen.query_one("#agents")
        agents.deselect_all()
        agents.select("demo")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.job_rows and app.job_rows[0].title == "Typed in top", what="the job listed")
        job = app.job_rows[0].job
        assert client.current_state(running).jobs[job].agents == ["demo"]
        # Textual keeps what notify() showed in app._notifications (no public reader).
        await until(pilot, lambda: any(job in n.message and "Git LFS" in n.message and n.severity == "warning"
                                       for n in app._notifications), what="the queued note with the warning")

    asyncio.run(drive(scenario)(app))


def test_top_outside_a_terminal_or_repository_says_what_to_do(repo, tmp_path):
    proc = cocode(repo, "top")  # stdout is a pipe here
    assert proc.returncode == 2 and "needs a terminal" in proc.stderr and "Traceback" not in proc.stderr
    bad = cocode(repo, "top", "--web", "--port", "0")
    assert bad.returncode == 2 and "--port 0" in bad.stderr
    nowhere = subprocess_in(tmp_path)
    assert nowhere.returncode != 0 and "Traceback" not in nowhere.stderr


def subprocess_in(directory: Path):
    import subprocess

    return subprocess.run([sys.executable, "-m", "cocode", "top"], cwd=directory, capture_output=True,
                          text=True, timeout=30)


def test_screenshot_draws_the_view_off_screen(repo, tmp_path):
    out = tmp_path / "top.svg"
    proc = cocode(repo, "top", "--screenshot", str(out), "--wait", "1", "--size", "100x30", timeout=60)
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<svg")
    assert "not&#160;started" in svg, "the view says cocode is not started"
    bad = cocode(repo, "top", "--screenshot", str(out), "--size", "wide")
    assert bad.returncode == 2 and "--size 'wide'" in bad.stderr and "Traceback" not in bad.stderr
