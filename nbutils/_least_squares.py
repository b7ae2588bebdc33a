"""The fast least-squares path behind :func:`nbutils.neutralize.fit_by_era` (private).

``fit_block(y, x)`` is ``[x, 1] @ lstsq([x, 1], y, rcond=1e-6)``, numerai-tools' neutralization
step for one era, computed through the normal equations where that gives the same numbers:

1. neutralizer columns constant in the block are dropped (they lie in the span of the constant
   column and do not change the projection);
2. the constant column is taken out by centering: the fit is ``mean(y) + Xc b`` with ``Xc`` the
   centered neutralizers and ``S b = Xc' yc``, ``S = Xc' Xc``. For small-integer features (int8
   0..4, or the legacy 0, 0.25, ..., 1) ``S`` is exact: the upper triangle of the Gram matrix
   ``[x, 1]' [x, 1]`` is accumulated by float32 BLAS ``ssyrk`` over blocks of about 4 MB of
   rows (integer sums below 2**24 are exact in any order, see :func:`exact_float32_scale`),
   and ``m S = m X'X - s s'`` (BLAS ``dsyr``) is an integer below 2**53. Other values are
   centered in float64 first. Only a block of the era's rows is converted to float at a time,
   never the whole feature matrix, and along ``x``'s contiguous axis (the columns of a pandas
   block, the rows of a C array). The matrices of one call live in a :class:`Workspace`, reused
   era after era: a fresh array of the Gram matrix's size per era cost page faults comparable
   to the arithmetic on it (2,376 features: 45 MB per float64 matrix);
3. ``S`` scaled to unit diagonal (``C``) and factored by Cholesky (LAPACK ``dpotrf``, in place,
   upper triangles only), all columns of ``y`` solved at once. On the float32 path the two
   products with ``x`` avoid float64 copies of it: ``X' yc`` comes out of the Gram matrix's own
   ``ssyrk``, with ``yc`` split into a few columns of small integers appended to the rows, and
   ``X b`` is float32 blocks of ``x`` times ``b`` split the same way (:func:`_integer_parts`:
   every partial sum is an integer below 2**24, so both are exact up to the split's truncation,
   below ``2**-59`` of the largest value; parts narrower than 8 bits are not worth it and the
   products then convert blocks to float64);
4. when ``C``'s estimated condition number (``dpocon``, 1-norm) is above :data:`REFINE_ABOVE`
   (1e5), two steps of iterative refinement with residuals computed from ``x`` itself. Measured
   on nearly collinear int8 features (30 to 705 columns): without refinement the fit differs
   from lstsq's by about ``1e-16`` times that estimate (2e-12 at 4e4, 1.9e-10 at 2.6e6), so
   below 1e5 it stays within about 1e-11, ten times inside the 1e-10 the tests ask. On the
   2,376-feature benchmark eras (estimate 1.3e4 to 1.5e4) the unrefined fit is within 2e-14.
   ``|C|_1`` enters the estimate through an upper bound at most twice it (``dlantr``: largest
   column sum plus largest row sum of the triangle), so refinement can only start earlier.

**When the block falls back to numerai-tools' own ``np.linalg.lstsq`` call.** lstsq zeroes the
singular values of ``A = [x, 1]`` below ``1e-6 * s_max``; where it zeroes none, the projection
is unique and both paths agree. The fast path is taken only when ``cond2(A) <=``
:data:`MAX_COND` (``1e5``, ten times below that cut-off). For a symmetric matrix the 2-norm is
at most the 1-norm, so ``cond2(A)**2 = cond2(G) <= cond1(G) = |G|_1 |G^-1|_1`` with
``G = A'A``, and the fast path needs a bound on ``cond1(G)`` below ``MAX_COND**2 = 1e10``.
``|G|_1`` is computed from the Gram matrix (over every column, constant ones included, so the
bound also covers what lstsq sees; one ``ssymv`` when no entry is negative). ``|G^-1|_1`` is
bounded from the one condition estimate the solve needs anyway: with the constant column first,
``G^-1 = [[1/m + mu'w, -w'], [-w, S^-1]]`` (``S`` is the Schur complement of ``m`` in ``G``),
``mu`` the column means and ``w = S^-1 mu``, solved beside ``y`` at the cost of one more
right-hand side. Its first column sums to ``|1/m + mu'w| + |w|_1``, exactly; every other column
to at most ``|w|_inf + |S^-1|_1``, and ``|S^-1|_1 <= |C^-1|_1 / min_i S_ii`` (``S = D C D``).
LAPACK's ``dpocon`` estimate of ``|C^-1|_1`` is a lower bound, in practice within a factor 3 of
the truth; it is multiplied by :data:`ESTIMATE_SLACK` (10). For int8 features the first,
exact, column dominates: on the 705-feature benchmark eras the bound equals the true
``cond1(G)`` (3.2e5), where the former estimate from ``G``'s own factor (a second ``dpocon``
on a bordered copy of the factor) stood at 3.2e6 after its slack. Fewer rows than columns,
collinear or duplicated neutralizers, a failed Cholesky or a larger bound fall back. The bound
used before that (``10 n (max diag / min diag) / rcond``) multiplied the estimate by the matrix
size and the diagonal spread, and sent well-conditioned int8 eras (``cond2(A)`` about 2e3 at
705 features) to lstsq.

:data:`PATH_COUNTS` counts the blocks that took each path (``"cholesky"``, ``"lstsq"``,
``"constant"``); the tests read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.linalg import blas, lapack

__all__ = [
    "ESTIMATE_SLACK",
    "LSTSQ_RCOND",
    "MAX_COND",
    "PATH_COUNTS",
    "REFINE_ABOVE",
    "Workspace",
    "abs_max",
    "exact_float32_scale",
    "fit_block",
]

#: numerai-tools' ``rcond`` for ``np.linalg.lstsq``.
LSTSQ_RCOND = 1e-6
#: Largest ``cond2([x, 1])`` the Cholesky path accepts: ten times below lstsq's cut-off.
MAX_COND = 0.1 / LSTSQ_RCOND
#: Allowed underestimate of LAPACK's 1-norm estimate of ``|C^-1|_1`` (Higham: almost always < 3).
ESTIMATE_SLACK = 10.0
#: Refine the solution when the scaled centered Gram matrix's estimated condition exceeds this.
REFINE_ABOVE = 1e5
_REFINEMENT_STEPS = 2
#: Bytes of float64 rows converted at a time for the products with ``x`` (fits in L2 cache).
_CHUNK_BYTES = 1 << 20
#: Bytes of float32 columns (or rows) of ``x`` converted at a time for ``x b`` (L2 cache).
_X32_BLOCK_BYTES = 1 << 19
#: Bytes of float32 rows converted at a time for the Gram matrix (one ``ssyrk`` per block).
_GRAM_CHUNK_BYTES = 4 << 20

#: Blocks fitted by each path since import (tests reset it).
PATH_COUNTS: Counter[str] = Counter()


def abs_max(x: np.ndarray) -> float:
    """``max |x|`` (0 for an empty array), without a temporary of ``x``'s size."""
    return max(abs(float(x.max())), abs(float(x.min()))) if x.size else 0.0


