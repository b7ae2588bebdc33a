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
projection faster: the Gram matrix ``A'A`` once per era (a BLAS ``syrk``), its Cholesky factor,
then two steps of iterative refinement with residuals computed from ``X`` itself, which brings the
result to the accuracy of the SVD (agreement to about 1e-12 in tests). When ``A`` is close to
rank deficient (duplicated or collinear neutralizers, fewer rows than columns, a condition number
near the ``rcond=1e-6`` cut-off of numerai-tools) that era falls back to exactly numerai-tools'
``lstsq`` call. Neutralizer columns that are constant within an era lie in the span of the
constant column, so they do not change the projection; they are dropped from the fast path.

Eras are grouped by :mod:`nbutils.eras` and inputs checked by :mod:`nbutils.checks`, as
everywhere in nbutils.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.linalg import lapack

from nbutils.checks import (
    ScoringWarning,
    as_column_list,
    check_proportion,
    numeric_matrix,
)
from nbutils.eras import EraGroups, era_groups
from nbutils.errors import ScoringError

__all__ = ["EraGroups", "ScoringWarning", "era_groups", "neutralize"]

#: numerai-tools' ``rcond`` for ``np.linalg.lstsq``.
LSTSQ_RCOND = 1e-6
#: Smallest ratio s_min / s_max of ``[X, 1]`` for which we trust the Cholesky path. Ten times the
#: numerai-tools cut-off, so the two paths can only disagree on matrices lstsq would not truncate.
_FAST_PATH_MIN_SV_RATIO = 10 * LSTSQ_RCOND
_REFINEMENT_STEPS = 2


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
    gram_scale = exact_float32_scale(x, int(counts.max()) if len(counts) else 0)
    constant_eras: dict[int, list] = {}
    for g, rows in groups.iter_rows():
        if len(rows) == 0:
            continue
        yg = y[rows]
        constant = _constant_columns(yg) if len(rows) > 1 else np.zeros(y.shape[1], dtype=bool)
        if not constant.all():
            fit = np.full_like(yg, np.nan)
            fit[:, ~constant] = fit_block(yg[:, ~constant], x[rows], gram_scale)
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


def _constant_columns(y: np.ndarray) -> np.ndarray:
    return y.max(axis=0) == y.min(axis=0)


def exact_float32_scale(x: np.ndarray, max_rows: int) -> float | None:
    """A power of two ``s`` such that ``(s * x)' (s * x)`` is computed exactly in float32.

    That holds when every ``s * x`` is an integer and every sum of ``max_rows`` products stays
    below 2**24 (float32 represents integers exactly up to there). Numerai's features (int8
    0..4, or the legacy 0, 0.25, ..., 1 with ``s = 4``) qualify, which halves the cost of the
    Gram matrix, the bulk of the work. Returns None when no such ``s`` exists.
    """
    if x.size == 0 or max_rows == 0:
        return None
    candidates = (1.0,) if np.issubdtype(x.dtype, np.integer) else (1.0, 2.0, 4.0, 8.0)
    for s in candidates:
        if np.issubdtype(x.dtype, np.integer):
            integral = True
        else:
            scaled = x * s
            integral = bool(np.all(scaled == np.round(scaled)))
        if integral:
            biggest = float(np.abs(x).max()) * s
            return s if biggest * biggest * max_rows < 2.0**24 else None
    return None


