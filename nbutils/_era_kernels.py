"""Per-era kernels behind :mod:`nbutils.metrics`: ranks, gaussianization, sums and Pearson.

Every kernel works on rows **in era order**: the rows of era ``g`` are the contiguous slice
``starts[g]:starts[g + 1]`` of each array (``starts`` has one entry per era plus the end, as
:attr:`nbutils.eras.EraGroups.starts`; an era may be empty). Put a column in era order with
:meth:`nbutils.eras.EraGroups.to_era_order`. In this order a per-era sum is one
``np.add.reduceat`` (no era codes, no ``np.bincount``), and each era's values are ranked while
they sit in the CPU cache.

These are the fast versions of the formulas; :mod:`nbutils.metrics` composes them into the
scores, and its tests compare every score with numerai-tools applied era by era.
"""

from __future__ import annotations

import numpy as np
import scipy.special
import scipy.stats

__all__ = [
    "center",
    "era_constant",
    "era_dot",
    "era_means",
    "era_min_max",
    "era_pearson",
    "era_ranks",
    "era_sums",
    "exposure_stats",
    "max_exposure_per_era",
    "pow15",
    "ranks_1d",
]


def era_sums(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-era sums ``S_g = sum_{i in g} v_i`` (0 for an empty era); ``values`` 1-D or 2-D (rows first)."""
    counts = np.diff(starts)
    out = np.zeros((len(counts), *values.shape[1:]))
    nonempty = counts > 0
    if nonempty.any():
        # reduceat sums from one start to the next; empty eras are skipped, so each slice is
        # exactly one era's rows.
        out[nonempty] = np.add.reduceat(values, starts[:-1][nonempty], axis=0)
    return out


#: Average era size from which :func:`era_dot` loops over eras (one BLAS call per era).
_DOT_MIN_ROWS = 256


def era_dot(a: np.ndarray, b: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-era dot products ``D_g = sum_{i in g} a_i b_i`` (0 for an empty era) of two 1-D arrays.

    One BLAS dot per era on the two slices: no temporary of the columns' size, cheaper than
    ``era_sums(a * b, starts)`` for eras of many rows (Numerai's: thousands), which it falls back
    to for small eras (fewer than :data:`_DOT_MIN_ROWS` on average).
    """
    if len(a) < _DOT_MIN_ROWS * (len(starts) - 1):
        return era_sums(a * b, starts)
    bounds = starts.tolist()
    out = np.zeros(len(bounds) - 1)
    for g, (s, e) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if e > s:
            out[g] = a[s:e] @ b[s:e]
    return out


def era_means(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-era means ``S_g / n_g`` (NaN for an empty era)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return era_sums(values, starts) / np.diff(starts)


def center(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each value minus its era's mean: ``v_i - mean_g(v)``."""
    return values - np.repeat(era_means(values, starts), np.diff(starts))


def era_min_max(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-era ``min_g(v)`` and ``max_g(v)`` (NaN for an empty era)."""
    counts = np.diff(starts)
    lo = np.full(len(counts), np.nan)
    hi = np.full(len(counts), np.nan)
    nonempty = counts > 0
    if nonempty.any():
        idx = starts[:-1][nonempty]
        lo[nonempty] = np.minimum.reduceat(values, idx)
        hi[nonempty] = np.maximum.reduceat(values, idx)
    return lo, hi


def era_constant(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per era, whether every value is the same: ``min_g(v) == max_g(v)`` (True when empty)."""
    lo, hi = era_min_max(values, starts)
    return (lo == hi) | (np.diff(starts) == 0)


def pow15(x: np.ndarray) -> np.ndarray:
    """``sign(x) * |x| ** 1.5``, computed as ``x * sqrt(|x|)`` (the same value, faster)."""
    return x * np.sqrt(np.abs(x))


def era_pearson(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Pearson correlation per era (two-pass, centered sums).

    ``r_g = sum(xc * yc) / sqrt(sum(xc**2) * sum(yc**2))`` with ``xc``, ``yc`` centered on
    their era means; NaN where an era is empty or either side is constant.
    """
    xc = center(x, starts)
    yc = center(y, starts)
    sxy = era_sums(xc * yc, starts)
    sxx = era_sums(xc * xc, starts)
    syy = era_sums(yc * yc, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy / np.sqrt(sxx * syy)


def _gauss_of_ranks(doubled: np.ndarray, n: int) -> np.ndarray:
    """``ndtri(doubled / (2 n))``: the inverse normal CDF at ``(rank - 0.5) / n``.

    With ``rank`` a tie-averaged 1-based rank, ``2 * (rank - 0.5)`` is the integer ``doubled``.
    """
    return scipy.special.ndtri(doubled / (2.0 * n))


class _RankValues:
    """What a tie-averaged rank becomes: the rank itself, or ``ndtri((rank - 0.5) / n)``.

    A rank is passed as ``doubled = 2 * (rank - 0.5)``, an integer in ``0..2n``. For an era size
    shared by several eras (synthetic data, resampled data) the gaussianized values are one table
    ``ndtri(j / (2 n))``, ``j = 0..2n``, built once and then only indexed: no ``ndtri`` call per
    era at all. An era whose size is unique calls ``ndtri`` once per tie run instead.
    """

    def __init__(self, counts: np.ndarray, gaussian: bool) -> None:
        self.gaussian = gaussian
        sizes, how_many = np.unique(counts, return_counts=True)
        self._shared = set(sizes[how_many > 1].tolist())
        self._tables: dict[int, np.ndarray] = {}

    def _table(self, n: int) -> np.ndarray:
        table = self._tables.get(n)
        if table is None:
            doubled = np.arange(2 * n + 1)
            table = _gauss_of_ranks(doubled, n) if self.gaussian else doubled / 2.0 + 0.5
            self._tables[n] = table
        return table

    def of_runs(self, doubled: np.ndarray, n: int) -> np.ndarray:
        """The value of each tie run, given ``doubled = 2 * run start + run length``."""
        if n in self._shared:
            return self._table(n)[doubled]
        return _gauss_of_ranks(doubled, n) if self.gaussian else doubled / 2.0 + 0.5

    def without_ties(self, n: int) -> np.ndarray:
        """The values of sorted positions ``0..n-1`` when no two values tie (``doubled = 2k + 1``)."""
        if n in self._shared:
            return self._table(n)[1::2]
        return self.of_runs(2 * np.arange(n) + 1, n)


def era_ranks(
    values: np.ndarray, starts: np.ndarray, gaussian: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Tie-averaged ranks within each era, optionally gaussianized.

    Per era of ``n`` rows, with ties averaged (pandas ``rank(method="average")``):

    - ``gaussian=False``: the 1-based rank ``r_i``;
    - ``gaussian=True``: ``ndtri((r_i - 0.5) / n)``, numerai-tools' ``gaussian(tie_kept_rank)``.

    One ``argsort`` per era (cache friendly); a run of tied values of length ``L`` starting at
    0-based sorted position ``s`` gets the rank ``s + (L + 1) / 2``, so ``ndtri`` is evaluated
    once per run, or read from a table shared by equal-sized eras (see :class:`_RankValues`).

    Returns
    -------
    (ranks, distinct)
        The ranks in era order (float64) and the number of distinct values in each era.
    """
    counts = np.diff(starts)
    out = np.empty(len(values))
    distinct = np.zeros(len(counts), dtype=np.int64)
    rank_values = _RankValues(counts, gaussian)
    for g in np.flatnonzero(counts):
        s, e = starts[g], starts[g + 1]
        n = int(e - s)
        segment = values[s:e]
        order = np.argsort(segment)
        ordered = segment[order]
        inner = np.flatnonzero(ordered[1:] != ordered[:-1])  # run r ends at inner[r] (0-based)
        distinct[g] = len(inner) + 1
        if distinct[g] == n:  # no ties: the rank is the sorted position + 1
            out[s:e][order] = rank_values.without_ties(n)
            continue
        # Run boundaries 0 = b_0 < b_1 < ... = n: run r covers sorted positions b_r..b_{r+1}-1,
        # so 2 * run start + run length = b_r + b_{r+1}.
        bounds = np.empty(len(inner) + 2, dtype=np.intp)
        bounds[0], bounds[-1] = 0, n
        np.add(inner, 1, out=bounds[1:-1])
        per_run = rank_values.of_runs(bounds[:-1] + bounds[1:], n)
        out[s:e][order] = np.repeat(per_run, np.diff(bounds))
    return out, distinct


def ranks_1d(values: np.ndarray) -> np.ndarray:
    """Tie-averaged 1-based ranks of one column (``scipy.stats.rankdata``).

    Integer columns of small range (int8 features) are ranked by counting in O(n): with
    ``c_k`` the number of values equal to ``lo + k``, value ``lo + k`` ranks
    ``cumsum(c)_k - (c_k - 1) / 2``. The shift is done in int64, so an int8 column spanning
    more than 127 does not overflow.
    """
    if np.issubdtype(values.dtype, np.integer) and values.size:
        lo = int(values.min())
        span = int(values.max()) - lo
        if span < 1_000_000:
            shifted = values.astype(np.int64) - lo
            counts = np.bincount(shifted, minlength=span + 1)
            avg = np.cumsum(counts) - (counts - 1) / 2.0
            return avg[shifted]
    return scipy.stats.rankdata(values)


def exposure_stats(
    y: np.ndarray, x: np.ndarray, rows_by_era: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per era, on centered values: ``Xc' Yc`` (eras x features x cols), ``|Xc_j|``, ``Yc' Yc``.

    ``rows_by_era[g]`` holds the row positions of era ``g``; eras of fewer than two rows are
    NaN. From these, :func:`max_exposure_per_era` scores any linear combination of ``y``'s
    columns without touching the rows again.
    """
    n_eras, n_feat, n_cols = len(rows_by_era), x.shape[1], y.shape[1]
    cross = np.full((n_eras, n_feat, n_cols), np.nan)
    xnorm = np.full((n_eras, n_feat), np.nan)
    ygram = np.full((n_eras, n_cols, n_cols), np.nan)
    for g, rows in enumerate(rows_by_era):
        if len(rows) < 2:
            continue
        xg = np.asarray(x[rows], dtype=np.float64)
        xg = xg - xg.mean(axis=0)
        yg = y[rows] - y[rows].mean(axis=0)
        cross[g] = xg.T @ yg
        xnorm[g] = np.sqrt(np.einsum("ij,ij->j", xg, xg))
        ygram[g] = yg.T @ yg
    return cross, xnorm, ygram


def max_exposure_per_era(
    cross: np.ndarray, xnorm: np.ndarray, ygram: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Per era ``max_j |corr(X_j, Y @ w)|`` from :func:`exposure_stats`.

    ``corr(X_j, Y w) = (Xc_j' Yc w) / (|Xc_j| sqrt(w' Yc' Yc w))``; constant features (zero
    norm) are skipped; an era where every feature is skipped, or ``Y w`` is constant, is NaN.
    """
    num = cross @ weights
    ynorm = np.sqrt(np.einsum("i,gij,j->g", weights, ygram, weights))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(num / (xnorm * ynorm[:, None]))
    corr[~np.isfinite(corr)] = np.nan
    out = np.full(len(corr), np.nan)
    has = ~np.all(np.isnan(corr), axis=1)
    out[has] = np.nanmax(corr[has], axis=1)
    return out
