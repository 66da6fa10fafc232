"""`init_config`: the default file written once (again only with force), and the
`.cocode/` line in the git exclude file written once, in the common git dir of a
worktree too."""

import subprocess
from pathlib import Path

from cocode.configfile import default_config_text, init_config
from cocode.configload import load_config


def _git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )


def _exclude_lines(git_dir: Path) -> list[str]:
    return (git_dir / "info" / "exclude").read_text().splitlines()


def test_init_config_writes_once_and_excludes_once(tmp_path):
    _git("init", "-q", ".", cwd=tmp_path)
    (tmp_path / ".git" / "info" / "exclude").unlink(missing_ok=True)  # must be created

    path, created = init_config(tmp_path)
    assert (path, created) == (tmp_path / ".cocode" / "config.yaml", True)
    assert path.read_text() == default_config_text()
    path.write_text("profile: high\n")

    assert init_config(tmp_path) == (path, False)
    assert path.read_text() == "profile: high\n"  # an existing file is kept
    assert _exclude_lines(tmp_path / ".git").count(".cocode/") == 1
    assert load_config(path).profile == "high"

    assert init_config(tmp_path, force=True) == (path, True)
    assert path.read_text() == default_config_text()
    assert _exclude_lines(tmp_path / ".git").count(".cocode/") == 1


def test_init_config_appends_to_an_existing_exclude(tmp_path):
    _git("init", "-q", ".", cwd=tmp_path)
    exclude = tmp_path / ".git" / "info" / "exclude"
    exclude.write_text("*.log")  # no trailing newline
    init_config(tmp_path)
    assert _exclude_lines(tmp_path / ".git") == ["*.log", ".cocode/"]


def test_init_config_in_a_worktree_uses_the_common_git_dir(tmp_path):
    main, tree = tmp_path / "main", tmp_path / "tree"
    main.mkdir()
    _git("init", "-q", ".", cwd=main)
    _git("commit", "-q", "--allow-empty", "-m", "x", cwd=main)
    _git("worktree", "add", "-q", str(tree), cwd=main)
    assert (tree / ".git").is_file()

    init_config(tree)
    init_config(tree)
    assert (tree / ".cocode" / "config.yaml").exists()
    assert _exclude_lines(main / ".git").count(".cocode/") == 1
