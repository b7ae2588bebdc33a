"""Target ensembles (notebook 08): rank per era, then average; and how the targets relate.

Numerai's advice for ensembles is to normalize each model's predictions before averaging, so
that a model whose values spread wider does not dominate. Here the normalization is the
tie-kept rank within each era, ``(rank - 0.5) / n`` (ties share their average rank; the same
transform as ``numerai_tools.scoring.tie_kept_rank`` and :func:`nbutils.submission.rank_per_era`):

    ensemble_i = sum_k w_k * r_{k,i} / sum_k w_k

with ``r_{k,i}`` the rank of row ``i`` among its era's rows in column ``k`` and ``w_k >= 0`` the
column's weight (all 1 by default). This module imports nothing from the scores, so
:mod:`nbutils.metrics` can use :func:`target_ensemble` for the benchmark ensemble of BMC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nbutils.checks import as_column_list, numeric_matrix, require_columns
from nbutils.errors import ScoringError
from nbutils.util import natural_sorted

Weights = Mapping[str, float] | Sequence[float] | None


def ensemble_weights(pred_cols: Sequence[str], weights: Weights) -> np.ndarray:
    """The weights of ``pred_cols`` as an array: all 1 when ``weights`` is None; a sequence in
    the order of ``pred_cols``; or a mapping column -> weight naming exactly those columns.

    Raises
    ------
    ScoringError
        A length or names that do not match the columns, a negative or non-finite weight, or
        weights that sum to 0.
    """
    if weights is None:
        return np.ones(len(pred_cols))
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(pred_cols))
        missing = [c for c in pred_cols if c not in weights]
        if unknown or missing:
            raise ScoringError(
                f"weights name {unknown or 'no unknown column'} not among the prediction columns "
                f"and miss {missing or 'none'}: give one weight per column of {list(pred_cols)}."
            )
        values = [weights[c] for c in pred_cols]
    else:
        values = list(weights)
        if len(values) != len(pred_cols):
            raise ScoringError(
                f"{len(values)} weights for {len(pred_cols)} prediction columns: give one weight "
                f"per column of {list(pred_cols)} (or a dict column -> weight)."
            )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ScoringError(f"weights must be numbers, got {values!r}.") from err
    if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise ScoringError(
            f"weights must be finite, non-negative and not all 0, got {values!r}: use e.g. 1 for "
            "every column (a plain average)."
        )
    return arr


def rank_columns_per_era(
    df: pd.DataFrame, pred_cols: Sequence[str], era_col: str = "era"
) -> pd.DataFrame:
    """``(rank - 0.5) / n`` of each column within each era (ties averaged), same index as ``df``.

    Raises :class:`ScoringError` for a missing era column, or prediction columns that are
    missing, not numeric, NaN or infinite (drop or fill those rows first).
    """
    cols = as_column_list(pred_cols, "prediction columns")
    require_columns(df, [era_col], "era column")
    numeric_matrix(df, cols, "prediction columns")  # refuses NaN, inf, non-numeric
    grouped = df[cols].groupby(df[era_col], sort=False)
    ranks = grouped.rank(method="average")
    counts = grouped.transform("count")
    return (ranks - 0.5) / counts


def target_ensemble(
    df: pd.DataFrame,
    pred_cols: Sequence[str],
    weights: Weights = None,
    era_col: str = "era",
) -> pd.Series:
    """The weighted average of the columns' per-era ranks (module docstring), a Series named
    ``"ensemble"`` with ``df``'s index, values strictly inside (0, 1).

    Parameters
    ----------
    df : DataFrame
        The prediction columns and the era column. Never modified.
    pred_cols : sequence of str
        The models' prediction columns (e.g. one per target).
    weights : dict, sequence or None
        One non-negative weight per column (None: all equal).
    era_col : str
        The era column: each column is ranked among its era's rows.
    """
    cols = as_column_list(pred_cols, "prediction columns")
    w = ensemble_weights(cols, weights)
    ranks = rank_columns_per_era(df, cols, era_col)
    # sum_k w_k r_k / sum_k w_k
    values = ranks.to_numpy(dtype=np.float64) @ w / w.sum()
    return pd.Series(values, index=df.index, name="ensemble")


def target_correlations(
    df: pd.DataFrame,
    targets: Sequence[str],
    main_target: str = "target",
    era_col: str = "era",
) -> pd.DataFrame:
    """How each target relates to ``main_target``: Pearson correlation over all rows
    (``all_rows``, as Numerai's target_ensemble notebook prints with ``corrwith``), and the mean
    and population standard deviation of the per-era Pearson correlations (``era_mean``,
    ``era_std``). Rows where either target is NaN are left out, pair by pair.

    Returns a DataFrame indexed by target, sorted by ``all_rows`` (largest first).
    """
    cols = as_column_list(targets, "targets")
    require_columns(df, [era_col, main_target, *cols], "era or target columns")
    rows = {}
    for col in cols:
        pair = df[[era_col, main_target, col]].dropna()
        if len(pair) < 2:
            raise ScoringError(
                f"target {col!r} has fewer than two rows where it and {main_target!r} are known: "
                "load the training data (the targets of the last eras are not known yet)."
            )
        per_era = pair.groupby(era_col, sort=False)[[main_target, col]].apply(
            lambda d, col=col: d[col].corr(d[main_target])
        )
        per_era = per_era.reindex(natural_sorted(per_era.index))
        rows[col] = {
            "all_rows": pair[col].corr(pair[main_target]),
            "era_mean": per_era.mean(),
            "era_std": per_era.std(ddof=0),
        }
    return pd.DataFrame(rows).T.sort_values("all_rows", ascending=False)
