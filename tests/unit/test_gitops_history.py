"""cocode.gitops' reading of a run's history against real git repositories in
tmp_path: the ready commit (its marker, first parent only), descent from the base,
and changed-line counts and diffs as git gives them."""

from __future__ import annotations

import pytest

from cocode import gitops
from cocode.errors import CocodeError

MARKER = "cocode ready for check"


# ------------------------------------------------------------- ready detection


def test_find_ready_commit_returns_oldest_marker_commit_after_base(gitrepo):
    base = gitrepo.commit(f"base also says {MARKER}")
    gitrepo.commit("wip", {"a.txt": "1\n"})
    ready = gitrepo.commit(f"fix: the bug\n\n{MARKER}", {"a.txt": "2\n"})
    head = gitrepo.commit(f"{MARKER} again", {"a.txt": "3\n"})
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) == ready
    assert gitops.find_ready_commit(gitrepo.path, base, base, MARKER) is None


def test_descends_from_tells_a_runs_own_history_from_a_moved_branch(gitrepo):
    base = gitrepo.head()
    mine = gitrepo.commit("work", {"a.txt": "1\n"})
    assert gitops.descends_from(gitrepo.path, base, mine)
    assert gitops.descends_from(gitrepo.path, base, base)
    # An orphan commit with the marker, as a forger's `git update-ref` would point a branch at.
    tree = gitrepo.git("rev-parse", f"{mine}^{{tree}}")
    orphan = gitrepo.git("commit-tree", tree, "-m", f"forged\n\n{MARKER}")
    assert not gitops.descends_from(gitrepo.path, base, orphan)
    assert gitops.find_ready_commit(gitrepo.path, base, orphan, MARKER) == orphan  # why the check is needed
    with pytest.raises(CocodeError, match="git merge-base failed"):
        gitops.descends_from(gitrepo.path, base, "0" * 40)


def test_find_ready_commit_ignores_marker_in_file_content(gitrepo):
    base = gitrepo.head()
    head = gitrepo.commit("chore: status", {"STATUS.txt": MARKER + "\n"})
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) is None


def merge_a_marked_side_branch(gitrepo) -> tuple[str, str]:
    """(base, the merge): a side branch whose commit has the marker, merged into main."""
    base = gitrepo.head()
    gitrepo.git("checkout", "-q", "-b", "side")
    gitrepo.commit(f"side work\n\n{MARKER}", {"side.txt": "s\n"})
    gitrepo.git("checkout", "-q", "main")
    gitrepo.commit("main work", {"main.txt": "m\n"})
    gitrepo.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
    return base, gitrepo.head()


def test_find_ready_commit_follows_first_parent_only(gitrepo):
    base, head = merge_a_marked_side_branch(gitrepo)
    assert gitops.find_ready_commit(gitrepo.path, base, head, MARKER) is None
    ready = gitrepo.commit(f"done\n\n{MARKER}")
    assert gitops.find_ready_commit(gitrepo.path, base, ready, MARKER) == ready


# ---------------------------------------------------------------------- diffs


def test_count_changed_lines_and_diff_match_git(gitrepo):
    base = gitrepo.commit("base", {"a.txt": "one\ntwo\nthree\n"})
    gitrepo.commit("edit", {"a.txt": "one\n2\nthree\nfour\n"})
    head = gitrepo.commit("add", {"b.txt": "new\n", "bin.dat": b"\x00\x01\xff"})

    assert gitops.count_commits(gitrepo.path, base, head) == 2
    # a.txt: -two +2 +four; b.txt: +new  -> 3 insertions, 1 deletion
    assert gitops.changed_lines(gitrepo.path, base, head) == 4
    expected = gitrepo.git("diff", f"{base}..{head}") + "\n"
    assert gitops.diff_text(gitrepo.path, base, head) == expected
    assert gitops.diff_text(gitrepo.path, head, head) == ""


def test_changed_lines_counts_a_rename_as_a_rename(gitrepo):
    base = gitrepo.commit("base", {"big.txt": "".join(f"line {i}\n" for i in range(50))})
    gitrepo.git("mv", "big.txt", "moved.txt")
    head = gitrepo.commit("move")
    assert gitops.changed_lines(gitrepo.path, base, head) == 0


def test_read_history_answers_descent_ready_and_count_with_one_log(gitrepo):
    base = gitrepo.head()
    gitrepo.commit("wip", {"a.txt": "1\n"})
    ready = gitrepo.commit(f"fix\n\n{MARKER}", {"a.txt": "2\n"})
    head = gitrepo.commit(f"{MARKER} again", {"a.txt": "3\n"})
    h = gitops.read_history(gitrepo.path, base, head, MARKER)
    assert (h.descends, h.ready, h.commits) == (True, ready, 3)
    assert h.ready == gitops.find_ready_commit(gitrepo.path, base, head, MARKER)
    assert h.commits == gitops.count_commits(gitrepo.path, base, head)
    assert gitops.read_history(gitrepo.path, base, base, MARKER) == gitops.History(True, None, 0)
    # Reset below the base: reachable from it, so listed as nothing, and not its work.
    assert not gitops.read_history(gitrepo.path, head, base, MARKER).descends
    # A forged orphan with the marker, and a commit on top of another line of history.
    tree = gitrepo.git("rev-parse", f"{head}^{{tree}}")
    orphan = gitrepo.git("commit-tree", tree, "-m", f"forged\n\n{MARKER}")
    h = gitops.read_history(gitrepo.path, base, orphan, MARKER)
    assert not h.descends and h.ready == orphan  # found, and refused by the caller for not descending
    other = gitrepo.git("commit-tree", tree, "-p", f"{base}~0", "-m", "x")
    assert gitops.read_history(gitrepo.path, ready, other, MARKER).descends is False


def test_read_history_agrees_with_the_three_commands_across_merges(gitrepo):
    base, merged = merge_a_marked_side_branch(gitrepo)
    ready = gitrepo.commit(f"done\n\n{MARKER}")
    # Base brought in through a merge's second parent: git merge-base decides, as before.
    gitrepo.git("checkout", "-q", "--orphan", "elsewhere")
    gitrepo.commit("unrelated root", {"u.txt": "u\n"})
    gitrepo.git("merge", "-q", "--allow-unrelated-histories", "-m", f"merge main\n\n{MARKER}", "main")
    via_second = gitrepo.head()
    for start, head in ((base, merged), (base, ready), (base, via_second), (ready, via_second), (merged, ready)):
        h = gitops.read_history(gitrepo.path, start, head, MARKER)
        assert h.descends == gitops.descends_from(gitrepo.path, start, head), (start, head)
        assert h.ready == gitops.find_ready_commit(gitrepo.path, start, head, MARKER), (start, head)
        assert h.commits == gitops.count_commits(gitrepo.path, start, head), (start, head)
