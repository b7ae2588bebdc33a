"""The fast least-squares path behind :func:`nbutils.neutralize.fit_by_era` (private).

``fit_block(y, x)`` is ``[x, 1] @ lstsq([x, 1], y, rcond=1e-6)``, numerai-tools' neutralization
step for one era, computed faster where that is safe:

1. neutralizer columns constant in the block are dropped (they lie in the span of the constant
   column and do not change the projection);
2. the Gram matrix ``A'A`` of ``A = [x, 1]`` (one BLAS call; exactly through float32 when the
   features are small integers, see :func:`exact_float32_scale`), scaled to unit diagonal;
3. its Cholesky factor, and a condition estimate: when ``A`` is close to rank deficient
   (collinear neutralizers, fewer rows than columns, a condition number near numerai-tools'
   ``rcond=1e-6`` cut-off) the block falls back to numerai-tools' own ``np.linalg.lstsq`` call;
4. the normal equations solved, then two steps of iterative refinement with residuals computed
   from ``x`` itself, which brings the result to the accuracy of the SVD (about 1e-12 in tests).

For a well-conditioned ``A`` the least-squares projection is unique, so both paths give the
same fit.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

__all__ = ["LSTSQ_RCOND", "exact_float32_scale", "fit_block"]

#: numerai-tools' ``rcond`` for ``np.linalg.lstsq``.
LSTSQ_RCOND = 1e-6
#: Smallest ratio s_min / s_max of ``[X, 1]`` for which we trust the Cholesky path. Ten times the
#: numerai-tools cut-off, so the two paths can only disagree on matrices lstsq would not truncate.
_FAST_PATH_MIN_SV_RATIO = 10 * LSTSQ_RCOND
_REFINEMENT_STEPS = 2


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
