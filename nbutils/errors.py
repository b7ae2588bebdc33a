"""The one exception family of nbutils.

Every error says what went wrong and what to do about it. This module imports nothing from
nbutils, so every other module (``data`` included) may use it.
"""


class NbutilsError(Exception):
    """Base class of every error nbutils raises on purpose."""


class DataError(NbutilsError, ValueError):
    """A data file or frame is missing, malformed or inconsistent."""


class DownloadError(NbutilsError):
    """Numerai could not be reached or a download did not complete."""


class ScoringError(NbutilsError, ValueError):
    """Inputs to a score are invalid (NaN predictions, missing columns, ...)."""


class SubmissionError(NbutilsError, ValueError):
    """A submission is invalid or could not be uploaded."""


class PipelineError(NbutilsError):
    """A notebook of the chain failed or an artifact is missing."""


class ParameterError(NbutilsError, ValueError):
    """A notebook parameter is unknown, of the wrong type or out of its range."""


class KeysFileError(NbutilsError, ValueError):
    """A ``.env`` file meant to hold the Numerai keys cannot be read as text."""


class FileWriteError(NbutilsError, OSError):
    """A file or directory could not be written: a full or read-only disk, a directory where a
    file should go, a file where a directory should go. The message names the real target."""

    def __str__(self) -> str:  # OSError's own would show "[Errno n] None: <file>"
        return str(self.args[0]) if self.args else ""


class DependencyError(NbutilsError, ImportError):
    """An installed dependency is older than nbutils needs (or missing); names the fix."""
