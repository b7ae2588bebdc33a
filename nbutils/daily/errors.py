"""Errors of the daily commands, each with the exit code the command line returns (for cron).

| code | meaning |
| --- | --- |
| 0 | uploaded; or already submitted this round (nothing uploaded); or ``--dry-run`` done |
| 1 | any other nbutils error (bad run directory, invalid data or submission) |
| 2 | bad command line (argparse) |
| 3 | the round is closed: nothing uploaded; the message says when the next one opens |
| 4 | no API keys, or Numerai refused them |
| 5 | Numerai could not be reached, answered with an error, did not answer within the timeout, or a file upload (PUT) failed |
| 6 | the run directory is busy: another ``submit``/``upload-model`` or a chain holds its lock; nothing done |
| 7 | Numerai accepted the upload but it could not be recorded locally (e.g. a full disk); do not upload again |
"""

from __future__ import annotations

from nbutils.errors import NbutilsError


class DailyError(NbutilsError):
    """A daily command could not do its job; ``exit_code`` is what the command line returns."""

    exit_code = 1


class RoundClosedError(DailyError):
    """No round takes submissions now."""

    exit_code = 3


class KeysError(DailyError):
    """No API keys, or keys that Numerai refuses."""

    exit_code = 4


class NumeraiUnavailableError(DailyError):
    """A server error, no answer, or a failed file upload."""

    exit_code = 5


class BusyError(DailyError):
    """Another daily command or a chain holds the run directory's lock."""

    exit_code = 6


class UploadNotRecordedError(DailyError):
    """Numerai has the upload, but the local log could not record it."""

    exit_code = 7


EXIT_CODES = {
    0: "ok",
    1: "error",
    2: "usage",
    3: "round closed",
    4: "keys",
    5: "Numerai error",
    6: "busy",
    7: "uploaded, not recorded",
}
