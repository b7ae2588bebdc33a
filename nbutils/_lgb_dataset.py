"""LightGBM's low-level Dataset, built lean: used by :mod:`nbutils.train` and :mod:`nbutils.dask`.

LightGBM's ``lgb.Dataset(numpy_int8)`` first converts the whole feature matrix to float32 (and
``df[features].astype(float)`` to float64). Both engines avoid that with the same three steps,
those of LightGBM's own ``Sequence`` loader without its float64 row sample:

1. **sample**: LightGBM draws the bin-sample rows (``bin_construct_sample_cnt`` rows, seeded by
   ``data_random_seed``); their values are read one column at a time and kept as LightGBM keeps
   them, per column the non-zero values (float64) and their positions in the sample (int32)
   (:func:`sample_columns`);
2. **bins**: ``_init_from_sample`` finds the bin boundaries from that sample (on a cluster,
   LightGBM's network shares the work between machines and syncs the bins: :func:`network`);
3. **push**: the rows are pushed in float32 batches (:func:`iter_batches`, :func:`push_rows`),
   which LightGBM bins as they come.

:func:`dataset_params` gives both engines the same Dataset parameters, so that the same rows
give the same bins and hence the same model.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from lightgbm.basic import _LIB, _c_str, _safe_call

from nbutils.checks import require_columns
from nbutils.errors import DataError

#: Values LightGBM treats as zero when sampling (``lightgbm.basic.ZERO_THRESHOLD``).
ZERO_THRESHOLD = 1e-35
#: Rows converted to float32 at a time by default.
BATCH_ROWS = 4_096
#: Rows sampled to find the bins of integer features when ``bin_construct_sample_cnt`` is not
#: given (LightGBM's default, 200,000, is meant for continuous values; see ``train_lgbm``).
INT_BIN_SAMPLE_ROWS = 20_000
#: Parameters a Dataset is built with that every booster trained on it must repeat.
DATASET_KEYS = (
    "data_random_seed",
    "bin_construct_sample_cnt",
    "tree_learner",
    "num_machines",
    "pre_partition",
)


@dataclass(frozen=True)
class Network:
    """LightGBM's socket network of one distributed training run, as seen by one machine."""

    machines: str
    port: int
    n_machines: int
    timeout_minutes: int


def dataset_params(
    params: dict[str, Any], integer_features: bool = False, net: Network | None = None
) -> dict[str, Any]:
    """The parameters the Dataset is built with: the run's, with a fixed data sample seed.

    - ``seed`` is dropped and ``data_random_seed`` defaults to 1, so that every seed of a run
      trains on the same bins;
    - for integer features, ``bin_construct_sample_cnt`` defaults to :data:`INT_BIN_SAMPLE_ROWS`;
    - on a network of several machines: ``tree_learner="data"``, ``num_machines`` and
      ``pre_partition=True`` (each machine holds its own rows).
    """
    out = {k: v for k, v in params.items() if k != "seed"}
    out.setdefault("data_random_seed", 1)
    if integer_features:
        out.setdefault("bin_construct_sample_cnt", INT_BIN_SAMPLE_ROWS)
    if net is not None and net.n_machines > 1:
        out.update(tree_learner="data", num_machines=net.n_machines, pre_partition=True)
    return out


def all_integer(dtypes: Iterable[Any]) -> bool:
    """Whether every dtype is an integer dtype (Numerai's int8 bins are)."""
    return all(pd.api.types.is_integer_dtype(t) for t in dtypes)