def exact_float32_scale(x: np.ndarray, max_rows: int, biggest: float | None = None) -> float | None:
    """A power of two ``s`` such that ``(s * x)' (s * x)`` is computed exactly in float32.

    That holds when every ``s * x`` is an integer and every sum of ``max_rows`` products stays
    below 2**24 (float32 represents integers exactly up to there). Numerai's features (int8
    0..4, or the legacy 0, 0.25, ..., 1 with ``s = 4``) qualify, which halves the cost of the
    Gram matrix, the bulk of the work. Returns None when no such ``s`` exists. Float values are
    checked a block of rows at a time (no full-size temporary); ``biggest`` is ``abs_max(x)``
    when the caller has it.
    """
    if x.size == 0 or max_rows == 0:
        return None
    biggest = abs_max(x) if biggest is None else biggest
    if np.issubdtype(x.dtype, np.integer):
        s: float | None = 1.0
    else:
        s = next((c for c in (1.0, 2.0, 4.0, 8.0) if _all_integral(x, c)), None)
    if s is None:
        return None
    return s if (biggest * s) ** 2 * max_rows < 2.0**24 else None


def _all_integral(x: np.ndarray, s: float) -> bool:
    """Whether every ``s * x`` is an integer (checked a block of rows at a time)."""
    chunks = _row_chunks(*x.shape)
    for i in chunks:
        scaled = x[i : i + chunks.step] * s
        if not np.all(scaled == np.round(scaled)):
            return False
    return True


