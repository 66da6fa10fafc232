"""jobs/followup.py: what `cocode say` records, and which command and prompt each
attempt gets (a follow-up, a resumed session after a crash, or the issue)."""

from __future__ import annotations

import pytest

from cocode.core import events as ev
from cocode.core import state as st
from cocode.core.views import State, iter_queued
from cocode.errors import CocodeError, ConfigError
from cocode.jobs import agents, followup


def folded(*events) -> State:
    s = State()
    s = st.replay([ev.JobSubmitted(job="j", title="t", body="b", agents=["claude", "mine"], base_sha="x", seq=1),
                   *events])
    return s


def finished(agent="claude"):
    return ev.RunFinished(job="j", agent=agent, state="ready", ready_commit="c1", commits=1)


def test_request_checks_the_run():
    s = folded()
    with pytest.raises(CocodeError, match="is queued; `cocode say` continues a finished run"):
        followup.request(s, "j", "claude", "more")
    with pytest.raises(CocodeError, match="no job 'k'"):
        followup.request(s, "k", "claude", "more")
    with pytest.raises(CocodeError, match="has no agent 'x'"):
        followup.request(s, "j", "x", "more")
    s = folded(finished())
    with pytest.raises(ConfigError, match="the message is empty"):
        followup.request(s, "j", "claude", "  ")
    e = followup.request(s, "j", "claude", " add tests ")
    assert (e.message, e.attempt) == ("add tests", 2)


def test_fold_queues_the_run_again_as_its_next_attempt():
    s = folded(finished(), ev.AgentSession(job="j", agent="claude", session_id="s1"),
               ev.FollowUpRequested(job="j", agent="claude", message="more", attempt=2))
    r = s.jobs["j"].runs["claude"]
    assert (r.state, r.final, r.attempt, r.ready_commit, r.follow_up, r.follow_ups) == ("queued", False, 2, None, "more", 1)
    assert not s.jobs["j"].done
    assert [run.agent for _, run in iter_queued(s)] == ["claude", "mine"]


def test_a_follow_up_resumes_the_session_when_the_agent_can():
    spec = agents.PRESETS["claude"]
    s = folded(finished(), ev.AgentSession(job="j", agent="claude", session_id="s1"),
               ev.FollowUpRequested(job="j", agent="claude", message="add tests", attempt=2))
    run = s.jobs["j"].runs["claude"]
    turn = followup.plan_turn(spec, run, 2, "t", "b", b"", "c1")
    assert turn.command == spec.resume and turn.resumed and turn.watch_from == "c1"
    assert turn.prompt.startswith("add tests") and agents.READY_MARKER in turn.prompt
    rendered = agents.render_command(turn.command, turn.prompt, {"session_id": "s1"})
    assert rendered[rendered.index("--resume") + 1] == "s1"


def test_without_resume_a_follow_up_is_a_new_prompt_with_the_output_so_far():
    spec = agents.AgentSpec(command=["mine", "{prompt}"])
    s = folded(finished("mine"), ev.FollowUpRequested(job="j", agent="mine", message="add tests", attempt=2))
    turn = followup.plan_turn(spec, s.jobs["j"].runs["mine"], 2, "Fix it", "the body", b"x" * 50_000 + b"I changed a.py",
                              "c1")
    assert turn.command == spec.command and not turn.resumed
    assert "Fix it" in turn.prompt and "I changed a.py" in turn.prompt and "add tests" in turn.prompt
    assert len(turn.prompt) < followup.HISTORY_MAX + 4000


def test_a_requeued_run_resumes_its_session_and_a_first_attempt_gets_the_issue():
    spec = agents.PRESETS["codex"]
    s = folded(ev.AgentSession(job="j", agent="claude", session_id="s1"))
    run = s.jobs["j"].runs["claude"]
    turn = followup.plan_turn(spec, run, 2, "t", "b", b"", "")
    assert turn.command == spec.resume and "interrupted" in turn.prompt and turn.watch_from == ""
    first = followup.plan_turn(spec, run, 1, "Fix it", "b", b"", "")
    assert first.command == spec.command and "Fix it" in first.prompt


def test_a_session_whose_sandbox_home_is_gone_is_not_resumed(tmp_path):
    """A sandboxed agent's session lives in its run's HOME (jobs/runtmp.py): once that
    is removed, the next attempt gets the issue again instead of a resume that would fail."""
    spec = agents.PRESETS["claude"]
    job = ev.JobSubmitted(job="j", title="Fix it", body="b", agents=["claude"], base_sha="x", seq=1)
    run = folded(ev.AgentSession(job="j", agent="claude", session_id="s1")).jobs["j"].runs["claude"]
    kept = followup.plan_for(None, spec, run, 2, job, tmp_path, "cocode/j/claude", tmp_path)
    assert kept.command == spec.resume and kept.session_id == "s1"
    gone = followup.plan_for(None, spec, run, 2, job, tmp_path, "cocode/j/claude", tmp_path, session_kept=False)
    assert gone.command == spec.command and "Fix it" in gone.prompt and gone.session_id == ""
    assert run.session_id == "s1"  # the fold's view is not changed


def test_the_fold_says_why_each_attempt_began():
    s = folded(ev.RunDispatched(job="j", agent="mine", worker="w", attempt=1),
               ev.RunInterrupted(job="j", agent="mine", reason="worker_lost", attempt=1),
               ev.RunRequeued(job="j", agent="mine", attempt=2),
               ev.RunFinished(job="j", agent="mine", state="ready", attempt=2),
               ev.FollowUpRequested(job="j", agent="mine", message="  add tests\nand docs", attempt=3))
    assert s.jobs["j"].runs["mine"].attempt_causes == {2: "requeued after worker_lost", 3: "follow-up: add tests"}
