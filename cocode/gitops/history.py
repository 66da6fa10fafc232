"""A run's history between its base and its head: the ready commit, counts, the diff.

All but `diff_text` use one git plumbing command each (the worker calls them after
every commit); `diff_text` is the porcelain `git diff`, for `cocode diff` and the TUI.
`read_history` answers what the worker asks after each commit (does it descend from
the base, which is the ready commit, how many commits) with one `git log`: each git
process is tens of milliseconds on a loaded machine, on the way to `run_ready`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from cocode.errors import EXIT_ERROR, CocodeError
from cocode.gitops.runner import GIT_TIMEOUT, git, last_line, run

def find_ready_commit(repo_root: Path, base_sha: str, head_sha: str, marker: str) -> str | None:
    """The oldest commit after base on head's first-parent line whose message has `marker`.

    Only the message (subject or body) counts, never file contents, so an agent that
    merely writes the marker into a file is not "ready". First-parent, because a
    merged-in side branch (e.g. someone else's ready commit) is not this run's claim.
    One `git log`; base hides its whole ancestry, not only its first parents.
    """
    out = git(
        repo_root, "log", "--first-parent", "--reverse", "--no-show-signature", "--encoding=UTF-8",
        "-z", "--format=%H%n%B", "--end-of-options", f"{base_sha}..{head_sha}", "--",
    )
    want = marker.encode()
    for record in out.split(b"\0"):
        oid, _, message = record.partition(b"\n")
        if oid and want in message:
            return oid.decode()
    return None


@dataclass(frozen=True)
class History:
    """What one `git log base..head` says of a run's head."""

    descends: bool  # head has base in its history (or is it)
    ready: str | None  # find_ready_commit's answer, whether head descends or not
    commits: int  # count_commits's answer


def read_history(repo_root: Path, base_sha: str, head_sha: str, marker: str) -> History:
    """descends_from, find_ready_commit and count_commits with one `git log` (usually).

    Every commit of base..head is listed with its parents and message. The first-parent
    line from head through that set is what `--first-parent` would walk; when it ends on
    base itself, head descends from base. When it ends elsewhere (a merge brought base in
    through another parent, or the branch was moved away) `git merge-base` decides, as
    descends_from does.
    """
    if head_sha == base_sha:
        return History(True, None, 0)
    out = git(
        repo_root, "log", "--no-show-signature", "--encoding=UTF-8", "-z", "--format=%H %P%n%B",
        "--end-of-options", f"{base_sha}..{head_sha}", "--",
    )
    first_parent: dict[str, str] = {}
    messages: dict[str, bytes] = {}
    for record in out.split(b"\0"):
        ids, _, message = record.partition(b"\n")
        oids = ids.decode().split()
        if oids:
            first_parent[oids[0]] = oids[1] if len(oids) > 1 else ""
            messages[oids[0]] = message
    line: list[str] = []
    at = head_sha
    while at in first_parent:
        line.append(at)
        at = first_parent[at]
    if head_sha not in first_parent:
        # head reachable from base: it descends only if it is base (a full sha compared
        # above; a shortened one is asked of git).
        descends = descends_from(repo_root, base_sha, head_sha)
    else:
        descends = at == base_sha or descends_from(repo_root, base_sha, head_sha)
    want = marker.encode()
    ready = next((oid for oid in reversed(line) if want in messages[oid]), None)
    return History(descends, ready, len(first_parent))


def descends_from(repo_root: Path, base_sha: str, head_sha: str) -> bool:
    """Whether `head_sha` has `base_sha` in its history (or is it): the run's own work
    starts there. A branch moved elsewhere (another process's `git update-ref`, a
    reset below the base) is not the run's work, whatever its messages claim."""
    proc = run(repo_root, "merge-base", "--is-ancestor", "--end-of-options", base_sha, head_sha)
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise CocodeError(f"git merge-base failed in {repo_root}: {last_line(proc.stderr)}", EXIT_ERROR)


def count_commits(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Commits in head not in base: `git rev-list --count base..head`."""
    return int(git(repo_root, "rev-list", "--count", "--end-of-options", f"{base_sha}..{head_sha}", "--"))


def changed_lines(repo_root: Path, base_sha: str, head_sha: str) -> int:
    """Insertions + deletions between base and head (ADR-005 §4 adaptive timeouts).

    `git diff-tree --numstat -M`: renames detected (a moved file is not all-new
    lines), binary files count 0. The plumbing command, so the user's diff.* settings
    (external tools, textconv, algorithm) do not change the count.
    """
    out = git(repo_root, "diff-tree", "-r", "--numstat", "-M", "--end-of-options", base_sha, head_sha, "--")
    total = 0
    for line in out.splitlines():
        added, deleted, _ = line.split(b"\t", 2)
        total += (int(added) if added != b"-" else 0) + (int(deleted) if deleted != b"-" else 0)
    return total


def diff_text(repo_root: Path, base_sha: str, head_sha: str, *, stat: bool = False, colour: bool = False,
              timeout: float = GIT_TIMEOUT) -> str:
    """`git diff base head` (or its --stat) as `cocode diff` prints it and `cocode top`'s
    diff view shows it: one path for both. git itself, with the user's own diff
    settings, because its output is what users know (pygit2's rename similarity
    differed from git's: "similarity index 99%" where git says 98%)."""
    proc = run(repo_root, "diff", "--color=always" if colour else "--no-color", "--stat" if stat else "--patch",
               base_sha, head_sha, timeout=timeout)
    if proc.returncode != 0:
        raise CocodeError(f"git diff failed in {repo_root}: {last_line(proc.stderr)}", EXIT_ERROR)
    # decoded leniently: a file that is not UTF-8 must not stop the rest of the patch
    return proc.stdout.decode("utf-8", errors="replace")
