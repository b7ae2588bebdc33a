"""Tutorial steps 2D, 2F and 3 on a Dask cluster: per-era scores and neutralization.

The frame is arranged so that each era lies whole in one partition (:func:`by_era`: no data
moves when that is already so, as in Numerai's files, else a shuffle on the era column), then
:func:`nbutils.metrics.per_era_corr` or :func:`nbutils.neutralize.neutralize` runs on each
partition. The results are those of the local engine (the same function on the same rows of
each era), eras in natural order and with the same labels: an era column of ints gives int
labels, as locally, so the two engines' results can be subtracted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbutils.checks import as_column_list, require_columns
from nbutils.dask.cluster import DaskEngineError, compute_step, optional
from nbutils.dask.read import read_split, unique_labels
from nbutils.errors import DataError
from nbutils.metrics import per_era_corr
from nbutils.neutralize import neutralize
from nbutils.util import natural_sorted

if TYPE_CHECKING:
    import dask.dataframe as dd
    import distributed

__all__ = [
    "PER_ERA_COLUMNS",
    "by_era",
    "neutralize_dask",
    "per_era_scores_dask",
    "per_era_table_dask",
]

#: Column names of the per-era table of notebook 04, by scoring method.
PER_ERA_COLUMNS = {"numerai": "numerai_corr", "spearman": "spearman", "pearson": "pearson"}


def _require(ddf: dd.DataFrame, wanted: Sequence[str], what: str) -> None:
    require_columns(list(ddf.columns), list(wanted), what, error=DataError)


# -- eras whole in partitions ---------------------------------------------------------------------
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
    dask, _, _ = optional()
    if era_col not in ddf.columns:
        raise DataError(
            f"era column {era_col!r} is not in the frame; pass era_col=... of your data."
        )
    # The check reads ddf's own partitions (all its columns): a projection such as ddf[era_col]
    # may be partitioned differently (dask combines small parquet row groups per column set).
    parts = [dask.delayed(unique_labels)(p, era_col) for p in ddf.to_delayed()]
    labels = compute_step(client, parts, "checking the era partitions")
    seen: set[str] = set()
    for part_labels in labels:
        if seen.intersection(part_labels):
            return ddf.shuffle(on=era_col)
        seen.update(part_labels)
    return ddf


# -- per-era scores and neutralization --------------------------------------------------------------
def _score_partition(
    part: pd.DataFrame, pred_col: str, target_col: str, method: str, era_col: str
) -> pd.Series:
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
    # Labels as they are (issue 13 item 10: they used to become str, where the local engine
    # keeps ints, and subtracting one engine's result from the other gave NaN).
    return out.loc[natural_sorted(out.index)]


# Deliberate repeat (the `duplicates` tool pairs it with nbutils.metrics.per_era_corr's parameter
# list): the Dask version takes the local function's parameters, in its order, plus client.
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
    dask, _, _ = optional()
    _require(ddf, [era_col, pred_col, target_col], "columns of the frame to score")
    arranged = by_era(ddf[[era_col, pred_col, target_col]], era_col, client)
    tasks = [
        dask.delayed(_score_partition)(p, pred_col, target_col, method, era_col)
        for p in arranged.to_delayed()
    ]
    step = f"per-era {method} scores"
    return _ordered(compute_step(client, tasks, step), step)


def _neutralize_partition(
    part: pd.DataFrame,
    columns: list[str],
    neutralizers: list[str],
    proportion: float,
    era_col: str | None,
) -> pd.DataFrame:
    if part.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns}, index=part.index)
    return neutralize(part, columns, neutralizers, proportion=proportion, era_col=era_col)


# Deliberate repeat (the `duplicates` tool pairs it with nbutils.neutralize.neutralize's parameter list):
# the Dask version takes the local function's parameters, in its order, plus client.
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
    dask, dd_module, _ = optional()
    cols = as_column_list(columns, "columns to neutralize")
    neut = as_column_list(neutralizers, "neutralizer columns")
    era = [] if era_col is None else [era_col]
    _require(ddf, [*era, *cols, *neut], "columns of the frame to neutralize")
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
    result = pd.concat(compute_step(client, tasks, "neutralization"))
    if arranged is sub:  # no shuffle: the partitions are in ddf's row order already
        return result
    order = compute_step(client, [ddf.index], "neutralization (row order)")[0]
    return result.loc[order]


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
