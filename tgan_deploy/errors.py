"""User-facing errors: one line that names the problem and the fix, never a traceback.

Library code raises these; the commands print `error: <message>` and exit non-zero (see `cli.run_command`).
"""


class TganError(Exception):
    """Base class of every error a user can cause and fix (bad input, missing extra, bad config)."""

    exit_code = 2


class ConfigError(TganError):
    """A config file or override is wrong (unknown key, bad value)."""


class DataError(TganError):
    """Training data is missing, empty or unreadable."""


class CheckpointError(TganError):
    """A checkpoint is missing, truncated, or of another kind or architecture."""


class MissingExtraError(TganError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it.

    `extra` names that extra (e.g. "train") where one does, so a command can say "tgan-train needs [train]".
    """

    def __init__(self, message: str, extra: str | None = None) -> None:
        super().__init__(message)
        self.extra = extra
