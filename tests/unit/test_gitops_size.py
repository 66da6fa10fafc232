"""cocode.gitops sizing by ADR-005 §3: measuring real repositories, and the pure policy."""

from __future__ import annotations

import pytest

from cocode import gitops
from cocode.errors import CocodeError
from cocode.gitops import GB, MB, RepoSize


def test_repo_size_follows_adr005_methodology(gitrepo):
    gitrepo.write({".gitignore": "build/\n"})
    gitrepo.commit("ignore build", {"data/blob.bin": b"x" * 10_000})
    gitrepo.write({"untracked.txt": "u" * 100, "build/out.o": b"o" * 50_000})

    size = gitops.repo_size(gitrepo.path)

    listed = ["README.md", "src/app.py", ".gitignore", "data/blob.bin", "untracked.txt"]
    expected = sum((gitrepo.path / p).stat().st_size for p in listed)
    assert size.worktree_bytes == expected  # ignored build/ and .git left out
    assert size.file_count == len(listed)
    git_dir = sum(f.stat().st_size for f in (gitrepo.path / ".git").rglob("*") if f.is_file() and not f.is_symlink())
    assert size.total_bytes == expected + git_dir
    assert (size.lfs_files, size.lfs_bytes) == (0, 0)


def test_repo_size_counts_lfs_pointers_apart(gitrepo):
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 123456789\n"
    )
    gitrepo.commit("lfs", {".gitattributes": "*.psd filter=lfs diff=lfs merge=lfs -text\n", "art.psd": pointer})
    size = gitops.repo_size(gitrepo.path)
    assert size.lfs_files == 1
    assert size.lfs_bytes == 123456789
    small = sum((gitrepo.path / p).stat().st_size for p in ["README.md", "src/app.py", ".gitattributes"])
    assert size.worktree_bytes == small


def _size(worktree: int, total: int | None = None, lfs_files: int = 0) -> RepoSize:
    return RepoSize(worktree_bytes=worktree, total_bytes=total or worktree, lfs_bytes=lfs_files * MB,
                    lfs_files=lfs_files, file_count=10)


def test_size_policy_small_repo_is_plain():
    policy = gitops.size_policy(_size(50 * MB), 5000, force=False)
    assert (policy.warnings, policy.light, policy.refusal) == ([], False, None)
    policy.check()


def test_size_policy_thresholds():
    assert gitops.size_policy(_size(101 * MB), 5000, False).light
    warned = gitops.size_policy(_size(2 * GB), 5000, False)
    assert warned.light and warned.refusal is None
    assert any("over 1 GB" in w for w in warned.warnings)
    assert any("LFS" in w for w in gitops.size_policy(_size(MB, lfs_files=3), 5000, False).warnings)


def test_size_policy_over_max_needs_force():
    refused = gitops.size_policy(_size(6 * GB), 5000, force=False)
    with pytest.raises(CocodeError, match="--force") as err:
        refused.check()
    assert err.value.exit_code == 2
    forced = gitops.size_policy(_size(6 * GB), 5000, force=True)
    forced.check()
    assert any("--force" in w for w in forced.warnings)


def test_size_policy_over_total_limit_refuses_even_with_force():
    policy = gitops.size_policy(_size(3 * GB, total=11 * GB), 5000, force=True)
    with pytest.raises(CocodeError, match="limit 10.0 GB"):
        policy.check()
