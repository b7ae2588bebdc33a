"""One writer at a time per run directory, for ``submit`` and ``upload-model`` too.

:func:`command_lock` takes the run directory's lock (the chain's own ``.nbutils.lock``, made by
:func:`nbutils.run.lock.run_lock`: created exclusively, with the owner's pid and host; a lock whose
process is gone is replaced) before the command writes anything: not the settings file, not a
downloaded file, not the submission, not a log line. A second ``submit``/``upload-model`` into the
same run directory, or one while a chain writes it, does not wait: it exits at once with
:class:`BusyError` (exit 6) naming the owner, and has written nothing. Cron calls again later; by
then the first call has logged its upload and the second says "already submitted".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nbutils.daily.errors import BusyError, DailyError
from nbutils.errors import PipelineError
from nbutils.run.lock import run_lock


def run_directory(run_dir: str | os.PathLike) -> Path:
    """``--run-dir`` made absolute; refused when empty or not an existing directory."""
    if not str(run_dir).strip():
        raise DailyError("--run-dir is empty: give a finished run's directory.")
    path = Path(run_dir).expanduser().resolve()
    if not path.is_dir():
        raise DailyError(f"--run-dir {path} is not a directory; give a finished run's directory.")
    return path


@contextlib.contextmanager
def command_lock(run_dir: Path, command: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock while ``command`` runs; :class:`BusyError` when another holds it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(run_lock(run_dir))
        except PipelineError as err:
            raise BusyError(
                f"{command}: nothing done, the run directory is busy (exit 6). {err} "
                f"Another submit, upload-model or chain holds the lock; run {command} again "
                "when it has finished."
            ) from None
        yield
