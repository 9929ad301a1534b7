"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""


class BiolatentError(Exception):
    """An error caused by the user's input (file, config, data), with a message that says what to fix."""


class DataError(BiolatentError):
    """Bad or unreadable input data: missing file, corrupt file, wrong values, ids that do not match."""


class ConfigError(BiolatentError):
    """A config key that does not exist or a value that is not allowed."""
