"""Tutorial step 2F: neutralization, per era against features or as one block.

``neutralize`` removes from each prediction column its least-squares fit on the neutralizer
columns plus a constant column, times ``proportion``. It is
``numerai_tools.scoring.neutralize`` applied era by era, on the raw column values: like
numerai-tools it does **not** rank, gaussianize or standardize anything before or after (rank the
result yourself if you need a submission in [0, 1]; the FNC score in ``nbutils.metrics`` does the
ranking and gaussianizing steps of ``numerai_tools.scoring.feature_neutral_corr``).

How it is computed, and why it equals numerai-tools. numerai-tools calls
``np.linalg.lstsq([X, 1], y, rcond=1e-6)`` (an SVD per era). For every era whose matrix
``A = [X, 1]`` is well conditioned the least-squares projection is unique, so we compute the same
projection faster, through the normal equations: the constant column is taken out by centering,
the centered Gram matrix ``Xc'Xc`` (exact, from one float32 BLAS ``syrk``, for int8 features) is
scaled to unit diagonal and factored by Cholesky, all prediction columns are solved at once, and
iterative refinement runs where the scaled matrix is ill conditioned (agreement to about 1e-13 in
tests). Only the era's rows are converted to float, never the whole feature matrix. An era goes
to exactly numerai-tools' ``lstsq`` call unless ``cond2(A) <= 1e5`` (ten times below lstsq's
cut-off) is established by a bound on ``cond1(A'A)`` (exact in the direction of the constant
column, LAPACK's condition estimate of the scaled Gram matrix elsewhere): duplicated or collinear
neutralizers, fewer rows than columns, a condition number near ``rcond=1e-6``. Neutralizer
columns that are constant within an era lie in the span of the constant column, so they do not
change the projection; they are dropped from the fast path. That fast path, the readable part of
which is this module's :func:`fit_by_era` loop, lives in the private module
:mod:`nbutils._least_squares` beside it (its notes give the condition bound in full).

Eras are grouped by :mod:`nbutils.eras` and inputs checked by :mod:`nbutils.checks`, as
everywhere in nbutils.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from nbutils._least_squares import Workspace, abs_max, exact_float32_scale, fit_block
from nbutils.checks import (
    ScoringWarning,
    as_column_list,
    check_proportion,
    numeric_matrix,
)
from nbutils.eras import EraGroups, era_groups
from nbutils.errors import ScoringError

__all__ = ["EraGroups", "ScoringWarning", "era_groups", "fit_by_era", "neutralize"]


def neutralize(
    df: pd.DataFrame,
    columns: str | Sequence[str],
    neutralizers: str | Sequence[str],
    proportion: float = 1.0,
    era_col: str | None = "era",
) -> pd.DataFrame:
    """Neutralize ``columns`` against ``neutralizers`` era by era (tutorial step 2F).

    Per era, with ``X`` the neutralizer values and ``y`` one column::

        fitted = [X, 1] @ lstsq([X, 1], y)        # least squares with a constant column
        result = y - proportion * fitted

    This is ``numerai_tools.scoring.neutralize(df[columns], df[neutralizers], proportion)``
    applied to each era (``era_col=None``: to the whole frame as one block, as the tutorial
    neutralizes against example predictions). Values are used as they are: nothing is ranked,
    gaussianized or rescaled. With ``proportion=1`` each result column has mean 0 and zero
    Pearson correlation with every neutralizer within each era.

    Parameters
    ----------
    df : pd.DataFrame
        Frame holding ``columns``, ``neutralizers`` and ``era_col``. Never modified.
    columns : str or sequence of str
        Column(s) to neutralize, e.g. ``"prediction"``.
    neutralizers : str or sequence of str
        Column(s) to neutralize against: feature columns, or ``"example_prediction"``.
    proportion : float, default 1.0
        Share of the fitted part to remove, in [0, 1]; 0 returns the columns unchanged.
    era_col : str or None, default "era"
        Column with the era labels; ``None`` treats the frame as one block.

    Returns
    -------
    pd.DataFrame
        The neutralized ``columns`` (float64), same index and row order as ``df``.

    Raises
    ------
    ScoringError
        Missing or non-numeric columns, NaN in ``columns`` or ``neutralizers``, a
        ``proportion`` outside [0, 1], or a column that is also a neutralizer.

    Warns
    -----
    ScoringWarning
        For each column that is constant within an era: those values become NaN (numerai-tools
        does the same, since a constant column has nothing left to neutralize).

    Notes
    -----
    Neutralizer columns that are constant within an era, or collinear with others, are allowed:
    the projection onto their span is unchanged (numerai-tools' ``lstsq`` with ``rcond=1e-6``
    drops them the same way).
    """
    cols = as_column_list(columns, "columns to neutralize")
    neut = as_column_list(neutralizers, "neutralizer columns")
    proportion = check_proportion(proportion)
    overlap = sorted(set(cols) & set(neut))
    if overlap:
        raise ScoringError(
            f"Columns {overlap} are both neutralized and neutralizers; the result would be 0. "
            "Remove them from one of the two lists."
        )
    y = numeric_matrix(df, cols, "columns to neutralize").astype(np.float64)
    x = numeric_matrix(df, neut, "neutralizers")
    groups = era_groups(df, era_col)
    fitted = fit_by_era(y, x, groups, names=cols)
    out = y - proportion * fitted
    return pd.DataFrame(out, index=df.index, columns=cols)


def fit_by_era(
    y: np.ndarray, x: np.ndarray, groups: EraGroups, names: Sequence[str] | None = None
) -> np.ndarray:
    """Least-squares fit of each column of ``y`` on ``[x, 1]``, era by era.

    Parameters
    ----------
    y : np.ndarray
        ``(n_rows, n_cols)`` float64 values to fit, no NaN.
    x : np.ndarray
        ``(n_rows, n_neutralizers)`` numeric neutralizers (any numeric dtype), no NaN.
    groups : EraGroups
        The eras of the rows.
    names : sequence of str, optional
        Names of ``y``'s columns, for warnings.

    Returns
    -------
    np.ndarray
        ``[x, 1] @ lstsq([x, 1], y)`` computed per era; NaN where a ``y`` column is constant
        within an era of two rows or more (with a :class:`ScoringWarning`).
    """
    fitted = np.full(y.shape, np.nan)
    counts = groups.counts
    x_bound = abs_max(x)  # one pass over x; shared by every era
    gram_scale = exact_float32_scale(x, int(counts.max()) if len(counts) else 0, x_bound)
    work = Workspace()  # the Gram matrix's buffers, reused era after era
    constant_eras: dict[int, list] = {}
    for g, rows in _era_rows(groups):
        if _n_rows(rows) == 0:
            continue
        yg = y[rows]
        constant = _constant_columns(yg) if len(yg) > 1 else np.zeros(y.shape[1], dtype=bool)
        if not constant.all():
            fit = np.full_like(yg, np.nan)
            fit[:, ~constant] = fit_block(yg[:, ~constant], x[rows], gram_scale, work, x_bound)
            fitted[rows] = fit
        for j in np.flatnonzero(constant):
            constant_eras.setdefault(j, []).append(groups.labels[g])
    for j, eras in constant_eras.items():
        name = names[j] if names is not None else j
        shown = ", ".join(str(e) for e in eras[:5]) + (" ..." if len(eras) > 5 else "")
        warnings.warn(
            f"Column {name!r} is constant in {len(eras)} era(s) ({shown}); "
            "its neutralized values there are NaN.",
            ScoringWarning,
            stacklevel=3,
        )
    return fitted


def _era_rows(groups: EraGroups) -> Iterator[tuple[int, slice | np.ndarray]]:
    """Each era's rows: a slice (a view, no copy) when the rows come grouped by era."""
    if groups.is_sorted:
        for g in range(groups.n_groups):
            yield g, slice(int(groups.starts[g]), int(groups.starts[g + 1]))
    else:
        yield from groups.iter_rows()


def _n_rows(rows: slice | np.ndarray) -> int:
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


def _constant_columns(y: np.ndarray) -> np.ndarray:
    return y.max(axis=0) == y.min(axis=0)
