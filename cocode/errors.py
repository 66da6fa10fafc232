"""The one exception type the CLI turns into a one-line message and an exit code.

Exit codes follow ADR-003: 0 success, 1 error, 2 bad config or usage,
3 missing dependency, 124 timeout, 130 interrupted.
"""

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_MISSING_DEPENDENCY = 3
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


class CocodeError(Exception):
    """An expected failure: the message is for the user, one line, naming the fix."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(CocodeError):
    """A bad config file or bad command-line value: nothing starts."""

    exit_code = EXIT_CONFIG


class NotRunningError(CocodeError):
    """cocode's services are not running in this repository."""

    exit_code = EXIT_ERROR
