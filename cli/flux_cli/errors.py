"""Errors the plugin reports as one line on stderr, and the exit codes every command shares."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    ALREADY_FINISHED = 3
    TIMEOUT = 4


class FluxCliError(Exception):
    """Base: str(error) is the whole message the user sees (exit code 1, never a traceback)."""


class ArgumentError(FluxCliError):
    """The command line itself is wrong (bad flag value, flags that do not go together)."""


class BadObjectError(FluxCliError):
    """The API server returned something that is not an object of the expected shape."""
