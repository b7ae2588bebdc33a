"""Errors of the daily commands, each with the exit code the command line returns (for cron).

| code | meaning |
| --- | --- |
| 0 | uploaded; or already submitted this round (nothing uploaded); or ``--dry-run`` done |
| 1 | any other nbutils error (bad run directory, invalid data or submission) |
| 2 | bad command line (argparse) |
| 3 | the round is closed: nothing uploaded; the message says when the next one opens |
| 4 | no API keys, or Numerai refused them |
| 5 | Numerai could not be reached, answered with an error, or a file upload (PUT) failed |
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


EXIT_CODES = {0: "ok", 1: "error", 2: "usage", 3: "round closed", 4: "keys", 5: "Numerai error"}
