"""A log another cocode version wrote, read through a running cocode (issue 12's
audit): the store hands the rows it cannot decode to the client like any other,
the client's follower cannot decode them either, and `cocode status` says so once
on stderr instead of showing the partial state as whole. The file-only readers:
tests/unit/test_unreadable_events.py."""

from __future__ import annotations

import json

from cocode.paths import Paths
from support import cocode, down, make_repo, older_log, up


def test_status_through_the_store_warns_once(tmp_path):
    paths = Paths(make_repo(tmp_path / "repo"))
    older_log(paths)
    up(paths.root)
    try:
        proc = cocode(paths.root, "status", "--json", timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert "j1" in [j["job"] for j in json.loads(proc.stdout)]
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("cocode: warning: 2 events of the log could not be read"), \
            proc.stderr
        assert "`cocode doctor` lists them" in lines[0]
    finally:
        down(paths.root)
