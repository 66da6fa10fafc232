"""What `cocode submit` refuses before anything is queued (cocode/jobs/submit.py):
an agent name that cannot be a branch component, an issue over max_issue_kb."""

from __future__ import annotations

import pytest

from cocode.configload import load_config
from cocode.errors import ConfigError
from cocode.jobs import submit as sub
from cocode.paths import Paths
from support import make_repo


def test_an_issue_over_max_issue_kb_is_refused(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".cocode").mkdir()
    (repo / ".cocode" / "config.yaml").write_text("performance: {max_issue_kb: 4}\n")
    config = load_config(Paths(repo).config)
    small = sub.issue_from_text("# t\n" + "x" * 3000)
    event, _ = sub.build_job(Paths(repo), config, small, ["demo"])
    assert len(event.body) > 3000
    big = sub.issue_from_text("# t\n" + "x" * 5000)
    with pytest.raises(ConfigError, match=r"the issue is 4 KB, over the limit of 4 KB: .*max_issue_kb"):
        sub.build_job(Paths(repo), config, big, ["demo"])


def test_the_default_issue_limit_is_a_megabyte(tmp_path):
    repo = make_repo(tmp_path / "repo")
    config = load_config(None)
    with pytest.raises(ConfigError, match="over the limit of 1024 KB"):
        sub.build_job(Paths(repo), config, sub.issue_from_text("# t\n" + "x" * (1024 * 1024 + 1)), ["demo"])


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a" * 300, "x.lock"])
def test_an_agent_name_that_cannot_be_a_ref_component_is_refused(name):
    with pytest.raises(ConfigError, match="cannot be used"):
        sub.resolve_agents((name,), load_config(None))
