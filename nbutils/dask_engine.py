"""Steps 2C, 2D and 2F on a Dask cluster: read, train, predict, score and neutralize.

The same tutorial steps as :mod:`nbutils.train`, :mod:`nbutils.metrics` and
:mod:`nbutils.neutralize`, for data that does not fit one machine. The notebooks switch with
their ``engine`` ("local" or "dask") and ``dask_scheduler`` parameters; docs/dask.md explains
how to point them at an existing cluster.

How each step runs on the cluster:

- **read** (:func:`read_split`): ``dask.dataframe.read_parquet`` with column projection; the
  workers read the files themselves, so the dataset must sit on a path every worker sees (a
  shared filesystem, or an object-store URL such as ``s3://bucket/v5.2``). Features stay int8.
- **train** (:func:`train_lgbm_dask`): LightGBM's own distributed (data-parallel) training, one
  LightGBM process per worker, connected by LightGBM's socket network. Two ways to feed it:

  * ``method="stream"`` (default): each worker reads its share of the partitions itself, one at
    a time, and pushes the rows into its LightGBM ``Dataset`` in float32 batches (the lean
    ``Dataset`` of :func:`nbutils.train.build_dataset`, spread over machines). A worker only ever
    holds one partition plus LightGBM's binned copy of its rows (about half a byte per int8
    value), so the data may be larger than all the workers' memory put together... up to that
    binned copy. With int8 features the model equals the local one (same bins, same histograms).
  * ``method="lightgbm.dask"``: :class:`lightgbm.dask.DaskLGBMRegressor`. It holds each
    worker's partitions in Dask memory, concatenates them and converts them to float32 before
    binning (about 6.5 bytes per int8 value at its peak), so it needs several times the data's
    size in worker memory.

  Either way the result is a :class:`nbutils.train.SeedAveragedModel`, the type
  :func:`nbutils.train.train_lgbm` returns, so ``predict``, ``save_model`` and notebooks 04-06
  work on it unchanged.
- **score and neutralize** (:func:`per_era_scores_dask`, :func:`neutralize_dask`): the frame is
  arranged so that each era lies whole in one partition (:func:`by_era`: no data moves when that
  is already so, as in Numerai's files, else a shuffle on the era column), then
  :func:`nbutils.metrics.per_era_corr` or :func:`nbutils.neutralize.neutralize` runs on each
  partition. The results are those of the local engine (the same function on the same rows of
  each era), eras in natural order.

A worker that dies or loses its connection during a step raises :class:`DaskEngineError` naming
the step; nothing partial is returned.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbutils.errors import DataError, NbutilsError
from nbutils.util import natural_sorted

if TYPE_CHECKING:  # imported lazily at run time: see _dask()
    import dask.dataframe as dd
    import distributed
    import lightgbm as lgb

    from nbutils.train import SeedAveragedModel

__all__ = [
    "DaskEngineError",
    "by_era",
    "close",
    "connect",
    "neutralize_dask",
    "per_era_scores_dask",
    "per_era_table_dask",
    "predict_dask",
    "read_split",
    "train_and_predict_dask",
    "train_lgbm_dask",
]

SPLITS = ("train", "validation", "live")
METHODS = ("stream", "lightgbm.dask")
#: Column names of the per-era table of notebook 04, by scoring method.
PER_ERA_COLUMNS = {"numerai": "numerai_corr", "spearman": "spearman", "pearson": "pearson"}
_V5_FILES = {"train": "train.parquet", "validation": "validation.parquet", "live": "live.parquet"}
_LEGACY_FILES = {"train": "numerai_training_data.csv", "tournament": "numerai_tournament_data.csv"}
_LEGACY_TYPES = {"train": ("train",), "validation": ("validation",), "live": ("test", "live")}
#: Seconds between checks that the workers of a training run are still there.
_POLL_SECONDS = 0.5
_INSTALL_HINT = "pip install 'dask[dataframe]' distributed (both are in requirements.txt)"


class DaskEngineError(NbutilsError):
    """A step on the Dask cluster failed: unreachable scheduler, dead worker, lost connection."""


# -- lazy imports ---------------------------------------------------------------------------------
def _dask() -> tuple[Any, Any, Any]:
    """``(dask, dask.dataframe, distributed)``, or a DaskEngineError saying how to install them."""
    try:
        import dask
        import dask.dataframe as ddf_module
        import distributed
    except ImportError as err:  # pragma: no cover - dask is a runtime requirement
        raise DaskEngineError(
            f"the Dask engine needs dask and distributed ({err}); {_INSTALL_HINT}"
        ) from err
    return dask, ddf_module, distributed


# -- errors of the cluster --------------------------------------------------------------------------
def _cluster_error_types() -> tuple[type[BaseException], ...]:
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return (KilledWorker, CommClosedError, FutureCancelledError)


def _worker_lost(step: str, detail: str) -> DaskEngineError:
    return DaskEngineError(
        f"{step} failed on the Dask cluster: {detail}. No partial result was returned. A worker "
        "died (often: it ran out of memory) or lost its connection. Look at the worker logs or the "
        "dashboard, then give the workers more memory (memory_limit), use more workers or smaller "
        "partitions (blocksize), and run the step again."
    )


@contextlib.contextmanager
def _engine_errors(step: str) -> Iterator[None]:
    """Re-raise distributed's dead-worker and lost-connection errors as :class:`DaskEngineError`."""
    import lightgbm as lgb

    try:
        yield
    except _cluster_error_types() as err:
        raise _worker_lost(step, f"{type(err).__name__}: {err}") from err
    except lgb.basic.LightGBMError as err:
        text = str(err).lower()
        if "socket" in text or "connect" in text or "network" in text:
            raise _worker_lost(
                step, f"LightGBM's network between the workers broke ({err})"
            ) from err
        raise


