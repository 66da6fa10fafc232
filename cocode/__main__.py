"""`python -m cocode` and the `cocode` console script (`main`).

`cocode -C ROOT service NAME` (how the supervisor starts each service) skips the
click command line: a service then never imports click, which keeps every
long-running process a few MiB smaller and faster to start. So does `cocode -C
ROOT supervise`, how `cocode up --detach` starts the supervisor (internal: the
command line has already checked the config), and `[-C DIR] up --detach [--json]`
itself, which runs the very function the click command calls (updown.up_command).
"""

import sys

DETACH = {"--detach", "-d"}


def _fast_path(argv: list[str]) -> int | None:
    if len(argv) == 4 and argv[0] == "-C" and argv[2] == "service":
        from cocode.launcher import run_service

        return run_service(argv[1], argv[3])
    if len(argv) == 3 and argv[0] == "-C" and argv[2] == "supervise":
        from cocode.supervisor import run_detached

        return run_detached(argv[1])
    directory = None
    if len(argv) >= 2 and argv[0] == "-C":
        directory, argv = argv[1], argv[2:]
    flags = set(argv[1:])
    if (argv[:1] == ["up"] and len(flags) == len(argv) - 1 and flags <= DETACH | {"--json"}
            and len(flags & DETACH) == 1):
        import os

        from cocode.envnames import PERFORMANCE_PROFILE
        from cocode.updown import up_command

        # The profile as click reads it: --performance-profile's environment variable.
        return up_command(directory, os.environ.get(PERFORMANCE_PROFILE) or None, as_json="--json" in flags)
    return None


def main() -> None:
    """The `cocode` console script: a fast path, else the click command line."""
    code = _fast_path(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from cocode.cli import main as command_line

    command_line()


if __name__ == "__main__":
    main()
