"""One chain at a time per run directory: ``<run_dir>/.nbutils.lock``.

:func:`run_lock` creates the lock file exclusively (``O_CREAT | O_EXCL``) with the owner's pid,
host and a random token, and removes it when the chain ends. A second chain into the same run
directory fails with a :class:`~nbutils.errors.PipelineError` naming the owner. A lock left by a
process that no longer exists (killed, machine rebooted) is stale: it is detected (same host,
pid not running) and replaced. The token is passed to the notebooks' kernels in the environment
(``NBUTILS_RUN_LOCK``), so artifacts written by the chain's own kernels pass
:func:`check_not_locked_by_another`, and a notebook run by hand into a locked directory does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbutils.errors import PipelineError

LOCK_NAME = ".nbutils.lock"
TOKEN_ENV = "NBUTILS_RUN_LOCK"


def _read(lock: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _alive(info: dict[str, Any]) -> bool:
    """Whether the lock's owner may still run (a lock from another host is assumed alive)."""
    if info.get("host") != socket.gethostname():
        return True
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(info: dict[str, Any], lock: Path) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return (
        f"{lock.parent} is being written by another chain (pid {info.get('pid')} on "
        f"{info.get('host')}, since {when}). Wait for it to finish or choose another --run-dir. "
        f"If no such process runs, delete {lock}."
    )


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[str]:
    """Hold ``run_dir``'s lock for the duration of the ``with`` block; yields the token."""
    lock = Path(run_dir) / LOCK_NAME
    token = secrets.token_hex(8)
    body = json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "token": token}
    )
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            info = _read(lock)
            if info is None:
                continue  # released meanwhile
            if info and _alive(info):
                raise PipelineError(_describe(info, lock)) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its owner is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        break
    else:
        raise PipelineError(f"could not lock {run_dir}: {lock} keeps coming back; retry.")
    old = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = token
    try:
        yield token
    finally:
        if old is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = old
        info = _read(lock)
        if info and info.get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def check_not_locked_by_another(run_dir: str | os.PathLike) -> None:
    """Refuse to write into ``run_dir`` while another live chain holds its lock."""
    lock = Path(run_dir) / LOCK_NAME
    info = _read(lock)
    if not info or info.get("token") == os.environ.get(TOKEN_ENV) or not _alive(info):
        return
    raise PipelineError(_describe(info, lock))
