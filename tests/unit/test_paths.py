"""Where cocode's sockets live (cocode/paths.py): the shared temp directory used
for a long repository path is refused unless it is the user's own and private."""

from __future__ import annotations

import os
import sys
import subprocess
from pathlib import Path

import pytest

from cocode.errors import CocodeError
from cocode.paths import Paths
from support import make_repo


@pytest.fixture
def long_repo(tmp_path: Path, monkeypatch) -> Paths:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    root = make_repo(tmp_path / ("r" * 100))
    paths = Paths(root)
    assert paths.socket_dir.parent == tmp_path / "tmp", "a long path's sockets go to the temp dir"
    return paths


def test_a_fresh_socket_dir_is_made_private(long_repo):
    os.umask(0o022)
    long_repo.ensure_private_dirs()
    st = os.lstat(long_repo.socket_dir)
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.geteuid())
    long_repo.ensure_private_dirs()  # and found again as it is


@pytest.mark.parametrize("spoil", ["mode", "owner", "symlink"])
def test_a_socket_dir_someone_else_could_have_made_is_refused(long_repo, tmp_path, spoil):
    d = long_repo.socket_dir
    if spoil == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        d.symlink_to(tmp_path / "elsewhere")
    else:
        d.mkdir(mode=0o700)
        if spoil == "mode":
            os.chmod(d, 0o755)
        else:
            if os.geteuid() != 0:
                pytest.skip("giving a directory away needs root")
            os.chown(d, 65534, 65534)
    with pytest.raises(CocodeError, match="not a private directory of yours.*TMPDIR"):
        long_repo.ensure_private_dirs()
    proc = subprocess.run([sys.executable, "-m", "cocode", "-C", str(long_repo.root), "status"],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "not a private directory" in lines[0], proc.stderr
