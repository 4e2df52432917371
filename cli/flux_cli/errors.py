"""Errors the plugin reports as one line on stderr with exit code 1 (never a traceback)."""


class FluxCliError(Exception):
    """Base: str(error) is the whole message the user sees."""


class ArgumentError(FluxCliError):
    """The command line itself is wrong (bad flag value, flags that do not go together)."""