class Workspace:
    """Matrices reused from one block to the next (:func:`nbutils.neutralize.fit_by_era` fits
    era after era with one workspace): a fresh array of the Gram matrix's size per era costs
    page faults comparable to the arithmetic on it. Buffers are zero-filled when first made."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], str, str], np.ndarray] = {}

    def zeros(
        self, name: str, shape: tuple[int, ...], dtype: type, order: Literal["C", "F"] = "C"
    ) -> np.ndarray:
        """The buffer ``name`` of this shape, type and order: zeros at first, then as last left."""
        key = (name, shape, np.dtype(dtype).str, order)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.zeros(shape, dtype=dtype, order=order)
        return buf


def fit_block(
    y: np.ndarray,
    x: np.ndarray,
    gram_scale: float | None = None,
    work: Workspace | None = None,
    x_bound: float | None = None,
) -> np.ndarray:
    """``[x, 1] @ lstsq([x, 1], y, rcond=1e-6)`` for one block (one era), all columns of ``y``.

    Through the normal equations when ``[x, 1]`` is well conditioned, else numerai-tools' own
    ``np.linalg.lstsq`` call (see the module notes). ``gram_scale`` (from
    :func:`exact_float32_scale`) says the Gram matrix can be computed exactly in float32;
    ``work`` holds buffers shared by the blocks of one call (a fresh one when None);
    ``x_bound`` is ``abs_max`` of the whole ``x`` the block comes from (computed when None).
    """
    m = x.shape[0]
    if m > 1:
        work = Workspace() if work is None else work
        fit = _fit_normal_equations(y, x, gram_scale, work, x_bound)
        if fit is not None:
            return fit
    PATH_COUNTS["lstsq"] += 1
    return _fit_lstsq(y, np.asarray(x, dtype=np.float64))


def _fit_lstsq(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """numerai-tools' computation, verbatim: lstsq on ``[x, 1]`` with ``rcond=1e-6``."""
    a = np.hstack((x, np.ones((x.shape[0], 1))))
    coef = np.linalg.lstsq(a, y, rcond=LSTSQ_RCOND)[0]
    return a @ coef


