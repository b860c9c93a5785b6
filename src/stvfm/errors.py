"""Typed errors whose message is fit to show a user as one line.

The library raises these; only the CLI turns them into a printed line and an exit code.

Imports from stvfm: none.
"""


class StvfmError(Exception):
    """Base for every error a user can cause (bad file, bad option)."""


class DataError(StvfmError):
    """A data file is missing, malformed, or does not fit the protocol."""


class ConfigError(StvfmError):
    """An option or name (dataset, model, channel, backbone) is unknown or inconsistent."""


class CheckpointError(StvfmError):
    """A checkpoint or weight file is missing, corrupt, or from another model."""


class FetchError(StvfmError):
    """A download failed or did not match its checksum."""


class OutputError(StvfmError):
    """An output cannot be written where asked (read-only folder, full disk, a folder in the way)."""


class RunError(StvfmError):
    """A run ended without a usable result (its forecasts or metrics are not finite numbers)."""


class RequestError(StvfmError):
    """A request the forecast service refuses; ``status`` is the 4xx HTTP code it answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class DataWarning(UserWarning):
    """Data that loads but is probably wrong (an outlier far beyond the rest): the CLI shows it as one line."""
