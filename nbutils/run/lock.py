"""One chain at a time per run directory: ``<run_dir>/.nbutils.lock``.

:func:`run_lock` creates the lock file exclusively (``O_CREAT | O_EXCL``) with the owner's pid,
host and a random token, and removes it when the chain ends. A second chain into the same run
directory fails with a :class:`~nbutils.errors.PipelineError` naming the owner. A lock left by a
process that no longer exists (killed, machine rebooted) is stale: it is detected (same host,
pid not running) and replaced. The token is passed to the notebooks' kernels in the environment
(``NBUTILS_RUN_LOCK``), so artifacts written by the chain's own kernels pass
:func:`check_not_locked_by_another`, and a notebook run by hand into a locked directory does not.

Outside a chain, every artifact write takes the lock for the duration of that write
(:func:`writing`, used by :mod:`nbutils.run.artifacts` and the savers of the tutorial's modules):
a notebook run by hand while a chain holds the lock is refused *before* it writes anything, and a
chain cannot start in the middle of a write. A notebook also checks the lock when its setup cell
checks its parameters (:func:`nbutils.run.parameters.check_notebook_parameters`), so it stops
before it computes anything. A notebook does not hold the lock between its writes: a Jupyter kernel lives on
after its last cell, and a lock held for its lifetime would block every chain until it is shut down.
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
#: seconds a write waits for another process's single write (not a chain) to release the lock
WRITE_WAIT = 30.0


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


def _ours(info: dict[str, Any] | None) -> bool:
    """Whether a lock is this process's chain's (its token in ``NBUTILS_RUN_LOCK``); a lock
    without a token is nobody's."""
    token = (info or {}).get("token")
    return bool(token) and token == os.environ.get(TOKEN_ENV)


def _describe(info: dict[str, Any], lock: Path) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    who = "notebook" if info.get("kind") == "write" else "chain"
    return (
        f"{lock.parent} is being written by another {who} (pid {info.get('pid')} on "
        f"{info.get('host')}, since {when}). Wait for it to finish or choose another --run-dir. "
        f"If no such process runs, delete {lock}."
    )


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, kind: str = "chain") -> Iterator[str]:
    """Hold ``run_dir``'s lock for the duration of the ``with`` block; yields the token.

    ``kind`` is ``"chain"`` (a whole chain) or ``"write"`` (one artifact write, :func:`writing`).
    A lock held by another process's single write is waited for (up to :data:`WRITE_WAIT`
    seconds); a lock held by another live chain is refused at once.
    """
    lock = Path(run_dir) / LOCK_NAME
    token = secrets.token_hex(8)
    body = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "token": token,
            "kind": kind,
        }
    )
    deadline = time.monotonic() + WRITE_WAIT
    for _ in range(1000):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            info = _read(lock)
            if info is None:
                continue  # released meanwhile
            if info and _alive(info):
                if info.get("kind") == "write" and time.monotonic() < deadline:
                    time.sleep(0.05)  # another process's single write: a moment
                    continue
                raise PipelineError(_describe(info, lock)) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its owner is gone
            continue
        except OSError as err:  # a read-only or full disk, a run_dir that is a file...
            from nbutils.util import write_error

            raise write_error(lock, err, "the lock of the run directory") from None
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
    if not info or _ours(info) or not _alive(info):
        return
    raise PipelineError(_describe(info, lock))


@contextlib.contextmanager
def writing(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``run_dir``'s lock while one artifact is written into it (nothing is written yet).

    Inside the chain that holds the lock (its token in this process's environment): nothing to
    take. Held by another live chain: a :class:`~nbutils.errors.PipelineError` naming it, before
    anything is written. Free: taken for the duration of the ``with`` block. The directory is
    created when missing (:func:`nbutils.util.make_dir`).
    """
    from nbutils.util import make_dir

    run_path = make_dir(run_dir)
    if _ours(_read(run_path / LOCK_NAME)):
        yield  # our own chain's lock
        return
    with run_lock(run_path, kind="write"):
        yield
