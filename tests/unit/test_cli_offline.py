"""The command line where no cocode runs: `schema --check --json`, and shell
completion that never raises, even on a broken log or config. With a running
cocode: tests/system/test_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

from cocode.paths import Paths
from support import bash_values, cocode, complete, make_repo


def test_schema_check_json():
    out = json.loads(cocode(Path.cwd(), "schema", "--check", "--json", check=True).stdout)
    assert out["stale"] == [] and Path(out["dir"]).is_dir()


def test_completion_never_raises_on_a_broken_log(tmp_path):
    repo = make_repo(tmp_path / "broken")
    db = Paths(repo).db
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a SQLite database" * 100)
    assert bash_values(complete(repo, "status ")) == []  # complete() checks: exit 0, nothing on stderr
    (repo / ".cocode" / "config.yaml").write_text("agents: [not, a, mapping\n")
    assert "demo" in bash_values(complete(repo, "submit --agent "))  # the presets still complete
