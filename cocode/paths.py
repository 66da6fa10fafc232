"""Where a repository's cocode lives on disk, and the addresses of its sockets.

Everything is under `.cocode/` at the top of the enclosing git repository, found
like git finds its own directory. Sockets are ipc:// files in a directory only the
user can open; when the path would be too long for a unix socket (the kernel caps
it near 107 bytes) they move to a private directory under the system temp dir,
named after the repository so every process finds the same one; as that name
is predictable, a directory there that is not the user's own and private is
refused (check_socket_dir).
"""

from __future__ import annotations

import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

from cocode.errors import CocodeError, EXIT_CONFIG, EXIT_ERROR

# sun_path is 108 bytes including the NUL; leave room for the longest socket name.
_MAX_SOCKET_PATH = 100
SOCKET_NAMES = ("bus-in", "bus", "store", "scheduler", "supervisor", "logs")


def find_repo_root(start: Path | str | None = None) -> Path:
    """The top of the git repository containing `start` (the working tree, not .git)."""
    start = Path(start or os.getcwd()).resolve()
    if not start.exists():
        raise CocodeError(f"{start}: no such directory", EXIT_CONFIG)
    probe = start
    while True:
        if (probe / ".git").exists():
            return probe
        if probe.parent == probe:
            break
        probe = probe.parent
    raise CocodeError(
        f"{start} is not inside a git repository: run cocode in one, or pass -C DIR "
        "(git init makes one)",
        EXIT_CONFIG,
    )


@dataclass(frozen=True)
class Paths:
    """The files and sockets of one repository's cocode."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / ".cocode"

    @property
    def config(self) -> Path:
        return self.home / "config.yaml"

    @property
    def db(self) -> Path:
        return self.home / "events.db"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def worktrees(self) -> Path:
        return self.home / "worktrees"

    @property
    def pool(self) -> Path:
        """Ready worktrees not yet given to a run (gitops/pool.py)."""
        return self.home / "pool"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def tmp(self) -> Path:
        """The worker's private files per run: issue files, sandbox HOMEs (jobs/runtmp.py)."""
        return self.home / "tmp"

    @property
    def supervisor_log(self) -> Path:
        return self.run / "supervisor.log"

    @property
    def lock(self) -> Path:
        return self.run / "supervisor.lock"

    @property
    def socket_dir(self) -> Path:
        if len(str(self.run / "supervisor.ipc")) <= _MAX_SOCKET_PATH:
            return self.run
        # zlib, not hashlib: hashlib loads OpenSSL, ~6 MiB in every service process.
        raw = str(self.root).encode()
        digest = f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}"
        return Path(os.environ.get("TMPDIR") or "/tmp") / f"cocode-{os.getuid()}-{digest}"

    def endpoint(self, name: str) -> str:
        assert name in SOCKET_NAMES, name
        return f"ipc://{self.socket_dir / (name + '.ipc')}"

    def endpoints(self) -> dict[str, str]:
        """The public addresses, as `cocode endpoints` prints them."""
        return {
            "subscribe": self.endpoint("bus"),
            "publish": self.endpoint("bus-in"),
            "store": self.endpoint("store"),
            "scheduler": self.endpoint("scheduler"),
            "supervisor": self.endpoint("supervisor"),
            "logs": self.endpoint("logs"),
        }

    def ensure_private_dirs(self) -> None:
        """Create .cocode/ and the socket directory, readable by the user only."""
        self.home.mkdir(mode=0o700, exist_ok=True)
        self.run.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.run, 0o700)
        shared = self.socket_dir
        if shared != self.run:
            try:
                shared.mkdir(mode=0o700)
                os.chmod(shared, 0o700)  # whatever the umask
            except FileExistsError:
                pass
        self.check_socket_dir()

    def check_socket_dir(self) -> None:
        """Refuse a socket directory in the shared temp dir that someone else could
        have made (its name is predictable): it must be a real directory of this
        user's, closed to everyone else. Whoever owns it could answer as cocode."""
        d = self.socket_dir
        if d == self.run:
            return
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise CocodeError(
                f"{d} (cocode's socket directory) is not a private directory of yours "
                f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}): remove it, "
                "or set TMPDIR to a directory only you can write", EXIT_ERROR,
            )

    def socket_files(self) -> list[Path]:
        d = self.socket_dir
        return [d / f"{n}.ipc" for n in SOCKET_NAMES if (d / f"{n}.ipc").exists()]


def relative_to_cwd(path: Path) -> Path:
    """`path` as the command line names it in messages: relative to where it runs
    when it is below that, else as it is."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