def _compute(client: distributed.Client | None, objs: Sequence[Any], step: str) -> list[Any]:
    """Compute Dask collections or delayed objects on ``client`` (or the current scheduler)."""
    dask, _, _ = _dask()
    with _engine_errors(step):
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
    _, _, distributed = _dask()
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


def _worker_addresses(client: distributed.Client) -> list[str]:
    """The scheduler's current workers, asked directly.

    Not ``client.scheduler_info()``: its cached answer may be replaced at any moment by the
    client's periodic refresh, which carries no workers (distributed 2026.8).
    """
    identity = client.sync(client.scheduler.identity, n_workers=-1)
    return sorted(identity["workers"])


# -- reading --------------------------------------------------------------------------------------
def _is_url(path: str) -> bool:
    return "://" in path


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _locate(dataset_dir: str | Path, storage_options: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(layout, directory)`` of the dataset at ``dataset_dir`` (a path or a fsspec URL).

    ``dataset_dir`` is the version directory (``.../v5.2``) or the legacy round directory
    (``.../numerai_dataset_280``); a local parent directory also works (newest version wins,
    as in :func:`nbutils.data.find_dataset`).
    """
    import fsspec

    text = str(dataset_dir)
    fs, root = fsspec.core.url_to_fs(text, **dict(storage_options or {}))

    def layout_of(directory: str) -> str | None:
        if fs.exists(_join(directory, _V5_FILES["train"])) or fs.exists(
            _join(directory, "features.json")
        ):
            return "v5"
        if fs.exists(_join(directory, _LEGACY_FILES["train"])) or fs.exists(
            _join(directory, _LEGACY_FILES["tournament"])
        ):
            return "legacy"
        return None

    found = layout_of(root)
    if found is not None:
        return found, text.rstrip("/")
    if not _is_url(text) and Path(text).is_dir():
        from nbutils.data import find_dataset

        layout, path = find_dataset(text)
        return layout, str(path)
    raise DataError(
        f"no Numerai dataset at {text}: expected {_V5_FILES['train']} and features.json (v5) or "
        f"{_LEGACY_FILES['train']} (legacy) in that directory. Pass the version directory "
        "(e.g. .../v5.2) on a path every Dask worker can read."
    )


def _read_text(url: str, storage_options: Mapping[str, Any] | None) -> str:
    import fsspec

    try:
        with fsspec.open(url, "r", encoding="utf-8", **dict(storage_options or {})) as fh:
            return fh.read()
    except FileNotFoundError as err:
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.") from err


def _feature_list(
    features: str | Sequence[str] | None, directory: str, layout: str,
    storage_options: Mapping[str, Any] | None, columns: Sequence[str],
) -> list[str]:  # fmt: skip
    """The feature columns asked for: None (all), a feature-set name, or a list of columns."""
    if features is not None and not isinstance(features, str):
        return list(features)  # may be empty: read no feature at all
    if layout == "v5":
        sets = json.loads(_read_text(_join(directory, "features.json"), storage_options))[
            "feature_sets"
        ]
    else:
        from nbutils.data import legacy_feature_sets

        sets = legacy_feature_sets(list(columns))
    name = features or "all"
    if name not in sets:
        raise DataError(
            f"unknown feature set {name!r}: choose one of {sorted(sets)} or pass columns."
        )
    return list(sets[name])


def _check_columns(available: Sequence[str], wanted: Sequence[str], source: str) -> None:
    missing = [c for c in wanted if c not in set(available)]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise DataError(f"{source} has no column(s) {shown}; check features and targets.")


def read_split(
    dataset_dir: str | Path,
    split: str = "train",
    features: str | Sequence[str] | None = None,
    targets: str | Sequence[str] = ("target",),
    era_step: int = 1,
    blocksize: str | int | None = "32MiB",
    storage_options: Mapping[str, Any] | None = None,
) -> dd.DataFrame:
    """One split of a dataset as a Dask DataFrame, read by the workers (tutorial step 2A).

    The columns are ``era``, ``data_type``, the features (int8 bins 0..4) and ``targets``
    (float), indexed by ``id``: those of :func:`nbutils.data.load_data`'s frames. Only these
    columns are read (column projection).

    Parameters
    ----------
    dataset_dir : str or Path
        The dataset directory (``<data_dir>/v5.2``, or ``.../numerai_dataset_<round>``), a
        path every worker can read: a shared filesystem, or an object-store URL
        (``s3://``, ``gs://``, ``abfs://``; ``storage_options`` holds its credentials options).
    split : {"train", "validation", "live"}
        v5: the file of that name. Legacy: the training file, or the tournament file's
        ``validation`` rows, or its ``test`` and ``live`` rows (the tutorial's "test").
    features : None, str or list of str
        None: every feature; a feature-set name of ``features.json`` (``"small"``, ``"medium"``,
        a group); or the columns themselves.
    targets : str or sequence of str
        Target columns to read (``()`` for none).
    era_step : int
        Keep every ``era_step``-th era in natural order (as ``load_data``'s ``era_step``).
    blocksize : str, int or None
        Partition size: v5 row groups are combined up to about this much uncompressed data per
        partition; the CSV files are cut into blocks of this many bytes.

    Raises
    ------
    DataError
        No dataset there, an unknown split or feature set, or missing columns.

    Notes
    -----
    The legacy CSV values 0, 0.25, ..., 1 are mapped to the int8 bins 0..4 per partition
    (``round(4 x)``; a missing value becomes the middle bin 2, as ``load_data`` does).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {SPLITS}.")
    if isinstance(era_step, bool) or not isinstance(era_step, int | np.integer) or era_step < 1:
        raise DataError(
            f"era_step={era_step!r} is invalid: give an integer >= 1 (1 keeps every era)."
        )
    target_list = [targets] if isinstance(targets, str) else list(targets)
    layout, directory = _locate(dataset_dir, storage_options)
    if layout == "v5":
        ddf = _read_v5(directory, split, features, target_list, blocksize, storage_options)
    else:
        ddf = _read_legacy(directory, split, features, target_list, blocksize, storage_options)
    return _every_nth_era(ddf, int(era_step))


@dataclass(frozen=True)
class _ParquetPart:
    """One partition of a parquet file: a run of its row groups and the columns to read."""

    url: str
    row_groups: tuple[int, ...]
    columns: tuple[str, ...]
    storage_options: tuple[tuple[str, Any], ...] = ()


def _read_parquet_part(part: _ParquetPart) -> pd.DataFrame:
    """Read one partition: only its row groups and columns; index ``id`` from pandas metadata.

    ``self_destruct`` frees each Arrow column as soon as it is converted, so reading a partition
    needs about twice its size (``dask.dataframe.read_parquet`` needed some ten times as much
    on int8 files with hundreds of columns: see docs/dask.md).
    """
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(part.url, "rb", **dict(part.storage_options)) as fh:
        table = pq.ParquetFile(fh).read_row_groups(list(part.row_groups), columns=list(part.columns),
                                                   use_pandas_metadata=True)  # fmt: skip
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return frame


def _plan_parts(
    meta: Any,
    url: str,
    columns: list[str],
    blocksize: int,
    storage_options: Mapping[str, Any] | None,
) -> list[_ParquetPart]:
    """Consecutive row groups per partition, up to ``blocksize`` uncompressed bytes of ``columns``."""
    wanted = set(columns) | {"id"}
    positions = [i for i in range(meta.num_columns) if meta.schema.column(i).name in wanted]
    parts, current, size = [], [], 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        group_size = sum(group.column(i).total_uncompressed_size for i in positions)
        if current and size + group_size > blocksize:
            parts.append(current)
            current, size = [], 0
        current.append(g)
        size += group_size
    if current:
        parts.append(current)
    options = tuple(sorted(dict(storage_options or {}).items()))
    return [_ParquetPart(url, tuple(p), tuple(columns), options) for p in parts]


def _read_v5(
    directory: str, split: str, features: str | Sequence[str] | None, targets: list[str],
    blocksize: str | int | None, storage_options: Mapping[str, Any] | None,
) -> dd.DataFrame:  # fmt: skip
    """One partition per run of row groups (:func:`_plan_parts`), read by :func:`_read_parquet_part`.

    The partitioning is fixed by the row groups: selecting columns later never changes it.
    """
    import fsspec
    import pyarrow.parquet as pq
    from dask.utils import parse_bytes

    _, dd_module, _ = _dask()
    url = _join(directory, _V5_FILES[split])
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    if not fs.exists(path):
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.")
    with fs.open(path, "rb") as fh:
        parquet = pq.ParquetFile(fh)
        available, meta = parquet.schema_arrow.names, parquet.metadata
        empty = parquet.schema_arrow.empty_table()
    feature_cols = _feature_list(features, directory, "v5", storage_options, available)
    columns = ["era", "data_type", *feature_cols, *targets]
    _check_columns(available, columns, url)
    limit = parse_bytes(blocksize) if isinstance(blocksize, str) else int(blocksize or 2**62)
    parts = _plan_parts(meta, url, columns, max(limit, 1), storage_options)
    index_cols = [c for c in ("id", "__index_level_0__") if c in available]
    frame_meta = empty.select([*index_cols, *columns]).to_pandas()
    if frame_meta.index.name != "id":
        raise DataError(f"{url} has no 'id' index; write it with the ids as the frame's index.")
    ddf = dd_module.from_map(_read_parquet_part, parts, meta=frame_meta, label="read-numerai-parquet",
                             enforce_metadata=False)  # fmt: skip
    not_int8 = [c for c in feature_cols if frame_meta[c].dtype != np.int8]
    if not_int8:
        ddf = ddf.map_partitions(
            _features_to_int8, not_int8, 1.0, meta=_int8_meta(frame_meta, not_int8)
        )
    return ddf


def _read_legacy(
    directory: str, split: str, features: str | Sequence[str] | None, targets: list[str],
    blocksize: str | int | None, storage_options: Mapping[str, Any] | None,
) -> dd.DataFrame:  # fmt: skip
    import fsspec

    _, dd_module, _ = _dask()
    name = _LEGACY_FILES["train"] if split == "train" else _LEGACY_FILES["tournament"]
    url = _join(directory, name)
    try:
        with fsspec.open(url, "r", encoding="utf-8", **dict(storage_options or {})) as fh:
            header = fh.readline().strip().split(",")
    except FileNotFoundError as err:
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.") from err
    feature_cols = _feature_list(features, directory, "legacy", storage_options, header)
    columns = ["id", "era", "data_type", *feature_cols, *targets]
    _check_columns(header, columns, url)
    dtypes = {"id": "str", "era": "str", "data_type": "str"}
    dtypes.update(dict.fromkeys(feature_cols, "float32"))
    dtypes.update(dict.fromkeys(targets, "float32"))
    ddf = dd_module.read_csv(
        url,
        usecols=columns,
        dtype=dtypes,
        blocksize=blocksize,
        storage_options=dict(storage_options or {}),
    )
    ddf = ddf[ddf["data_type"].isin(list(_LEGACY_TYPES[split]))]
    meta = _int8_meta(ddf._meta.set_index("id"), feature_cols)[
        ["era", "data_type", *feature_cols, *targets]
    ]
    return ddf.map_partitions(_legacy_partition, feature_cols, targets, meta=meta)


def _int8_meta(meta: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = meta.copy()
    for c in columns:
        out[c] = out[c].astype(np.int8)
    return out


def _features_to_int8(part: pd.DataFrame, columns: Sequence[str], scale: float) -> pd.DataFrame:
    """Feature values to the int8 bins 0..4 (:func:`nbutils.data.to_int8_bins`)."""
    from nbutils.data import to_int8_bins

    out = part.copy()
    for c in columns:
        values = out[c].to_numpy(dtype=np.float64, na_value=np.nan)
        out[c] = to_int8_bins(values, scale, f"column {c!r}")
    return out


def _legacy_partition(
    part: pd.DataFrame, features: Sequence[str], targets: Sequence[str]
) -> pd.DataFrame:
    """One block of a legacy CSV: id index, int8 features (``round(4 x)``)."""
    out = part.set_index("id")[["era", "data_type", *features, *targets]]
    return _features_to_int8(out, features, 4.0)


def _every_nth_era(ddf: dd.DataFrame, era_step: int) -> dd.DataFrame:
    if era_step == 1:
        return ddf
    dask, _, _ = _dask()
    parts = [dask.delayed(_unique_labels)(p, "era") for p in ddf[["era"]].to_delayed()]
    eras = natural_sorted(
        {e for labels in _compute(None, parts, "listing the eras") for e in labels}
    )
    return ddf[ddf["era"].isin(eras[::era_step])]


# -- eras whole in partitions ---------------------------------------------------------------------
def _unique_labels(part: pd.DataFrame, era_col: str) -> list[str]:
    return [str(v) for v in pd.unique(part[era_col])]


def by_era(
    ddf: dd.DataFrame, era_col: str = "era", client: distributed.Client | None = None
) -> dd.DataFrame:
    """``ddf`` arranged so that the rows of each era lie in one partition.

    Numerai's files are written era by era, so this usually holds already and ``ddf`` is
    returned as it is (one pass over ``ddf`` checks it); otherwise the rows are shuffled on
    ``era_col`` (hash partitioning: every era goes whole to one partition).

    Use the partitions of the result as they are (``to_delayed()``): a column selection of it
    may be partitioned differently.
    """
    dask, _, _ = _dask()
    if era_col not in ddf.columns:
        raise DataError(
            f"era column {era_col!r} is not in the frame; pass era_col=... of your data."
        )
    # The check reads ddf's own partitions (all its columns): a projection such as ddf[era_col]
    # may be partitioned differently (dask combines small parquet row groups per column set).
    parts = [dask.delayed(_unique_labels)(p, era_col) for p in ddf.to_delayed()]
    labels = _compute(client, parts, "checking the era partitions")
    seen: set[str] = set()
    for part_labels in labels:
        if seen.intersection(part_labels):
            return ddf.shuffle(on=era_col)
        seen.update(part_labels)
    return ddf


# -- training -------------------------------------------------------------------------------------
def train_lgbm_dask(
    client: distributed.Client,
    ddf: dd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    method: str = "stream",
    network_timeout_minutes: int = 5,
    batch_rows: int = 16_384,
) -> SeedAveragedModel:
    """Train LightGBM on the cluster (tutorial step 2C); returns a local model.

    One booster per seed (``seed`` replaces ``random_state``), as :func:`nbutils.train.train_lgbm`:
    with :data:`nbutils.train.SEED_PARAMS` and one seed, the tutorial's model. Rows whose
    ``target`` is NaN are left out.

    Parameters
    ----------
    client : distributed.Client
        From :func:`connect`.
    ddf : dask.dataframe.DataFrame
        Training rows, e.g. ``read_split(dataset_dir, "train")``; lazy (not persisted) for
        ``method="stream"``, whose workers read the partitions themselves.
    features : sequence of str
        Feature columns, in model order.
    target : str
        Target column.
    params : dict, optional
        sklearn-style LightGBM parameters (default :data:`nbutils.train.SEED_PARAMS`).
    seeds : sequence of int
        One booster per seed.
    method : {"stream", "lightgbm.dask"}
        How the workers feed LightGBM (module docstring): ``"stream"`` reads one partition at a
        time (data larger than the workers' memory); ``"lightgbm.dask"`` uses
        ``lightgbm.dask.DaskLGBMRegressor``.
    network_timeout_minutes : int
        LightGBM's socket time-out between the workers (``"stream"``).
    batch_rows : int
        Rows converted to float32 at a time (``"stream"``).

    Returns
    -------
    nbutils.train.SeedAveragedModel
        The boosters, brought back to this process (``booster_`` of ``to_local()`` for
        ``"lightgbm.dask"``).

    Raises
    ------
    DaskEngineError
        A worker died or lost its connection during training.
    DataError
        Missing columns, no labelled rows, unknown method or empty seeds.
    """
    from nbutils.train import SEED_PARAMS, SeedAveragedModel

    if method not in METHODS:
        raise DataError(f"unknown training method {method!r}: use one of {METHODS}.")
    features = list(features)
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise DataError("seeds is empty; pass at least one seed, e.g. seeds=(0,).")
    _check_columns(list(ddf.columns), [*features, target], "the training frame")
    run_params = dict(SEED_PARAMS if params is None else params)
    data = ddf[[*features, target]]
    data = data[data[target].notnull()]
    if method == "lightgbm.dask":
        boosters = _train_lightgbm_dask(client, data, features, target, run_params, seed_list)
    else:
        boosters = _train_stream(
            client,
            data,
            features,
            target,
            run_params,
            seed_list,
            network_timeout_minutes,
            batch_rows,
        )
    return SeedAveragedModel(boosters, features, seed_list)


def _train_lightgbm_dask(
    client: distributed.Client, data: dd.DataFrame, features: list[str], target: str,
    params: dict[str, Any], seeds: list[int],
) -> list[lgb.Booster]:  # fmt: skip
    """One ``DaskLGBMRegressor`` per seed; each brought back with ``to_local().booster_``."""
    from lightgbm.dask import DaskLGBMRegressor

    from nbutils.train import lgb_params

    boosters = []
    for seed in seeds:
        run, rounds = lgb_params(params, seed)
        run.pop("seed")
        model = DaskLGBMRegressor(client=client, n_estimators=rounds, random_state=seed, **run)
        with _engine_errors(f"training (DaskLGBMRegressor, seed {seed})"):
            model.fit(*_aligned_xy(data, features, target))
        boosters.append(model.to_local().booster_)
    return boosters


def _columns(part: pd.DataFrame, columns: Any) -> pd.DataFrame | pd.Series:
    return part[columns]


def _aligned_xy(
    data: dd.DataFrame, features: list[str], target: str
) -> tuple[dd.DataFrame, dd.Series]:
    """``data[features]`` and ``data[target]`` with the same partitions.

    Selected inside ``map_partitions``: a plain column selection lets dask re-plan how parquet
    row groups are combined per column set, and ``DaskLGBMRegressor`` pairs the partitions of
    X and y one to one.
    """
    x = data.map_partitions(_columns, features, meta=data._meta[features])
    y = data.map_partitions(_columns, target, meta=data._meta[target])
    return x, y


@dataclass(frozen=True)
class _Recipe:
    """How to compute one partition on a worker: a culled task graph and its output key.

    A plain container that Dask does not look into, so the partition is *not* computed as a
    dependency of the training task: the worker computes it itself, when it needs it.
    """

    graph: dict
    key: Any

    def compute(self) -> pd.DataFrame:
        from dask.local import get_sync

        return get_sync(self.graph, self.key)


def _recipes(data: dd.DataFrame) -> list[_Recipe]:
    from dask.optimization import cull

    out = []
    for part in data.to_delayed(optimize_graph=True):
        graph, _ = cull(dict(part.__dask_graph__()), [part.key])
        out.append(_Recipe(graph, part.key))
    return out


def _count_rows(recipe: _Recipe) -> int:
    n = len(recipe.compute())
    _release_memory()
    return n


def _labelled_counts(client: distributed.Client, recipes: Sequence[_Recipe]) -> list[int]:
    """Rows of each partition, computed from the very recipes the training reads."""
    with _engine_errors("counting the training rows"):
        futures = [client.submit(_count_rows, r, pure=False) for r in recipes]
        return [int(c) for c in client.gather(futures)]


def _assign(counts: Sequence[int], n_workers: int) -> list[list[int]]:
    """Non-empty partitions to at most ``n_workers`` machines, largest first to the least loaded.

    Each machine's list is in partition order.
    """
    nonempty = [i for i, c in enumerate(counts) if c > 0]
    n = min(n_workers, len(nonempty))
    loads, groups = [0] * n, [[] for _ in range(n)]
    for i in sorted(nonempty, key=lambda i: -counts[i]):
        m = loads.index(min(loads))
        groups[m].append(i)
        loads[m] += counts[i]
    return [sorted(g) for g in groups]


def _free_port() -> int:
    """A TCP port that is free on this worker now (LightGBM binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _train_stream(
    client: distributed.Client, data: dd.DataFrame, features: list[str], target: str,
    params: dict[str, Any], seeds: list[int], timeout_minutes: int, batch_rows: int,
) -> list[lgb.Booster]:  # fmt: skip
    """LightGBM data-parallel training, each worker streaming its partitions into its Dataset."""
    import lightgbm as lgb
    from distributed.comm import get_address_host

    recipes = _recipes(data)
    counts = _labelled_counts(client, recipes)
    if sum(counts) == 0:
        raise DataError(
            f"no training rows with a {target!r} value; check the target column and era_step."
        )
    workers = _worker_addresses(client)
    if not workers:
        raise DaskEngineError(
            "the Dask cluster has no workers; start some (or wait for them) and retry."
        )
    groups = _assign(counts, len(workers))
    chosen = workers[: len(groups)]
    with _engine_errors("training (finding free ports)"):
        ports = client.run(_free_port, workers=chosen)
    machines = ",".join(f"{get_address_host(w)}:{ports[w]}" for w in chosen)
    run_id = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            _stream_train_task,
            [recipes[i] for i in group],
            [counts[i] for i in group],
            features,
            target,
            params,
            seeds,
            _Network(machines, ports[w], len(chosen), int(timeout_minutes)),
            rank == 0,
            batch_rows,
            key=f"nbutils-train-{run_id}-{rank}",
            workers=[w],
            allow_other_workers=False,
            pure=False,
        )
        for rank, (w, group) in enumerate(zip(chosen, groups, strict=True))
    ]
    texts = _gather_pinned(client, futures, chosen, "training (LightGBM on the workers)")[0]
    return [lgb.Booster(model_str=t) for t in texts]


def _gather_pinned(
    client: distributed.Client, futures: list[Any], workers: list[str], step: str
) -> list[Any]:
    """Results of tasks pinned to ``workers``; DaskEngineError as soon as one of them leaves.

    A pinned task whose worker died cannot run anywhere else: distributed would wait for that
    worker forever, so the workers are checked while waiting.
    """
    with _engine_errors(step):
        while True:
            failed = [f for f in futures if f.status in ("error", "cancelled")]
            if failed:
                client.cancel(futures)
                _restart_survivors(client, workers)
                return client.gather(failed[:1])  # raises the task's error
            if all(f.status == "finished" for f in futures):
                return client.gather(futures)
            gone = sorted(set(workers) - set(_worker_addresses(client)))
            if gone:
                client.cancel(futures)
                _restart_survivors(client, workers)
                raise _worker_lost(step, f"worker(s) {', '.join(gone)} left the cluster")
            time.sleep(_POLL_SECONDS)


def _restart_survivors(client: distributed.Client, workers: list[str]) -> None:
    """Restart the run's workers that are still there.

    Their LightGBM thread may be blocked on the broken socket network (cancelling a Dask task
    does not stop a running thread), which would hold the worker's thread until LightGBM's
    network timeout and deadlock the next training run. Best effort: a worker without a nanny
    cannot be restarted and is left as it is.
    """
    alive = [w for w in workers if w in set(_worker_addresses(client))]
    if alive:
        with contextlib.suppress(Exception):
            client.restart_workers(alive, timeout=60, raise_for_error=False)


@dataclass(frozen=True)
class _Network:
    """LightGBM's socket network of one training run, as seen by one machine."""

    machines: str
    port: int
    n_machines: int
    timeout_minutes: int


@contextlib.contextmanager
def _lightgbm_network(net: _Network) -> Iterator[None]:
    """Initialize LightGBM's network in this thread (before the Dataset: bins are synced)."""
    from lightgbm.basic import _LIB, _c_str, _safe_call

    if net.n_machines > 1:
        _safe_call(
            _LIB.LGBM_NetworkInit(
                _c_str(net.machines),
                ctypes.c_int(net.port),
                ctypes.c_int(net.timeout_minutes),
                ctypes.c_int(net.n_machines),
            )
        )
    try:
        yield
    finally:
        if net.n_machines > 1:
            _safe_call(_LIB.LGBM_NetworkFree())


def _stream_dataset_params(params: dict[str, Any], net: _Network) -> dict[str, Any]:
    """The Dataset parameters of :func:`nbutils.train.train_lgbm`, plus the distributed ones."""
    from nbutils.train import INT_BIN_SAMPLE_ROWS

    out = {k: v for k, v in params.items() if k != "seed"}
    out.setdefault("data_random_seed", 1)
    out.setdefault("bin_construct_sample_cnt", INT_BIN_SAMPLE_ROWS)
    if net.n_machines > 1:
        out.update(tree_learner="data", num_machines=net.n_machines, pre_partition=True)
    return out


def _release_memory() -> None:
    """Give freed memory back to the OS (Arrow's pool and glibc's heap keep it otherwise).

    Without this a worker's resident memory creeps up partition after partition, by about the
    size of the largest partition read so far, and counts against its memory limit.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _iter_parts(recipes: Sequence[_Recipe], counts: Sequence[int]) -> Iterator[pd.DataFrame]:
    """The partitions, computed one at a time on this worker, with their counted row numbers."""
    for recipe, expected in zip(recipes, counts, strict=True):
        part = recipe.compute()
        if len(part) != expected:
            raise DaskEngineError(
                f"a training partition has {len(part)} labelled rows, {expected} when counted: "
                "the data changed during training; run the training again."
            )
        yield part
        del part
        _release_memory()


def _sample_columns(
    recipes: Sequence[_Recipe], counts: Sequence[int], sample: np.ndarray, features: list[str]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per feature: the non-zero sampled values (float64) and their sample positions (int32).

    The sample rows (positions among this machine's labelled rows, sorted) are read partition
    by partition; the same structure :func:`nbutils.train.build_dataset` gives LightGBM.
    """
    blocks, offset = [], 0
    for part in _iter_parts(recipes, counts):
        lo, hi = np.searchsorted(sample, [offset, offset + len(part)])
        if hi > lo:
            blocks.append(part[features].to_numpy()[sample[lo:hi] - offset])
        offset += len(part)
    rows = np.concatenate(blocks)
    order = np.arange(len(rows), dtype=np.int32)
    values, indices = [], []
    for j in range(rows.shape[1]):
        col = rows[:, j].astype(np.float64)
        keep = (np.abs(col) > 1e-35) | np.isnan(col)
        values.append(np.ascontiguousarray(col[keep]))
        indices.append(np.ascontiguousarray(order[keep]))
    return values, indices


def _stream_train_task(
    recipes: list[_Recipe], counts: list[int], features: list[str], target: str,
    params: dict[str, Any], seeds: list[int], net: _Network, return_model: bool, batch_rows: int,
) -> list[str] | None:  # fmt: skip
    """On one worker: build this machine's LightGBM Dataset from its partitions, then train.

    1. join LightGBM's network (every machine of the run does, at the same time);
    2. draw the bin sample among this machine's rows; read those rows, partition by partition;
    3. find the bins (LightGBM shares the work between machines and syncs them);
    4. read the partitions again, pushing their rows in float32 batches; set the label;
    5. train one booster per seed (data-parallel: histograms summed over the machines).

    Returns the boosters' model texts on rank 0 (all machines hold the same model), else None.
    """
    import lightgbm as lgb

    from nbutils.train import iter_batches, lgb_params

    n_rows = int(sum(counts))
    base, _ = lgb_params(params, seeds[0])
    ds_params = _stream_dataset_params(base, net)
    with _lightgbm_network(net):
        ds = lgb.Dataset(None, params=dict(ds_params), free_raw_data=True)
        sample = np.sort(ds._create_sample_indices(total_nrow=n_rows))
        values, indices = _sample_columns(recipes, counts, sample, features)
        ds._init_from_sample(values, indices, len(sample), n_rows)
        del values, indices
        labels = np.empty(n_rows, dtype=np.float32)
        start = 0
        for part in _iter_parts(recipes, counts):
            for batch in iter_batches(part, features, batch_rows=batch_rows):
                ds._push_rows(batch)
            labels[start : start + len(part)] = part[target].to_numpy(dtype=np.float32)
            start += len(part)
            del part
        ds.set_label(labels)
        ds.set_feature_name(list(features))
        texts = []
        for seed in seeds:
            run, rounds = lgb_params(params, seed)
            for key in ("data_random_seed", "bin_construct_sample_cnt", "tree_learner", "num_machines",
                        "pre_partition"):  # fmt: skip
                if key in ds_params:
                    run[key] = ds_params[key]
            booster = lgb.train(run, ds, num_boost_round=rounds)
            texts.append(booster.model_to_string())
    return texts if return_model else None


# -- prediction -----------------------------------------------------------------------------------
def _predict_partition(part: pd.DataFrame, model: SeedAveragedModel) -> pd.Series:
    from nbutils.train import predict

    return predict(model, part)


def predict_dask(
    model: SeedAveragedModel, ddf: dd.DataFrame, features: Sequence[str] | None = None
) -> dd.Series:
    """Predictions of ``model`` for every row of ``ddf``, partition by partition (lazy).

    Each partition gets :func:`nbutils.train.predict` (the mean over the model's boosters), so
    the values equal the local engine's bit for bit. ``features`` must equal ``model.features``
    when given. Compute the result (``.compute()``) or write it (``.to_parquet``).
    """
    if features is not None and list(features) != list(model.features):
        raise DataError(
            "the feature list differs from the one the model was trained on; "
            "apply the same FeatureSpec and pass model.features."
        )
    _check_columns(list(ddf.columns), model.features, "the frame to predict")
    meta = pd.Series([], dtype="float64", name="prediction", index=ddf._meta.index)
    return ddf[list(model.features)].map_partitions(_predict_partition, model, meta=meta)


# -- per-era scores and neutralization --------------------------------------------------------------
def _score_partition(
    part: pd.DataFrame, pred_col: str, target_col: str, method: str, era_col: str
) -> pd.Series:
    from nbutils.metrics import per_era_corr

    if part.empty:
        return pd.Series([], dtype="float64")
    return per_era_corr(
        part, pred_col=pred_col, target_col=target_col, method=method, era_col=era_col
    )


def _ordered(pieces: list[pd.Series | pd.DataFrame], step: str) -> pd.Series | pd.DataFrame:
    kept = [p for p in pieces if len(p)]
    if not kept:
        raise DataError(
            f"{step}: no era to score (the frame is empty after dropping NaN targets?)."
        )
    out = pd.concat(kept)
    if out.index.has_duplicates:  # cannot happen after by_era: a guard against silent errors
        raise DaskEngineError(f"{step}: an era was split between partitions; please report this.")
    labels = natural_sorted(out.index)
    out = out.loc[labels]
    out.index = pd.Index([str(v) for v in labels], dtype="str", name=out.index.name)
    return out


def per_era_scores_dask(
    ddf: dd.DataFrame,
    pred_col: str = "prediction",
    target_col: str = "target",
    method: str = "numerai",
    era_col: str = "era",
    client: distributed.Client | None = None,
) -> pd.Series:
    """Per-era correlation computed on the cluster, era by era (tutorial steps 2D and 3).

    :func:`nbutils.metrics.per_era_corr` (``method`` "numerai", "spearman" or "pearson"; rows
    with a NaN target left out) runs on each partition of :func:`by_era`'s frame, where every
    era is whole; the per-era values are therefore the local engine's. Returns a Series indexed
    by era in natural order.

    Raises
    ------
    DaskEngineError
        A worker died during the computation.
    """
    dask, _, _ = _dask()
    from nbutils.metrics import per_era_corr  # noqa: F401 - fail here, not on a worker

    _check_columns(list(ddf.columns), [era_col, pred_col, target_col], "the frame to score")
    arranged = by_era(ddf[[era_col, pred_col, target_col]], era_col, client)
    tasks = [
        dask.delayed(_score_partition)(p, pred_col, target_col, method, era_col)
        for p in arranged.to_delayed()
    ]
    step = f"per-era {method} scores"
    return _ordered(_compute(client, tasks, step), step)


def _neutralize_partition(
    part: pd.DataFrame, columns: list[str], neutralizers: list[str], proportion: float,
    era_col: str | None,
) -> pd.DataFrame:  # fmt: skip
    from nbutils.neutralize import neutralize

    if part.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns}, index=part.index)
    return neutralize(part, columns, neutralizers, proportion=proportion, era_col=era_col)


def neutralize_dask(
    ddf: dd.DataFrame,
    columns: str | Sequence[str],
    neutralizers: str | Sequence[str],
    proportion: float = 1.0,
    era_col: str | None = "era",
    client: distributed.Client | None = None,
    compute: bool = True,
) -> pd.DataFrame | dd.DataFrame:
    """Neutralize ``columns`` against ``neutralizers`` on the cluster, era by era (step 2F).

    :func:`nbutils.neutralize.neutralize` (per era: ``y - proportion * [X, 1] @ lstsq([X, 1], y)``)
    runs on each partition of :func:`by_era`'s frame, so the values are the local engine's.
    ``era_col=None`` (the whole frame as one block) needs every row in one partition.

    Parameters
    ----------
    compute : bool
        True: a pandas DataFrame in ``ddf``'s row order (the neutralized columns, float64,
        indexed by id). False: the lazy Dask DataFrame, rows grouped by era.

    Raises
    ------
    DaskEngineError
        A worker died during the computation.
    """
    dask, dd_module, _ = _dask()
    cols = [columns] if isinstance(columns, str) else list(columns)
    neut = [neutralizers] if isinstance(neutralizers, str) else list(neutralizers)
    era = [] if era_col is None else [era_col]
    _check_columns(list(ddf.columns), [*era, *cols, *neut], "the frame to neutralize")
    sub = ddf[list(dict.fromkeys([*era, *cols, *neut]))]
    arranged = sub.repartition(npartitions=1) if era_col is None else by_era(sub, era_col, client)
    tasks = [
        dask.delayed(_neutralize_partition)(p, cols, neut, float(proportion), era_col)
        for p in arranged.to_delayed()
    ]
    if not compute:
        meta = pd.DataFrame(
            {c: pd.Series([], dtype="float64") for c in cols}, index=ddf._meta.index
        )
        return dd_module.from_delayed(tasks, meta=meta, verify_meta=False)
    result = pd.concat(_compute(client, tasks, "neutralization"))
    if arranged is sub:  # no shuffle: the partitions are in ddf's row order already
        return result
    order = _compute(client, [ddf.index], "neutralization (row order)")[0]
    return result.loc[order]


# -- one call per notebook -------------------------------------------------------------------------
def _apply_spec(part: pd.DataFrame, spec: Any, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    return spec.apply(part, groups)[0]


def apply_feature_spec_dask(
    ddf: dd.DataFrame, spec: Any, groups: Mapping[str, Sequence[str]]
) -> tuple[dd.DataFrame, list[str]]:
    """``spec.apply`` (a :class:`nbutils.features.FeatureSpec`, tutorial 2B) on each partition.

    Group statistics and interactions are computed row by row, so partition by partition is
    the same as on the whole frame. Returns the new frame and the engineered column names.
    """
    meta, _ = spec.apply(ddf._meta, groups)
    return ddf.map_partitions(_apply_spec, spec, dict(groups), meta=meta), spec.new_columns(groups)


def train_and_predict_dask(
    client: distributed.Client,
    dataset_dir: str | Path,
    features: Sequence[str],
    target: str = "target",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    era_step: int = 1,
    feature_spec: Any = None,
    feature_groups: Mapping[str, Sequence[str]] | None = None,
    method: str = "stream",
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[SeedAveragedModel, pd.DataFrame]:
    """Notebook 03 on the cluster: train on ``train``, predict ``validation`` and ``live``.

    Parameters
    ----------
    dataset_dir : str or Path
        ``data.json``'s ``dataset_dir``, on a path every worker can read.
    features : sequence of str
        The raw feature columns (``data.json``'s ``features``).
    feature_spec, feature_groups :
        Notebook 02's :class:`~nbutils.features.FeatureSpec` and the feature groups; its
        columns are added partition by partition and used as features too.

    Returns
    -------
    (SeedAveragedModel, pd.DataFrame)
        The model (save it with :func:`nbutils.train.save_model`) and the predictions frame of
        ``predictions.parquet``: index id; columns era, data_type, prediction.
    """
    splits = {}
    for split in SPLITS:
        frame = read_split(
            dataset_dir, split, features=list(features), targets=(target,) if split != "live" else (),
            era_step=era_step if split == "train" else 1, storage_options=storage_options,
        )  # fmt: skip
        if split == "live":
            frame = frame.assign(**{target: np.float32(np.nan)})
        model_features = list(features)
        if feature_spec is not None:
            frame, new = apply_feature_spec_dask(frame, feature_spec, feature_groups or {})
            model_features += new
        splits[split] = frame
    model = train_lgbm_dask(client, splits["train"], model_features, target, params, seeds, method)
    outputs = [
        splits[s][["era", "data_type"]].assign(prediction=predict_dask(model, splits[s]))
        for s in ("validation", "live")
    ]
    frames = _compute(client, outputs, "prediction")
    predictions = pd.concat(frames)
    predictions.index = pd.Index(predictions.index.astype(str), name="id")
    return model, predictions


def per_era_table_dask(
    client: distributed.Client,
    dataset_dir: str | Path,
    predictions: pd.DataFrame | pd.Series,
    target: str = "target",
    methods: Sequence[str] = ("numerai", "spearman", "pearson"),
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Notebook 04's per-era table on the cluster: validation targets joined to the predictions.

    ``predictions`` is ``predictions.parquet`` (or its ``prediction`` column), indexed by id;
    validation rows without a prediction or a target are left out. Columns ``numerai_corr``,
    ``spearman``, ``pearson`` (as notebook 04), indexed by era in natural order.
    """
    pred = predictions["prediction"] if isinstance(predictions, pd.DataFrame) else predictions
    pred = pred.rename("prediction")
    valid = read_split(
        dataset_dir, "validation", features=[], targets=(target,), storage_options=storage_options
    )
    valid = valid[["era", target]]
    joined = valid.map_partitions(
        _join_prediction, pred, meta=valid._meta.assign(prediction=np.float64(0))
    )
    joined = joined[joined["prediction"].notnull() & joined[target].notnull()]
    table = {
        PER_ERA_COLUMNS.get(m, m): per_era_scores_dask(
            joined, "prediction", target, m, "era", client
        )
        for m in methods
    }
    return pd.DataFrame(table)


def _join_prediction(part: pd.DataFrame, pred: pd.Series) -> pd.DataFrame:
    return part.assign(prediction=pred.reindex(part.index).to_numpy(dtype=np.float64))
