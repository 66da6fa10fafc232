"""One diff path (issue 12's audit): `cocode diff JOB AGENT` and `cocode top`'s diff
view show the same bytes, those of `git diff`. They used to differ on a rename
(pygit2 said "similarity index 99%" where git says 98%). A real repository, a real
run branch with a rename and an edit, a real events.db holding the job (cocode is
not running: both read the state from the file), the real CLI as a subprocess.
"""

from __future__ import annotations

import json

from cocode.core import eventlog
from cocode.core import events as ev
from cocode.paths import Paths
from cocode.runkey import RunKey
from cocode.top import actions
from support import GitRepo, cocode

NOTES = "".join(f"line {i} of the notes\n" for i in range(100))


def test_cli_and_tui_diff_are_byte_identical_on_a_rename(tmp_path):
    repo = GitRepo.init(tmp_path / "repo", {"notes.txt": NOTES, "calc.py": "def add(a, b):\n    return a + b + 1\n"})
    base = repo.head()
    branch = RunKey("j1", "a").branch
    repo.git("checkout", "-q", "-b", branch)
    repo.git("mv", "notes.txt", "docs.txt")
    repo.write({"docs.txt": NOTES.replace("line 50 of", "LINE 50 OF"), "calc.py": "def add(a, b):\n    return a + b\n"})
    head = repo.commit("move the notes, fix add()")
    repo.git("checkout", "-q", "main")

    paths = Paths(repo.path)
    paths.db.parent.mkdir(mode=0o700, exist_ok=True)
    conn = eventlog.open_for_writing(paths.db)
    submitted = ev.JobSubmitted(job="j1", title="t", body="b", agents=["a"], base_sha=base, seq=1, ts=1.0)
    conn.execute("BEGIN")
    eventlog.insert_events(conn, [1, 1.0, submitted.type, "j1", "", ev.encode(submitted)])
    conn.execute("COMMIT")
    conn.close()

    git_says = repo.git("diff", base, head) + "\n"  # GitRepo.git strips the last newline
    assert "similarity index 98%" in git_says and "rename from notes.txt" in git_says
    assert "+    return a + b\n" in git_says

    proc = cocode(repo.path, "diff", "j1", "a", timeout=30)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    tui = actions.diff(paths, "j1", "a")  # what the diff view (DiffScreen) is given
    assert proc.stdout.encode() == tui.encode() == git_says.encode()
    as_json = json.loads(cocode(repo.path, "diff", "j1", "a", "--json", timeout=30, check=True).stdout)
    assert as_json["diff"] == tui and as_json["head_sha"] == head