def fit_block(y: np.ndarray, x: np.ndarray, gram_scale: float | None = None) -> np.ndarray:
    """``[x, 1] @ lstsq([x, 1], y, rcond=1e-6)`` for one block (one era).

    Uses the Cholesky factor of the Gram matrix with iterative refinement when ``[x, 1]`` is
    well conditioned, else numerai-tools' own ``np.linalg.lstsq`` call (see the module notes).
    ``gram_scale`` (from :func:`exact_float32_scale`) lets the Gram matrix be computed exactly
    in float32.
    """
    m = x.shape[0]
    keep = x.max(axis=0) != x.min(axis=0) if m > 1 else np.zeros(x.shape[1], dtype=bool)
    xk = x[:, keep] if not keep.all() else x
    k = xk.shape[1]
    if k == 0:  # only constants: the fit is the column mean
        return np.broadcast_to(y.mean(axis=0), y.shape).copy()
    if m > k + 1:
        fit = _fit_cholesky(y, xk, gram_scale)
        if fit is not None:
            return fit
    return _fit_lstsq(y, np.asarray(x, dtype=np.float64))


def _fit_lstsq(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """numerai-tools' computation, verbatim: lstsq on ``[x, 1]`` with ``rcond=1e-6``."""
    a = np.hstack((x, np.ones((x.shape[0], 1))))
    coef = np.linalg.lstsq(a, y, rcond=LSTSQ_RCOND)[0]
    return a @ coef


def _gram(x: np.ndarray, gram_scale: float | None) -> np.ndarray:
    """``x' x`` in float64; exactly through float32 when ``gram_scale`` allows it."""
    if gram_scale is None:
        x64 = np.asarray(x, dtype=np.float64)
        return x64.T @ x64
    x32 = np.asarray(x * gram_scale if gram_scale != 1.0 else x, dtype=np.float32)
    return (x32.T @ x32).astype(np.float64) / (gram_scale * gram_scale)


def _fit_cholesky(
    y: np.ndarray, x: np.ndarray, gram_scale: float | None = None
) -> np.ndarray | None:
    """Fit through the normal equations of ``[x, 1]``; None if they are too ill conditioned."""
    m, k = x.shape
    x64 = np.asarray(x, dtype=np.float64)
    gram = np.empty((k + 1, k + 1))
    gram[:k, :k] = _gram(x, gram_scale)
    sums = x64.sum(axis=0)
    gram[:k, k] = sums
    gram[k, :k] = sums
    gram[k, k] = m
    # Scale to unit diagonal: better conditioned Cholesky, same least-squares solution.
    diag = np.diag(gram).copy()
    scale = 1.0 / np.sqrt(diag)
    gram_s = gram * scale[:, None] * scale[None, :]
    chol, info = lapack.dpotrf(gram_s, lower=False, clean=True)
    if info != 0:
        return None
    # cond(gram) <= cond(gram_s) * max(diag) / min(diag): check that cheap bound first, and
    # the unscaled matrix (what lstsq sees) only when the bound is not good enough.
    if not _well_conditioned(chol, gram_s, k + 1, diag.max() / diag.min()):
        chol_u, info = lapack.dpotrf(gram, lower=False, clean=True)
        if info != 0 or not _well_conditioned(chol_u, gram, k + 1, 1.0):
            return None
    coef = np.zeros((k + 1, y.shape[1]))
    resid = y
    for _ in range(_REFINEMENT_STEPS + 1):
        rhs = np.vstack((x64.T @ resid, resid.sum(axis=0, keepdims=True)))
        step = scipy.linalg.cho_solve((chol, False), rhs * scale[:, None]) * scale[:, None]
        coef = coef + step
        resid = y - (x64 @ coef[:k] + coef[k])
    return y - resid


def _well_conditioned(chol: np.ndarray, gram: np.ndarray, n: int, factor: float) -> bool:
    """Whether ``factor * cond2(gram)`` is safely below the lstsq cut-off (squared)."""
    anorm = np.abs(gram).sum(axis=0).max()
    rcond, info = lapack.dpocon(chol, anorm)
    if info != 0 or not np.isfinite(rcond) or rcond <= 0:
        return False
    # cond2(gram) <= n * cond1(gram); the 1-norm estimate may be low by a small factor (10).
    cond2_bound = 10.0 * n * factor / rcond
    return cond2_bound < _FAST_PATH_MIN_SV_RATIO**-2