def positions(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Column positions of ``features`` in ``df``; DataError if one is missing or names repeat."""
    require_columns(
        df,
        list(features),
        "feature columns",
        hint="apply the same FeatureSpec to every frame and pass the same feature list.",
        error=DataError,
    )
    if df.columns.has_duplicates:
        raise DataError("the frame has duplicate column names; make them unique first.")
    return df.columns.get_indexer(list(features))


def iter_batches(
    df: pd.DataFrame,
    features: Sequence[str],
    rows: np.ndarray | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[np.ndarray]:
    """float32 blocks of ``df[features]``, ``batch_rows`` rows at a time (C order).

    Only one batch exists as float32 at a time: the whole matrix is never converted, and every
    batch is written into the same buffer, so a caller uses (or copies) a batch before asking
    for the next one. The buffer is filled column by column from the frame's own arrays
    (:func:`_column_arrays`), so nothing else is held: pandas' ``df.iloc[rows, cols]
    .to_numpy(float32)`` of int8 and float64 columns first interleaves them as float64 and then
    copies twice (about 4x the float32 batch).
    """
    pos = positions(df, features)
    n = len(df) if rows is None else len(rows)
    arrays = _column_arrays(df, pos)
    buffer = np.empty((min(batch_rows, n), len(pos)), dtype=np.float32)
    for start in range(0, n, batch_rows):
        stop = min(start + batch_rows, n)
        take = slice(start, stop) if rows is None else rows[start:stop]
        batch = buffer[: stop - start]
        for j, values in enumerate(arrays):
            if values is None:  # an extension dtype: pandas converts it, missing values NaN
                values = df.iloc[take, pos[j]].to_numpy(dtype=np.float32, na_value=np.nan)
                batch[:, j] = values
            else:
                batch[:, j] = values[take]
        yield batch


def _column_arrays(df: pd.DataFrame, pos: np.ndarray) -> list[np.ndarray | None]:
    """Each column's values as the frame holds them (a view for numpy bool, integer and float
    dtypes), or None for a column pandas must convert (nullable and Arrow dtypes)."""
    out: list[np.ndarray | None] = []
    for p in pos:
        column = df.iloc[:, int(p)]
        numpy_dtype = isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf"
        out.append(column.to_numpy() if numpy_dtype else None)
    return out


def push_rows(
    ds: lgb.Dataset,
    df: pd.DataFrame,
    features: Sequence[str],
    rows: np.ndarray | None = None,
    batch_rows: int = BATCH_ROWS,
) -> None:
    """Push ``df[features]`` (the ``rows`` positions, default all) into ``ds`` in float32 batches."""
    for batch in iter_batches(df, features, rows, batch_rows):
        ds._push_rows(batch)


def sample_columns(columns: Iterable[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sampled column: its non-zero values (float64) and their sample positions (int32).

    The structure LightGBM builds internally to find bin boundaries: a value is kept when
    ``|x| > ZERO_THRESHOLD`` or it is NaN. Each item of ``columns`` is one feature's values at
    the sample rows, all of the same length.
    """
    values, indices = [], []
    order: np.ndarray | None = None
    for col in columns:
        sampled = np.asarray(col).astype(np.float64)
        if order is None:
            order = np.arange(len(sampled), dtype=np.int32)
        keep = (np.abs(sampled) > ZERO_THRESHOLD) | np.isnan(sampled)
        values.append(np.ascontiguousarray(sampled[keep]))
        indices.append(np.ascontiguousarray(order[keep]))
    return values, indices


def finish(ds: lgb.Dataset, label: np.ndarray, features: Sequence[str]) -> lgb.Dataset:
    """Set the label (float32) and the feature names of a Dataset whose rows are all pushed."""
    ds.set_label(np.asarray(label, dtype=np.float32))
    ds.set_feature_name(list(features))
    return ds


@contextlib.contextmanager
def network(net: Network) -> Iterator[None]:
    """LightGBM's network in this thread (initialized before the Dataset: bins are synced)."""
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


def add_features(ds: lgb.Dataset, other: lgb.Dataset) -> None:
    """Copy the features of ``other`` (same rows, constructed) into ``ds``: the C API's
    ``LGBM_DatasetAddFeaturesFrom`` (``Dataset.add_features_from`` also merges the raw data,
    which is freed here, and warns about it). The copy of a 4-bit feature holds its data only,
    not the push buffer LightGBM keeps in ``other`` (see :func:`nbutils.train.build_dataset`)."""
    _safe_call(_LIB.LGBM_DatasetAddFeaturesFrom(ds._handle, other._handle))