def _row_chunks(m: int, k: int) -> range:
    return range(0, m, max(16, _CHUNK_BYTES // (8 * max(k, 1))))


def _column_major(x: np.ndarray) -> bool:
    """Whether ``x``'s columns are contiguous (a pandas block of one dtype is): blocks of ``x``
    are then taken along its columns, else along its rows, so each block is read in order."""
    return x.ndim == 2 and x.strides[0] < x.strides[1]


def _col_chunks(m: int, k: int) -> range:
    return range(0, k, max(1, _CHUNK_BYTES // (8 * max(m, 1))))


def _xt_dot(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``x' v`` in float64, converting ``x`` a cache-sized block at a time."""
    if _column_major(x):
        out = np.empty((x.shape[1], v.shape[1]))
        cols = _col_chunks(*x.shape)
        for j in cols:
            out[j : j + cols.step] = x[:, j : j + cols.step].astype(np.float64).T @ v
        return out
    out = np.zeros((x.shape[1], v.shape[1]))
    step = _row_chunks(*x.shape).step
    for i in range(0, x.shape[0], step):
        out += x[i : i + step].astype(np.float64).T @ v[i : i + step]
    return out


def _x_dot(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x b`` in float64, converting ``x`` a cache-sized block at a time."""
    if _column_major(x):
        out = np.zeros((x.shape[0], b.shape[1]))
        cols = _col_chunks(*x.shape)
        for j in cols:
            out += x[:, j : j + cols.step].astype(np.float64) @ b[j : j + cols.step]
        return out
    out = np.empty((x.shape[0], b.shape[1]))
    step = _row_chunks(*x.shape).step
    for i in range(0, x.shape[0], step):
        out[i : i + step] = x[i : i + step].astype(np.float64) @ b
    return out


#: Bits ``y``'s integer parts carry in all (their truncation error is below ``2**-59 max |y|``).
_PART_BITS = 60


def _integer_parts(v: np.ndarray, inner: int, a_max: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``v`` (float64, one column per variable) as float32 columns of small integers whose
    products with a matrix ``a`` (``|a| <= a_max``, integers) sum exactly over ``inner`` rows.

    Each column ``v_j`` is written ``sum_t w_t part_t`` with ``w_t = 2**(e_j - b (t + 1))``,
    ``|v_j| < 2**e_j`` and integer parts ``|part_t| < 2**b``, ``b`` the largest width with
    ``inner a_max 2**b <= 2**24`` (then every partial sum of ``a' part_t`` is an integer below
    2**24, exact in float32 in any order); ``ceil(60 / b)`` parts leave a remainder below
    ``2**(e_j - 60)``. Returns the parts (columns ``t p + j``) and the weights ``w``, or None
    when ``b < 8`` (too many parts to pay off).
    """
    bits = int(np.floor(np.log2(2.0**24 / (inner * a_max))))
    if bits < 8:
        return None
    n_parts = -(-_PART_BITS // bits)
    n, p = v.shape
    top = np.frexp(np.abs(v).max(axis=0))[1]  # |v_j| < 2**top_j
    rest = np.ldexp(v, -top)  # exact: in (-1, 1)
    parts = np.empty((n, n_parts * p), dtype=np.float32)
    weights = np.empty(n_parts * p)
    for t in range(n_parts):
        rest *= 2.0**bits
        whole = np.trunc(rest)
        rest -= whole  # exact
        parts[:, t * p : (t + 1) * p] = whole
        weights[t * p : (t + 1) * p] = np.ldexp(1.0, top - bits * (t + 1))
    return parts, weights


def _combine_parts(products: np.ndarray, weights: np.ndarray, p: int) -> np.ndarray:
    """``sum_t w_t (a' part_t)`` for each of the ``p`` variables, from the exact float32
    products (columns ``t p + j``), smallest terms first: one float64 rounding per term."""
    terms = products.astype(np.float64) * weights
    out = np.zeros((products.shape[0], p))
    for t in range(weights.size // p - 1, -1, -1):
        out += terms[:, t * p : (t + 1) * p]
    return out


class _Centered:
    """One block's centered Gram matrix ``S = Xc' Xc = num / factor``, its column sums,
    ``|[x, 1]' [x, 1]|_1``, and products with ``Xc`` (the centered ``x``)."""

    def __init__(
        self,
        x: np.ndarray,
        gram_scale: float | None,
        work: Workspace,
        y_c: np.ndarray | None = None,
        x_bound: float | None = None,
    ) -> None:
        self.m = x.shape[0]
        self.centered_x = gram_scale is None
        #: ``X' y_c``, when computed with the Gram matrix (float32 path only).
        self.xty: np.ndarray | None = None
        if gram_scale is not None:
            bound = abs_max(x) if x_bound is None else x_bound
            self._exact(x, gram_scale, work, y_c, bound)
        else:
            self._general(x)

    def _exact(
        self, x: np.ndarray, gs: float, work: Workspace, y_c: np.ndarray | None, bound: float
    ) -> None:
        """Small integers (after scaling by ``gs``): the upper triangle of ``[gs x, 1]' [gs x, 1]``
        by float32 BLAS ``ssyrk``, a block of rows at a time (exact: integer sums below 2**24
        in any order), then ``num = m (gs x)'(gs x) - (gs s)(gs s)'`` in float64 by ``dsyr``
        (also exact: integers below 2**53). Every matrix lives in ``work``'s buffers; only the
        upper triangles are computed, the lower ones stay zero.

        ``X' y_c`` comes out of the same ``ssyrk``: ``y_c``'s columns, split into a few columns
        of small integers (:func:`_integer_parts`), are appended to the rows, and their products
        with ``gs x`` are exact float32 integers too (a few percent more ``ssyrk`` work instead
        of another pass over ``x``)."""
        m, k = x.shape
        split = None if y_c is None else _integer_parts(y_c, m, max(gs * bound, 1.0))
        q = 0 if split is None else split[0].shape[1]
        g32 = work.zeros("gram32", (k + 1 + q, k + 1 + q), np.float32, order="F")
        step = max(64, _GRAM_CHUNK_BYTES // (4 * (k + 1 + q)))
        # The float32 rows in x's own layout, so the conversion reads x in order; BLAS reads
        # them in place either way (chunk.T of C-ordered rows is Fortran-ordered).
        by_cols = _column_major(x)
        rows32 = np.empty(
            (min(step, m), k + 1 + q), dtype=np.float32, order="F" if by_cols else "C"
        )
        rows32[:, k] = 1.0
        for i in range(0, m, step):
            block = x[i : i + step]
            chunk = rows32[: len(block)]
            _to_float32(block, gs, chunk[:, :k])
            if split is not None:
                chunk[:, k + 1 :] = split[0][i : i + step]
            beta = 0.0 if i == 0 else 1.0  # add chunk' chunk to g32 after the first block
            if by_cols:
                blas.ssyrk(1.0, chunk, beta=beta, c=g32, trans=1, overwrite_c=1)
            else:
                blas.ssyrk(1.0, chunk.T, beta=beta, c=g32, overwrite_c=1)
        del rows32, chunk
        if split is not None:
            self.xty = _combine_parts(g32[:k, k + 1 :], split[1], y_c.shape[1]) / gs
        gs_sums = g32[:k, k].astype(np.float64)
        self.g_norm1 = _exact_gram_norm1(g32, gs_sums, gs, m)
        num = work.zeros("num", (k, k), np.float64, order="F")
        num[...] = g32[:k, :k]
        num *= float(m)  # in float64, exact: m g passes 2**24
        blas.dsyr(-1.0, gs_sums, a=num, overwrite_a=1)  # upper triangle: num -= s s'
        self.num, self.factor = num, m * gs * gs
        self.gs, self.a_max = gs, max(gs * bound, 1.0)
        self.diag = np.diag(num).copy()
        self.constant = self.diag == 0  # exact integers: 0 only for a constant column
        self.sums = gs_sums / gs
        self.means = self.sums / m
        self.x = x

    def _general(self, x: np.ndarray) -> None:
        """Any values: centered in float64 first, then ``S = Xc' Xc`` (its upper triangle)."""
        m = x.shape[0]
        x64 = np.asarray(x, dtype=np.float64)
        self.means = x64.mean(axis=0)
        self.sums = self.means * m
        self.x = x64 - self.means
        full = self.x.T @ self.x
        self.num, self.factor = np.asfortranarray(np.triu(full)), 1.0
        self.diag = np.diag(full).copy()
        xtx = full + np.multiply.outer(self.sums, self.means)
        col_norms = np.abs(xtx).sum(axis=0) + np.abs(self.sums)
        self.g_norm1 = float(max(col_norms.max(), m + np.abs(self.sums).sum()))
        self.constant = x.max(axis=0) == x.min(axis=0)

    def correlation(self, keep: np.ndarray) -> tuple[np.ndarray, float]:
        """``C``, the kept columns' ``S`` scaled to unit diagonal (in place when every column is
        kept), and an upper bound of ``|C|_1``: ``C_ij = (num_ij / sqrt(num_ii)) / sqrt(num_jj)``,
        upper triangle, Fortran order, strict lower triangle zero. The bound is the largest
        column sum plus the largest row sum of the triangle's absolute values (LAPACK
        ``dlantr``, no temporary), at most twice ``|C|_1`` (whose column ``j`` sums column ``j``
        and row ``j`` of the triangle)."""
        c = self.num if keep.all() else np.asfortranarray(self.num[np.ix_(keep, keep)])
        inv_root = 1.0 / np.sqrt(self.diag[keep])
        c *= inv_root[:, None]
        c *= inv_root[None, :]
        norm1 = lapack.dlantr("1", c, uplo="U") + lapack.dlantr("I", c, uplo="U")
        return c, float(norm1)

    def xt(self, w: np.ndarray) -> np.ndarray:
        """``Xc' w`` for a centered ``w`` (equal to ``X' w`` since ``1' w = 0``)."""
        return _xt_dot(self.x, w)

    def x_dot(self, b: np.ndarray) -> np.ndarray:
        """``Xc b``."""
        if self.centered_x:
            return _x_dot(self.x, b)
        xb = _exact_x_dot(self.x, b, self.gs, self.a_max)
        return (_x_dot(self.x, b) if xb is None else xb) - self.means @ b


def _to_float32(block: np.ndarray, gs: float, out: np.ndarray) -> None:
    """``out = gs * block`` in float32 (a plain converting copy when ``gs == 1``: several times
    faster than numpy's casting multiply)."""
    out[...] = block
    if gs != 1.0:
        out *= np.float32(gs)


def _exact_x_dot(x: np.ndarray, b: np.ndarray, gs: float, a_max: float) -> np.ndarray | None:
    """``x b`` when ``gs x`` are small integers (``|gs x| <= a_max``), exactly up to the parts'
    truncation: ``b`` split into integer parts over the inner dimension (:func:`_integer_parts`),
    blocks of ``gs x`` converted to float32 (half the bytes of float64) and multiplied by the
    parts with float32 BLAS, whose sums stay exact integers. None when the split does not pay
    (the caller then converts to float64)."""
    m, k = x.shape
    split = _integer_parts(b, k, a_max)
    if split is None:
        return None
    parts, weights = split
    if _column_major(x):
        acc = np.zeros((m, parts.shape[1]), dtype=np.float32, order="F")
        step = max(1, _X32_BLOCK_BYTES // (4 * m))
        buf = np.empty((m, min(step, k)), dtype=np.float32, order="F")
        for j in range(0, k, step):
            block = buf[:, : min(step, k - j)]
            _to_float32(x[:, j : j + step], gs, block)
            blas.sgemm(1.0, block, parts[j : j + step], beta=1.0, c=acc, overwrite_c=1)
    else:
        acc = np.empty((m, parts.shape[1]), dtype=np.float32)
        step = max(1, _X32_BLOCK_BYTES // (4 * k))
        buf = np.empty((min(step, m), k), dtype=np.float32)
        for i in range(0, m, step):
            block = buf[: min(step, m - i)]
            _to_float32(x[i : i + step], gs, block)
            np.matmul(block, parts, out=acc[i : i + step])
    return _combine_parts(acc, weights, b.shape[1]) / gs


def _exact_gram_norm1(g32: np.ndarray, gs_sums: np.ndarray, gs: float, m: int) -> float:
    """``|G|_1`` of ``G = [x, 1]' [x, 1]`` (or an upper bound within 1e-3) from the upper
    triangle of ``g32 = [gs x, 1]' [gs x, 1]``: column ``j < k`` sums
    ``(|(gs x)'(gs x)|_col j / gs + |gs_sums_j|) / gs``, the constant column
    ``|gs_sums|_1 / gs + m``. When no entry is negative (Numerai's features are), ``|G| = G``
    and the column sums are one BLAS ``ssymv`` with ``[1 / gs**2, ..., 1 / gs]``, rounded up by
    its float32 error bound ``(k + 1) 2**-23``; else the absolute values a block at a time."""
    k = gs_sums.size
    if g32[: k + 1, : k + 1].min() >= 0:
        # Columns past k (X' y's integer parts, see _Centered._exact) get weight 0.
        weights = np.zeros(g32.shape[0], dtype=np.float32)
        weights[:k] = 1.0 / (gs * gs)
        weights[k] = 1.0 / gs
        x_cols = blas.ssymv(1.0, g32, weights)[:k].astype(np.float64) * (1 + (k + 1) * 2.0**-23)
    else:
        col = _symmetric_abs_colsums(g32[:k, :k])
        x_cols = (col / gs + np.abs(gs_sums)) / gs
    return float(max(x_cols.max(initial=0.0), np.abs(gs_sums).sum() / gs + m))


def _symmetric_abs_colsums(upper: np.ndarray) -> np.ndarray:
    """Column sums of ``|M|`` (float64) for a symmetric ``M`` held in the upper triangle of the
    Fortran-ordered ``upper``, whose strict lower triangle is zero: the column sums plus the row
    sums minus the diagonal, over blocks of columns (no temporary of the matrix's size)."""
    n = upper.shape[1]
    col = np.empty(n)
    row = np.zeros(n)
    step = max(1, _CHUNK_BYTES // (upper.itemsize * max(n, 1)))
    for j in range(0, n, step):
        a = np.abs(upper[:, j : j + step])
        col[j : j + step] = a.sum(axis=0, dtype=np.float64)
        row += a.sum(axis=1, dtype=np.float64)
    return col + row - np.abs(np.diag(upper))


def _fit_normal_equations(
    y: np.ndarray,
    x: np.ndarray,
    gram_scale: float | None,
    work: Workspace,
    x_bound: float | None,
) -> np.ndarray | None:
    """The fit through the Cholesky factor of ``C``; None when the block must go to lstsq."""
    m, k = x.shape
    y_mean = y.mean(axis=0)
    y_c = y - y_mean
    cen = _Centered(x, gram_scale, work, y_c, x_bound)
    keep = ~cen.constant
    k_kept = int(keep.sum())
    if k_kept == 0:  # only constants: the fit is the column mean
        PATH_COUNTS["constant"] += 1
        return np.broadcast_to(y_mean, y.shape).copy()
    if m <= k_kept + 1:
        return None
    # C = S scaled to unit diagonal: C = S / (scale scale'), scale = sqrt(diag(S)); upper
    # triangle only, Fortran order, factored in place.
    c, c_norm1 = cen.correlation(keep)
    diag = cen.diag[keep]
    scale = np.sqrt(diag / cen.factor)
    chol, info = lapack.dpotrf(c, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        return None
    rcond_c, info_c = lapack.dpocon(chol, c_norm1)
    if info_c != 0 or not np.isfinite(rcond_c) or rcond_c <= 0:
        return None
    solve = _scaled_solver(chol, scale)
    p = y.shape[1]
    means = cen.means[keep]
    rhs = np.empty((k_kept, p + 1))
    rhs[:, :p] = (cen.xt(y_c) if cen.xty is None else cen.xty)[keep]
    rhs[:, p] = means
    z = solve(rhs)  # S^-1 X'y_c and, for the condition bound, S^-1 mu
    c_inv_norm1 = 1.0 / (rcond_c * c_norm1)
    s_inv_norm1 = c_inv_norm1 * cen.factor / diag.min()  # |S^-1|_1 <= |C^-1|_1 / min S_ii
    if not _cond_a_within_bound(z[:, p], means, s_inv_norm1, m, cen.g_norm1):
        return None
    coef = np.zeros((k, p))
    coef[keep] = z[:, :p]
    fitted = cen.x_dot(coef)
    if not rcond_c > 1.0 / REFINE_ABOVE:
        for _ in range(_REFINEMENT_STEPS):
            coef[keep] += solve(cen.xt(y_c - fitted)[keep])
            fitted = cen.x_dot(coef)
    PATH_COUNTS["cholesky"] += 1
    return fitted + y_mean


def _scaled_solver(chol: np.ndarray, scale: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``b -> S^-1 b`` with ``S = D C D``, ``D = diag(scale)`` and ``C = chol' chol``."""

    def solve(b: np.ndarray) -> np.ndarray:
        z, info = lapack.dpotrs(chol, b / scale[:, None], lower=False)
        if info != 0:  # pragma: no cover - dpotrs fails only on invalid arguments
            raise RuntimeError(f"dpotrs failed ({info})")
        return z / scale[:, None]

    return solve


def _cond_a_within_bound(
    w: np.ndarray, mu: np.ndarray, s_inv_norm1: float, m: int, g_norm1: float
) -> bool:
    """Whether ``cond2([x, 1]) <= MAX_COND``, from a bound on ``cond1(G)``, ``G = A'A``.

    With the constant column first, ``G^-1 = [[1/m + mu'w, -w'], [-w, S^-1]]`` where ``mu`` are
    the column means, ``S`` the centered Gram matrix (the Schur complement of ``m`` in ``G``)
    and ``w = S^-1 mu`` (solved exactly, beside ``y``). Its first column sums to
    ``|1/m + mu'w| + |w|_1``, every other column to at most ``|w|_inf + |S^-1|_1``, and
    ``s_inv_norm1`` bounds ``|S^-1|_1`` by LAPACK's estimate of ``|C^-1|_1`` (see the module
    notes), multiplied here by :data:`ESTIMATE_SLACK`.
    """
    first = abs(1.0 / m + float(mu @ w)) + float(np.abs(w).sum())
    others = float(np.abs(w).max()) + ESTIMATE_SLACK * s_inv_norm1
    bound = g_norm1 * max(first, others)
    return bool(np.isfinite(bound)) and bound <= MAX_COND**2
