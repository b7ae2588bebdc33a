"""The Dask cluster: connect, the optional dask imports, errors of dead workers, restarts.

Every step of :mod:`nbutils.dask` computes through :func:`compute_step` or
:func:`gather_pinned`, which turn distributed's dead-worker and lost-connection errors into
:class:`DaskEngineError` naming the step; nothing partial is returned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb

from nbutils.errors import NbutilsError
from nbutils.versions import require

if TYPE_CHECKING:  # imported lazily at run time: see optional()
    import distributed

__all__ = ["DaskEngineError", "close", "connect"]

#: Seconds between checks that the workers of a training run are still there.
_POLL_SECONDS = 0.5
_INSTALL_HINT = "pip install 'dask[dataframe]' distributed (both are in requirements.txt)"


class DaskEngineError(NbutilsError):
    """A step on the Dask cluster failed: unreachable scheduler, dead worker, lost connection."""


# -- lazy imports ---------------------------------------------------------------------------------
def optional() -> tuple[Any, Any, Any]:
    """``(dask, dask.dataframe, distributed)``, or a DaskEngineError saying how to install them."""
    try:
        import dask
        import dask.dataframe as ddf_module
        import distributed
    except ImportError as err:  # pragma: no cover - dask is a runtime requirement
        raise DaskEngineError(
            f"the Dask engine needs dask and distributed ({err}); {_INSTALL_HINT}"
        ) from err
    require("dask", "distributed")
    return dask, ddf_module, distributed


# -- errors of the cluster --------------------------------------------------------------------------
def _cluster_error_types() -> tuple[type[BaseException], ...]:
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return (KilledWorker, CommClosedError, FutureCancelledError)


def worker_lost(step: str, detail: str) -> DaskEngineError:
    return DaskEngineError(
        f"{step} failed on the Dask cluster: {detail}. No partial result was returned. A worker "
        "died (often: it ran out of memory) or lost its connection. Look at the worker logs or the "
        "dashboard, then give the workers more memory (memory_limit), use more workers or smaller "
        "partitions (blocksize), and run the step again."
    )


@contextlib.contextmanager
def engine_errors(step: str) -> Iterator[None]:
    """Re-raise distributed's dead-worker and lost-connection errors as :class:`DaskEngineError`."""
    try:
        yield
    except _cluster_error_types() as err:
        raise worker_lost(step, f"{type(err).__name__}: {err}") from err
    except lgb.basic.LightGBMError as err:
        text = str(err).lower()
        if "socket" in text or "connect" in text or "network" in text:
            raise worker_lost(
                step, f"LightGBM's network between the workers broke ({err})"
            ) from err
        raise


def compute_step(client: distributed.Client | None, objs: Sequence[Any], step: str) -> list[Any]:
    """Compute Dask collections or delayed objects on ``client`` (or the current scheduler)."""
    dask, _, _ = optional()
    with engine_errors(step):
        if client is None:
            return list(dask.compute(*objs))
        return list(client.gather(client.compute(list(objs))))


# -- the client -----------------------------------------------------------------------------------
def connect(
    scheduler: str | distributed.Client | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int | float = "auto",
    timeout: float = 10.0,
    **cluster_kwargs: Any,
) -> distributed.Client:
    """A Dask client: on an existing cluster, or on a new local one.

    Parameters
    ----------
    scheduler : str, Client or None
        The scheduler's address, e.g. ``"tcp://10.0.0.5:8786"`` (any cluster: dask-kubernetes,
        dask-jobqueue, Coiled or another cloud service all give one, as ``cluster.scheduler_address``),
        or a ``Client`` (returned as it is). ``None``: start a ``LocalCluster`` of worker processes
        on this machine (closed again by :func:`close` or ``client.close()``).
    n_workers, threads_per_worker, memory_limit :
        The ``LocalCluster``'s size (ignored with an address): ``memory_limit`` is per worker, e.g.
        ``"1GiB"``; ``"auto"`` shares the machine's memory between the workers.
    timeout : float
        Seconds to wait for the scheduler.
    **cluster_kwargs
        More ``LocalCluster`` arguments (``dashboard_address`` defaults to ``":0"``, a free port).

    Raises
    ------
    DaskEngineError
        The scheduler cannot be reached within ``timeout`` seconds.
    """
    _, _, distributed = optional()
    if isinstance(scheduler, distributed.Client):
        return scheduler
    if scheduler is None:
        cluster_kwargs.setdefault("dashboard_address", ":0")
        cluster_kwargs.setdefault("processes", True)
        return distributed.Client(
            n_workers=int(n_workers),
            threads_per_worker=int(threads_per_worker),
            memory_limit=memory_limit,
            **cluster_kwargs,
        )
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise DaskEngineError(
            f"dask_scheduler={scheduler!r} is not a scheduler address: give one such as "
            "'tcp://10.0.0.5:8786', or None for a local cluster."
        )
    try:
        return distributed.Client(scheduler.strip(), timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        raise DaskEngineError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s "
            f"({type(err).__name__}: {err}). Check the address and port (the cluster prints it as "
            "scheduler_address), that the cluster is running and that this machine may connect "
            "to it; or pass dask_scheduler=None for a local cluster."
        ) from err


def close(client: distributed.Client) -> None:
    """Close ``client``; a local cluster that :func:`connect` started is shut down with it."""
    client.close()


def worker_addresses(client: distributed.Client) -> list[str]:
    """The scheduler's current workers, asked directly.

    Not ``client.scheduler_info()``: its cached answer may be replaced at any moment by the
    client's periodic refresh, which carries no workers (distributed 2026.8).
    """
    identity = client.sync(client.scheduler.identity, n_workers=-1)
    return sorted(identity["workers"])


def gather_pinned(
    client: distributed.Client, futures: list[Any], workers: list[str], step: str
) -> list[Any]:
    """Results of tasks pinned to ``workers``; DaskEngineError as soon as one of them leaves.

    A pinned task whose worker died cannot run anywhere else: distributed would wait for that
    worker forever, so the workers are checked while waiting.
    """
    with engine_errors(step):
        while True:
            failed = [f for f in futures if f.status in ("error", "cancelled")]
            if failed:
                client.cancel(futures)
                _restart_survivors(client, workers)
                return client.gather(failed[:1])  # raises the task's error
            if all(f.status == "finished" for f in futures):
                return client.gather(futures)
            gone = sorted(set(workers) - set(worker_addresses(client)))
            if gone:
                client.cancel(futures)
                _restart_survivors(client, workers)
                raise worker_lost(step, f"worker(s) {', '.join(gone)} left the cluster")
            time.sleep(_POLL_SECONDS)


def _restart_survivors(client: distributed.Client, workers: list[str]) -> None:
    """Restart the run's workers that are still there.

    Their LightGBM thread may be blocked on the broken socket network (cancelling a Dask task
    does not stop a running thread), which would hold the worker's thread until LightGBM's
    network timeout and deadlock the next training run. Best effort: a worker without a nanny
    cannot be restarted and is left as it is.
    """
    alive = [w for w in workers if w in set(worker_addresses(client))]
    if alive:
        with contextlib.suppress(Exception):
            client.restart_workers(alive, timeout=60, raise_for_error=False)
