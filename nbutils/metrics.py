"""Tutorial step 2D (model strength) and section 3 (diagnostics): every score, per era.

Every per-era function takes a DataFrame with an era column and returns a Series indexed by era
in natural order ("era2" before "era10"), or a DataFrame (eras x columns) when ``pred_col`` is a
list of several prediction columns. The definitions are Numerai's, applied era by era:

- ``per_era_corr(method="numerai")`` equals ``numerai_tools.scoring.numerai_corr``;
- ``per_era_mmc`` equals ``numerai_tools.scoring.correlation_contribution``;
- ``per_era_fnc`` equals ``numerai_tools.scoring.feature_neutral_corr``;
- ``per_era_corr(method="spearman")`` is the tutorial's ``spearmanr`` per era.

All eras are scored at once: the rows are ordered by era once (a radix sort of the era codes,
skipped when the rows already come grouped by era, as in Numerai's files), each era's values are
argsorted inside that order, tie-averaged ranks come from run boundaries, and ``np.bincount``
gives every per-era sum; no pandas groupby is involved. Only the least-squares part of FNC loops
over eras (in numpy, see ``nbutils.neutralize``). Arithmetic is float64.

Input rules, the same everywhere:

- rows whose target (or meta model) is NaN are left out era by era; a :class:`ScoringWarning`
  says how many, and the result's ``attrs["rows_left_out"]`` holds the count;
- NaN predictions (or features) raise :class:`~nbutils.errors.ScoringError` naming the column;
- an era with fewer than two rows, or constant predictions, target or meta model, scores NaN
  with a :class:`ScoringWarning` instead of failing (numerai-tools would raise or return 0);
- missing columns raise ``ScoringError``; inputs are never modified.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.special
import scipy.stats

from nbutils.checks import (
    ScoringWarning,
    as_column_list,
    check_proportion,
    numeric_matrix,
    require_columns,
)
from nbutils.eras import EraGroups, era_groups
from nbutils.errors import ScoringError
from nbutils.neutralize import fit_by_era

__all__ = [
    "DIAGNOSTIC_ROWS",
    "ScoringWarning",
    "diagnostics",
    "evaluate",
    "feature_correlations",
    "feature_exposure",
    "max_drawdown",
    "max_feature_exposure",
    "neutralization_sweep",
    "payout",
    "per_era_corr",
    "per_era_fnc",
    "per_era_mmc",
    "sharpe",
    "stake_payout",
]

Method = Literal["numerai", "spearman", "pearson"]
PredCols = str | Sequence[str]

#: Today's payout multipliers (Numerai docs, 2024-): payout uses 0.5 x CORR + 2 x MMC.
CORR_MULTIPLIER = 0.5
MMC_MULTIPLIER = 2.0
#: Per-round payout is clipped to +-5 % of the stake.
PAYOUT_CLIP = 0.05
#: The tutorial's payout scale: a per-era score of 0.2 pays the full 100 % of the stake.
TUTORIAL_PAYOUT_SCALE = 0.2


# --------------------------------------------------------------------------------------------
# Per-era building blocks (numpy, all eras at once)
# --------------------------------------------------------------------------------------------


def _group_sum(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n_groups)


def _group_center(codes: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        means = _group_sum(codes, values, len(counts)) / counts
    return values - means[codes]


class _EraIndex:
    """Rows sorted by era (a stable radix sort of the era codes), shared by every ranking."""

    def __init__(self, codes: np.ndarray, n_groups: int, groups: EraGroups | None = None) -> None:
        groups = groups if groups is not None else EraGroups(codes, pd.RangeIndex(n_groups))
        self.order = groups.order
        self.identity = groups.is_sorted  # order is arange: gathers through it can be skipped
        self.counts = groups.counts
        self.starts = groups.starts
        self.codes_sorted = np.repeat(np.arange(n_groups), self.counts)


def _era_value_order(values: np.ndarray, index: _EraIndex) -> np.ndarray:
    """Row order sorted by (era, value): the era order, then one small argsort per era.

    Sorting each era's few thousand values separately is cache friendly and about twice as
    fast as a global ``np.lexsort((values, codes))``. Ties may come in any order (they are
    averaged).
    """
    by_era = values if index.identity else values[index.order]
    within = np.empty(len(values), dtype=np.intp)
    starts = index.starts
    for g in np.flatnonzero(index.counts > 1):
        s, e = starts[g], starts[g + 1]
        within[s:e] = np.argsort(by_era[s:e])
    single = np.flatnonzero(index.counts == 1)
    within[starts[single]] = 0
    within += np.repeat(starts[:-1], index.counts)
    return within if index.identity else index.order[within]


def _sorted_ranks(
    values: np.ndarray, index: _EraIndex
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks in (era, value) order: ``(order, ranks of values[order], distinct per era)``."""
    n = len(values)
    order = _era_value_order(values, index)
    v = values[order]
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(v[1:], v[:-1], out=new_run[1:])
    new_run[index.starts[1:-1][index.starts[1:-1] < n]] = True  # a new era starts a new run
    run_starts = np.flatnonzero(new_run)
    run_lengths = np.diff(np.append(run_starts, n))
    run_groups = index.codes_sorted[run_starts]
    run_ranks = (run_starts - index.starts[run_groups]) + (run_lengths + 1) / 2.0
    distinct = np.bincount(run_groups, minlength=len(index.counts))
    return order, np.repeat(run_ranks, run_lengths), distinct


def _avg_rank(
    codes: np.ndarray, values: np.ndarray, n_groups: int, index: _EraIndex | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-based ranks within each era, ties averaged (pandas ``rank(method="average")``).

    Returns ``(ranks in row order, rows per era, distinct values per era)``.
    """
    index = index if index is not None else _EraIndex(codes, n_groups)
    if len(values) == 0:
        return np.empty(0), index.counts, np.zeros(n_groups, dtype=np.int64)
    order, ranks_sorted, distinct = _sorted_ranks(values, index)
    ranks = np.empty(len(values))
    ranks[order] = ranks_sorted
    return ranks, index.counts, distinct


def _gauss_rank(
    codes: np.ndarray, values: np.ndarray, n_groups: int, index: _EraIndex | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tie-kept rank, ``(rank - 0.5) / n``, inverse normal CDF (numerai-tools' ``gaussian``)."""
    index = index if index is not None else _EraIndex(codes, n_groups)
    if len(values) == 0:
        return np.empty(0), index.counts, np.zeros(n_groups, dtype=np.int64)
    order, ranks_sorted, distinct = _sorted_ranks(values, index)
    per_row_count = np.repeat(index.counts, index.counts)  # rows are in era order here
    gauss = np.empty(len(values))
    gauss[order] = scipy.special.ndtri((ranks_sorted - 0.5) / per_row_count)
    return gauss, index.counts, distinct


def _pow15(x: np.ndarray) -> np.ndarray:
    """``sign(x) * |x| ** 1.5``, computed as ``x * sqrt(|x|)`` (same value, faster)."""
    return x * np.sqrt(np.abs(x))


def _group_pearson(
    codes: np.ndarray, x: np.ndarray, y: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` within each era (two-pass, centered sums)."""
    n_groups = len(counts)
    xc = _group_center(codes, x, counts)
    yc = _group_center(codes, y, counts)
    sxy = _group_sum(codes, xc * yc, n_groups)
    sxx = _group_sum(codes, xc * xc, n_groups)
    syy = _group_sum(codes, yc * yc, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy / np.sqrt(sxx * syy)


def _group_constant(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    lo = np.full(n_groups, np.inf)
    hi = np.full(n_groups, -np.inf)
    np.minimum.at(lo, codes, values)
    np.maximum.at(hi, codes, values)
    return lo >= hi


# --------------------------------------------------------------------------------------------
# Input checking and output shaping
# --------------------------------------------------------------------------------------------


class _Frame:
    """The columns one score needs, checked, as float64 arrays, grouped by era."""

    def __init__(
        self,
        df: pd.DataFrame,
        pred_col: PredCols,
        era_col: str,
        required: Sequence[str],
        droppable: Sequence[str],
    ) -> None:
        self.pred_cols = as_column_list(pred_col, "prediction columns")
        self.is_list = not isinstance(pred_col, str)
        require_columns(df, [*self.pred_cols, *required, *droppable, era_col], "columns")
        self.groups = era_groups(df, era_col)
        self.preds_all = numeric_matrix(df, self.pred_cols, "predictions").astype(np.float64)
        keep = np.ones(len(df), dtype=bool)
        self.left_out: dict[str, int] = {}
        self.values: dict[str, np.ndarray] = {}
        for col in droppable:
            arr = _numeric_column(df, col)
            missing = np.isnan(arr)
            self.left_out[col] = int((missing & keep).sum())
            keep &= ~missing
            self.values[col] = arr
        self.keep = keep
        if keep.all():  # nothing left out: share the arrays and the era order
            self.codes, self.preds, self.kept = self.groups.codes, self.preds_all, self.values
            self.index = _EraIndex(self.codes, self.groups.n_groups, self.groups)
        else:
            self.codes = self.groups.codes[keep]
            self.preds = self.preds_all[keep]
            self.kept = {col: arr[keep] for col, arr in self.values.items()}
            self.index = _EraIndex(self.codes, self.groups.n_groups)
        self.counts = self.index.counts
        self._warn_left_out()

    @property
    def n_groups(self) -> int:
        return self.groups.n_groups

    @property
    def rows_left_out(self) -> int:
        return sum(self.left_out.values())

    def _warn_left_out(self) -> None:
        for col, n in self.left_out.items():
            if n:
                warnings.warn(
                    f"Left out {n} row(s) whose {col!r} is NaN (scored era by era without them).",
                    ScoringWarning,
                    stacklevel=4,
                )

    def output(
        self, scores: dict[str, np.ndarray], invalid: dict[str, dict[int, str]]
    ) -> pd.Series | pd.DataFrame:
        """Series (one prediction column) or DataFrame, eras in natural order."""
        _warn_invalid(invalid, self.groups.labels)
        index = self.groups.labels.copy()
        if self.is_list:
            out: pd.Series | pd.DataFrame = pd.DataFrame(scores, index=index)
        else:
            name = self.pred_cols[0]
            out = pd.Series(scores[name], index=index, name=name)
        out.attrs["rows_left_out"] = self.rows_left_out
        return out


def _numeric_column(df: pd.DataFrame, col: str) -> np.ndarray:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        raise ScoringError(
            f"Column {col!r} must be numeric, got dtype {s.dtype}. "
            "Convert it with pd.to_numeric or pass another column."
        )
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _invalid_eras(counts: np.ndarray, checks: Iterable[tuple[np.ndarray, str]]) -> dict[int, str]:
    """Era number -> reason, for eras that cannot be scored."""
    reasons: dict[int, str] = {}
    for g in np.flatnonzero(counts < 2):
        reasons[int(g)] = f"{int(counts[g])} row(s)"
    for flags, reason in checks:
        for g in np.flatnonzero(flags):
            reasons.setdefault(int(g), reason)
    return reasons


def _warn_invalid(invalid: dict[str, dict[int, str]], labels: pd.Index) -> None:
    for col, reasons in invalid.items():
        if not reasons:
            continue
        shown = ", ".join(f"{labels[g]} ({why})" for g, why in list(reasons.items())[:5])
        more = " ..." if len(reasons) > 5 else ""
        warnings.warn(
            f"{len(reasons)} era(s) of {col!r} cannot be scored and are NaN: {shown}{more}.",
            ScoringWarning,
            stacklevel=4,
        )


# --------------------------------------------------------------------------------------------
# Per-era scores
# --------------------------------------------------------------------------------------------


def per_era_corr(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    target_col: str = "target",
    method: Method = "numerai",
    era_col: str = "era",
) -> pd.Series | pd.DataFrame:
    """Correlation of predictions with the target in each era (tutorial 2D).

    ``method="numerai"`` (Numerai's CORR today), per era:

    1. predictions: tie-kept rank (ties averaged), ``(rank - 0.5) / n``, inverse normal CDF,
       then ``sign(x) * |x| ** 1.5``;
    2. target: minus its era mean, then ``sign(x) * |x| ** 1.5``;
    3. Pearson correlation of the two.

    This equals ``numerai_tools.scoring.numerai_corr`` applied era by era.
    ``method="spearman"`` is Spearman's rho per era, the tutorial's
    ``df.groupby("era").apply(lambda d: spearmanr(d.target, d.prediction)[0])``;
    ``method="pearson"`` is the plain Pearson correlation per era.

    Parameters
    ----------
    df : pd.DataFrame
        Frame with the prediction column(s), the target and the era column. Never modified.
    pred_col : str or list of str, default "prediction"
        One column (-> Series) or several (-> DataFrame, one column each).
    target_col : str, default "target"
        Target column; rows where it is NaN are left out (counted in ``attrs["rows_left_out"]``).
    method : {"numerai", "spearman", "pearson"}, default "numerai"
    era_col : str, default "era"

    Returns
    -------
    pd.Series or pd.DataFrame
        Indexed by era in natural order.
    """
    if method not in ("numerai", "spearman", "pearson"):
        raise ScoringError(
            f"Unknown method {method!r}; use 'numerai' (Numerai's CORR), 'spearman' "
            "(the tutorial's rank correlation) or 'pearson'."
        )
    frame = _Frame(df, pred_col, era_col, required=[], droppable=[target_col])
    target = frame.kept[target_col]
    codes, counts, n = frame.codes, frame.counts, frame.n_groups
    target_const = _group_constant(codes, target, n)
    if method == "numerai":
        target_t = _pow15(_group_center(codes, target, counts))
    elif method == "spearman":
        target_t = _avg_rank(codes, target, n, frame.index)[0]
    else:
        target_t = target
    scores, invalid = {}, {}
    for j, col in enumerate(frame.pred_cols):
        x = frame.preds[:, j]
        if method == "numerai":
            g, _, distinct = _gauss_rank(codes, x, n, frame.index)
            x_t = _pow15(g)
        elif method == "spearman":
            x_t, _, distinct = _avg_rank(codes, x, n, frame.index)
        else:
            x_t = x
            distinct = np.where(_group_constant(codes, x, n), 1, 2)
        r = _group_pearson(codes, x_t, target_t, counts)
        bad = _invalid_eras(
            counts, [(distinct == 1, f"constant {col!r}"), (target_const, "constant target")]
        )
        r[list(bad)] = np.nan
        scores[col], invalid[col] = r, bad
    return frame.output(scores, invalid)


def per_era_mmc(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    meta_col: str = "meta_model",
    target_col: str = "target",
    era_col: str = "era",
) -> pd.Series | pd.DataFrame:
    """Meta Model Contribution (MMC) in each era (tutorial section 3).

    Per era (rows where the target and the meta model are both known):

    1. predictions and meta model: tie-kept rank, ``(rank - 0.5) / n``, inverse normal CDF
       (``p`` and ``m``; no 1.5 power);
    2. ``p`` orthogonalized to ``m``: ``p - m * (p . m) / (m . m)``;
    3. target times 4 when it lies in [0, 1] (buckets -2..2), minus its era mean (``t``);
    4. ``MMC = t . p_orth / n`` (a covariance).

    This equals ``numerai_tools.scoring.correlation_contribution`` applied era by era.
    Rows with a NaN meta model are left out like NaN targets and counted.
    """
    frame = _Frame(df, pred_col, era_col, required=[], droppable=[target_col, meta_col])
    target, meta = frame.kept[target_col], frame.kept[meta_col]
    codes, counts, n = frame.codes, frame.counts, frame.n_groups
    m, _, meta_distinct = _gauss_rank(codes, meta, n, frame.index)
    in_unit = _group_sum(codes, ((target < 0) | (target > 1)).astype(np.float64), n) == 0
    target_c = _group_center(codes, target * np.where(in_unit, 4.0, 1.0)[codes], counts)
    mm = _group_sum(codes, m * m, n)
    scores, invalid = {}, {}
    for j, col in enumerate(frame.pred_cols):
        p, _, distinct = _gauss_rank(codes, frame.preds[:, j], n, frame.index)
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = _group_sum(codes, p * m, n) / mm
        neutral = p - m * beta[codes]
        with np.errstate(invalid="ignore", divide="ignore"):
            mmc = _group_sum(codes, target_c * neutral, n) / counts
        bad = _invalid_eras(
            counts,
            [(distinct == 1, f"constant {col!r}"), (meta_distinct == 1, f"constant {meta_col!r}")],
        )
        mmc[list(bad)] = np.nan
        scores[col], invalid[col] = mmc, bad
    return frame.output(scores, invalid)


def per_era_fnc(
    df: pd.DataFrame,
    features: Sequence[str],
    pred_col: PredCols = "prediction",
    target_col: str = "target",
    era_col: str = "era",
) -> pd.Series | pd.DataFrame:
    """Feature Neutral Correlation (FNC) in each era (tutorial section 3).

    Per era:

    1. predictions: tie-kept rank, ``(rank - 0.5) / n``, inverse normal CDF (all rows of the era);
    2. neutralized against ``features`` plus a constant column (least-squares residual, see
       :func:`nbutils.neutralize.neutralize`);
    3. ``numerai`` correlation of the result with the target (rows with a known target).

    This equals ``numerai_tools.scoring.feature_neutral_corr`` applied era by era (its variance
    normalization step does not change a rank-based score and is skipped).
    """
    feats = as_column_list(features, "feature columns")
    frame = _Frame(df, pred_col, era_col, required=feats, droppable=[target_col])
    x_feat = numeric_matrix(df, feats, "features")
    groups, n = frame.groups, frame.n_groups
    gauss_all = np.empty_like(frame.preds_all)
    distinct_all = np.empty((n, len(frame.pred_cols)), dtype=np.int64)
    all_rows = _EraIndex(groups.codes, n, groups)
    for j in range(len(frame.pred_cols)):
        gauss_all[:, j], _, distinct_all[:, j] = _gauss_rank(
            groups.codes, frame.preds_all[:, j], n, all_rows
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)  # constant eras are reported below
        neutral_all = gauss_all - fit_by_era(gauss_all, x_feat, groups)
    neutral = np.nan_to_num(neutral_all[frame.keep])
    target = frame.kept[target_col]
    codes, counts = frame.codes, frame.counts
    target_t = _pow15(_group_center(codes, target, counts))
    target_const = _group_constant(codes, target, n)
    scores, invalid = {}, {}
    for j, col in enumerate(frame.pred_cols):
        g, _, distinct = _gauss_rank(codes, neutral[:, j], n, frame.index)
        r = _group_pearson(codes, _pow15(g), target_t, counts)
        bad = _invalid_eras(
            counts,
            [
                (distinct_all[:, j] == 1, f"constant {col!r}"),
                (distinct == 1, f"{col!r} fully explained by the features"),
                (target_const, "constant target"),
            ],
        )
        r[list(bad)] = np.nan
        scores[col], invalid[col] = r, bad
    return frame.output(scores, invalid)


# --------------------------------------------------------------------------------------------
# Feature exposure
# --------------------------------------------------------------------------------------------


def _ranks_1d(values: np.ndarray) -> np.ndarray:
    """Average ranks of one column; O(n) counting for small-range integers (int8 features)."""
    if np.issubdtype(values.dtype, np.integer) and values.size:
        lo = int(values.min())
        span = int(values.max()) - lo
        if span < 1_000_000:
            shifted = (values - lo).astype(np.intp)
            counts = np.bincount(shifted, minlength=span + 1)
            avg = np.cumsum(counts) - (counts - 1) / 2.0
            return avg[shifted]
    return scipy.stats.rankdata(values)


def feature_correlations(
    df: pd.DataFrame, features: Sequence[str], pred_col: str = "prediction"
) -> pd.Series:
    """Spearman correlation of the prediction with each feature over the whole frame (2D).

    ``pd.Series({f: spearmanr(df[f], df[pred_col])[0] for f in features})``: the numbers
    behind the tutorial's feature exposure. A feature that is constant over the frame has no
    correlation and gets NaN.
    """
    feats = as_column_list(features, "feature columns")
    pred = numeric_matrix(df, [pred_col], "predictions").astype(np.float64)[:, 0]
    x = numeric_matrix(df, feats, "features")
    pr = scipy.stats.rankdata(pred)
    prc = pr - pr.mean()
    pss = float(prc @ prc)
    out = np.full(len(feats), np.nan)
    for i in range(x.shape[1]):
        fr = _ranks_1d(x[:, i])
        frc = fr - fr.mean()
        fss = float(frc @ frc)
        if fss > 0 and pss > 0:
            out[i] = float(frc @ prc) / np.sqrt(fss * pss)
    return pd.Series(out, index=pd.Index(feats, name="feature"), name=pred_col)


def feature_exposure(
    df: pd.DataFrame, features: Sequence[str], pred_col: PredCols = "prediction"
) -> float | pd.Series:
    """The tutorial's feature exposure (2D): spread of the prediction's feature correlations.

    ``np.std([spearmanr(df[f], df[pred_col])[0] for f in features])`` over the whole frame
    (not per era), with the population standard deviation (ddof=0, ``np.std``'s default).
    Features that are constant over the frame have no correlation and are left out with a
    :class:`ScoringWarning` (the tutorial's code would return NaN). A list of prediction
    columns gives a Series.
    """
    feats = as_column_list(features, "feature columns")
    cols = as_column_list(pred_col, "prediction columns")
    require_columns(df, [*cols, *feats], "columns")
    result = {}
    for col in cols:
        corrs = feature_correlations(df, feats, col)
        flat = [f for f in feats if np.isnan(corrs[f])]
        constant_pred = bool(np.all(df[col].to_numpy() == df[col].to_numpy()[0]))
        if flat and not constant_pred:
            warnings.warn(
                f"{len(flat)} feature(s) are constant and left out of the feature exposure: "
                f"{flat[:5]}",
                ScoringWarning,
                stacklevel=2,
            )
        result[col] = float(np.std(corrs.dropna().to_numpy())) if corrs.notna().any() else np.nan
    return result[cols[0]] if isinstance(pred_col, str) else pd.Series(result, dtype=float)


def _era_exposure_stats(
    y: np.ndarray, x: np.ndarray, groups: EraGroups
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per era: ``Xc' Yc`` (eras x features x cols), ``|Xc_j|`` and ``Yc' Yc`` (centered)."""
    n_feat, n_cols = x.shape[1], y.shape[1]
    cross = np.full((groups.n_groups, n_feat, n_cols), np.nan)
    xnorm = np.full((groups.n_groups, n_feat), np.nan)
    ygram = np.full((groups.n_groups, n_cols, n_cols), np.nan)
    for g, rows in groups.iter_rows():
        if len(rows) < 2:
            continue
        xg = np.asarray(x[rows], dtype=np.float64)
        xg = xg - xg.mean(axis=0)
        yg = y[rows] - y[rows].mean(axis=0)
        cross[g] = xg.T @ yg
        xnorm[g] = np.sqrt(np.einsum("ij,ij->j", xg, xg))
        ygram[g] = yg.T @ yg
    return cross, xnorm, ygram


def _max_exposure_per_era(
    cross: np.ndarray, xnorm: np.ndarray, ygram: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Per era ``max_j |corr(X_j, Y @ weights)|`` from the precomputed era statistics."""
    num = cross @ weights
    ynorm = np.sqrt(np.einsum("i,gij,j->g", weights, ygram, weights))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(num / (xnorm * ynorm[:, None]))
    corr[~np.isfinite(corr)] = np.nan
    out = np.full(len(corr), np.nan)
    has = ~np.all(np.isnan(corr), axis=1)
    out[has] = np.nanmax(corr[has], axis=1)
    return out


def max_feature_exposure(
    df: pd.DataFrame,
    features: Sequence[str],
    pred_col: PredCols = "prediction",
    era_col: str = "era",
) -> float | pd.Series:
    """Max feature exposure: per era the largest |Pearson| with any feature, mean over eras.

    Per era this is ``numerai_tools.scoring.max_feature_correlation`` (its absolute value).
    Features constant within an era are skipped in that era; eras of fewer than two rows or
    with constant predictions are left out of the mean with a :class:`ScoringWarning`.
    A list of prediction columns gives a Series.
    """
    feats = as_column_list(features, "feature columns")
    cols = as_column_list(pred_col, "prediction columns")
    require_columns(df, [*cols, *feats, era_col], "columns")
    preds = numeric_matrix(df, cols, "predictions").astype(np.float64)
    x = numeric_matrix(df, feats, "features")
    groups = era_groups(df, era_col)
    cross, xnorm, ygram = _era_exposure_stats(preds, x, groups)
    result = {}
    for j, col in enumerate(cols):
        w = np.zeros(len(cols))
        w[j] = 1.0
        per_era = _max_exposure_per_era(cross, xnorm, ygram, w)
        bad = {int(g): "fewer than 2 rows or constant" for g in np.flatnonzero(np.isnan(per_era))}
        _warn_invalid({col: bad}, groups.labels)
        result[col] = float(np.nanmean(per_era)) if (~np.isnan(per_era)).any() else np.nan
    return result[cols[0]] if isinstance(pred_col, str) else pd.Series(result, dtype=float)


# --------------------------------------------------------------------------------------------
# Summaries of per-era scores
# --------------------------------------------------------------------------------------------


def _clean(scores: pd.Series | pd.DataFrame | np.ndarray | Sequence[float]) -> pd.Series:
    s = scores if isinstance(scores, pd.Series) else pd.Series(np.asarray(scores, dtype=float))
    return s.astype(float).dropna()


def _per_column(func, scores, *args) -> float | pd.Series:
    if isinstance(scores, pd.DataFrame):
        return pd.Series({c: func(scores[c], *args) for c in scores.columns}, dtype=float)
    return func(scores, *args)


def sharpe(scores, ddof: int = 0) -> float | pd.Series:
    """Sharpe ratio of per-era scores: ``mean / std``; NaN eras are ignored.

    Numerai computes it with the population standard deviation (``ddof=0``, the default
    here, as ``numerai_tools.scoring.sharpe_ratio``). The tutorial's ``corrs.mean() /
    corrs.std()`` uses pandas' sample standard deviation: pass ``ddof=1`` to get that number.
    With n eras the two differ by the factor ``sqrt(n / (n - 1))``. NaN when fewer than two
    eras or a zero standard deviation. A DataFrame gives one value per column.
    """
    return _per_column(_sharpe_1d, scores, ddof)


def _sharpe_1d(scores, ddof: int) -> float:
    s = _clean(scores)
    if len(s) < 2:
        return np.nan
    sd = float(s.std(ddof=ddof))
    return float(s.mean()) / sd if sd > 0 else np.nan


def max_drawdown(scores) -> float:
    """Largest fall of the cumulative score from its running maximum (0 or negative).

    ``min_t (C_t - max(0, C_1, ..., C_t))`` with ``C_t`` the cumulative sum of the per-era
    scores in era order; the running maximum starts at 0 (before the first era), so a model
    that loses from its first era has a drawdown too. NaN eras are skipped. The tutorial's
    guideline is "-0.05 or better" (``>= -0.05``). A DataFrame gives one value per column.
    """
    return _per_column(_max_drawdown_1d, scores)


def _max_drawdown_1d(scores) -> float:
    s = _clean(scores).to_numpy()
    if len(s) == 0:
        return np.nan
    cum = np.cumsum(s)
    peak = np.maximum.accumulate(np.maximum(cum, 0.0))
    return float(min(0.0, (cum - peak).min()))


def payout(scores) -> float:
    """The tutorial's payout (2D): mean over eras of ``clip(score / 0.2, -1, 1)``.

    The share of the stake paid (or burned) per era under the 2021 rules, where a score of
    0.2 or more paid the full stake. NaN eras are skipped. See :func:`stake_payout` for today.
    """
    return _per_column(_payout_1d, scores)


def _payout_1d(scores) -> float:
    s = _clean(scores)
    if len(s) == 0:
        return np.nan
    return float(np.clip(s / TUTORIAL_PAYOUT_SCALE, -1.0, 1.0).mean())


def stake_payout(
    stake,
    corr,
    mmc,
    payout_factor: float = 1.0,
    corr_multiplier: float = CORR_MULTIPLIER,
    mmc_multiplier: float = MMC_MULTIPLIER,
):
    """NMR paid (positive) or burned (negative) for one round under today's rules.

    ``stake * clip(payout_factor * (corr * corr_multiplier + mmc * mmc_multiplier),
    -0.05, 0.05)``.

    Defaults are Numerai's current tournament settings: ``0.5 x CORR + 2 x MMC`` and a clip at
    5 % of the stake per round. ``payout_factor`` is published per round (1 while the total
    stake is under Numerai's threshold, smaller above it); 1.0 shows the uncapped payout.
    Arguments may be numbers, arrays or Series (e.g. per-era scores) and broadcast together.

    Raises
    ------
    ScoringError
        If ``stake`` or ``payout_factor`` is negative.
    """
    if np.any(np.asarray(stake) < 0):
        raise ScoringError("stake must be 0 or more (an amount of NMR).")
    if payout_factor < 0:
        raise ScoringError(f"payout_factor must be 0 or more, got {payout_factor}.")
    rate = np.clip(
        payout_factor * (corr * corr_multiplier + mmc * mmc_multiplier), -PAYOUT_CLIP, PAYOUT_CLIP
    )
    result = stake * rate
    return float(result) if np.ndim(result) == 0 else result


# --------------------------------------------------------------------------------------------
# The tutorial's summary and the section-3 diagnostics table
# --------------------------------------------------------------------------------------------


def _collect_warnings(func, *args, **kwargs):
    """Run ``func`` and return ``(result, ScoringWarning messages)`` without showing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ScoringWarning)
        result = func(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, ScoringWarning)]


def _reemit(messages: list[str]) -> None:
    for msg in dict.fromkeys(messages):
        warnings.warn(msg, ScoringWarning, stacklevel=3)


def _mae(df: pd.DataFrame, col: str, target_col: str) -> float:
    known = df[target_col].notna().to_numpy()
    pred = df[col].to_numpy(dtype=np.float64)[known]
    target = df[target_col].to_numpy(dtype=np.float64)[known]
    return float(np.mean(np.abs(target - pred))) if len(pred) else np.nan


def evaluate(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    target_col: str = "target",
    era_col: str = "era",
    features: Sequence[str] | None = None,
    example_col: str | None = None,
    meta_col: str | None = None,
) -> pd.Series | pd.DataFrame:
    """The tutorial's model summary (2D) next to Numerai's own numbers.

    Always present (the tutorial's ``evaluate``, Spearman per era):

    - ``spearman_mean``, ``spearman_std`` (pandas ``.std()``, ddof=1, as the tutorial);
    - ``spearman_sharpe_tutorial``: ``mean / std`` with ddof=1, the tutorial's Sharpe;
    - ``spearman_sharpe``: the same with ddof=0, as Numerai computes Sharpe (the two differ by
      ``sqrt(n / (n - 1))`` for n eras, a few percent on ~100 eras);
    - ``payout``: mean of ``clip(spearman / 0.2, -1, 1)``; ``mae``: mean absolute error of the
      prediction against the target over rows with a target (sklearn's
      ``mean_absolute_error``, as the tutorial printed it);

    Numerai's CORR (``per_era_corr(method="numerai")``):

    - ``numerai_corr_mean``, ``numerai_corr_std`` (ddof=0), ``numerai_corr_sharpe`` (ddof=0),
      ``numerai_corr_sharpe_tutorial`` (ddof=1), ``max_drawdown``;

    Only where their inputs are given:

    - ``features``: ``feature_exposure`` (the tutorial's std of Spearman correlations, whole
      frame), ``max_feature_exposure`` (per era, mean) and ``fnc_mean``;
    - ``meta_col``: ``mmc_mean``;
    - ``example_col``: ``corr_with_example_preds`` (mean per-era Spearman between the
      predictions and the example predictions).

    Returns a Series, or a DataFrame (metrics x prediction columns) for a list of columns.
    """
    cols = as_column_list(pred_col, "prediction columns")
    msgs: list[str] = []

    def run(func, *args, **kwargs):
        result, caught = _collect_warnings(func, *args, **kwargs)
        msgs.extend(caught)
        return result

    spear = _as_frame(run(per_era_corr, df, cols, target_col, "spearman", era_col))
    corr = _as_frame(run(per_era_corr, df, cols, target_col, "numerai", era_col))
    table: dict[str, pd.Series] = {
        "spearman_mean": spear.mean(),
        "spearman_std": spear.std(ddof=1),
        "spearman_sharpe_tutorial": sharpe(spear, ddof=1),
        "spearman_sharpe": sharpe(spear),
        "payout": payout(spear),
        "mae": pd.Series({c: _mae(df, c, target_col) for c in cols}),
        "numerai_corr_mean": corr.mean(),
        "numerai_corr_std": corr.std(ddof=0),
        "numerai_corr_sharpe": sharpe(corr),
        "numerai_corr_sharpe_tutorial": sharpe(corr, ddof=1),
        "max_drawdown": max_drawdown(corr),
    }
    if features is not None:
        table["feature_exposure"] = run(feature_exposure, df, features, cols)
        table["max_feature_exposure"] = run(max_feature_exposure, df, features, cols, era_col)
        table["fnc_mean"] = _as_frame(
            run(per_era_fnc, df, features, cols, target_col, era_col)
        ).mean()
    if meta_col is not None:
        table["mmc_mean"] = _as_frame(
            run(per_era_mmc, df, cols, meta_col, target_col, era_col)
        ).mean()
    if example_col is not None:
        table["corr_with_example_preds"] = _corr_with_example(df, cols, example_col, era_col, run)
    _reemit(msgs)
    out = pd.DataFrame(table).T.astype(float)
    out.columns.name = None
    return out[cols[0]].rename(cols[0]) if isinstance(pred_col, str) else out


def _as_frame(scores: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return scores.to_frame() if isinstance(scores, pd.Series) else scores


def _corr_with_example(df, cols, example_col, era_col, run) -> pd.Series:
    """Mean per-era Spearman correlation between each prediction and the example predictions."""
    return pd.Series(
        {c: float(run(per_era_corr, df, c, example_col, "spearman", era_col).mean()) for c in cols},
        dtype=float,
    )


#: The nine rows of the tutorial's section-3 table, in its order.
DIAGNOSTIC_ROWS = (
    "Validation Sharpe",
    "Validation Mean",
    "Feature Neutral Mean",
    "Validation SD",
    "Feature Exposure",
    "Max Drawdown",
    "Corr + MMC Sharpe",
    "MMC Mean",
    "Corr with Example Preds",
)

# Numerai's website (2020-2021) coloured each diagnostic by where it fell between two
# reference values (forum thread "Coloring validation metrics"): above 75 % of the way from
# the first to the second value was "good", below 35 % "bad", in between "fair".
_SITE_INTERVALS = {
    "Feature Neutral Mean": (0.006, 0.022),
    "Validation SD": (0.0303, 0.0168),
    "Feature Exposure": (0.4, 0.0661),
    "Corr + MMC Sharpe": (0.41, 1.34),
    "MMC Mean": (-0.008, 0.008),
}


def _site_status(value: float, row: str) -> tuple[str, str]:
    low, high = _SITE_INTERVALS[row]
    good = low + 0.75 * (high - low)
    bad = low + 0.35 * (high - low)
    if high > low:
        text = f">= {good:.3g} good, < {bad:.3g} bad (Numerai site scale)"
        status = "good" if value >= good else ("bad" if value < bad else "fair")
    else:
        text = f"<= {good:.3g} good, > {bad:.3g} bad (Numerai site scale)"
        status = "good" if value <= good else ("bad" if value > bad else "fair")
    return text, status


def _tutorial_status(value: float, row: str) -> tuple[str, str]:
    if row == "Validation Sharpe":
        return ">= 1 (tutorial)", "good" if value >= 1 else "bad"
    if row == "Validation Mean":
        return ">= 0.025 (tutorial)", "good" if value >= 0.025 else "bad"
    if row == "Max Drawdown":
        return ">= -0.05 (tutorial)", "good" if value >= -0.05 else "bad"
    return "0.5 to 0.8 (tutorial)", "good" if 0.5 <= value <= 0.8 else "bad"


def _row_status(row: str, value: float) -> tuple[str, str]:
    rule = _site_status if row in _SITE_INTERVALS else _tutorial_status
    text, status = rule(value if np.isfinite(value) else 0.0, row)
    return text, status if np.isfinite(value) else "n/a"


def diagnostics(
    df: pd.DataFrame,
    pred_col: str = "prediction",
    target_col: str = "target",
    era_col: str = "era",
    features: Sequence[str] | None = None,
    neutral_features: Sequence[str] | None = None,
    example_col: str | None = None,
    meta_col: str | None = None,
) -> pd.DataFrame:
    """The tutorial's section-3 diagnostics table: value, guideline and status per row.

    Rows (always all nine, in the tutorial's order; NaN and status "n/a" where an input is
    missing): Validation Sharpe (Sharpe of per-era Numerai CORR, ddof=0), Validation Mean,
    Feature Neutral Mean (FNC against ``neutral_features``, default ``features``), Validation
    SD (ddof=0), Feature Exposure (:func:`max_feature_exposure` against ``features``, the
    per-era definition the site used), Max Drawdown (of CORR), Corr + MMC Sharpe (Sharpe of
    per-era CORR + MMC), MMC Mean, Corr with Example Preds (mean per-era Spearman).

    MMC is against ``meta_col`` when given, else against ``example_col``: Numerai's diagnostics
    used the example predictions as a stand-in for the meta model, which is not public for
    most eras.

    Status: the tutorial's guidelines are pass/fail ("good"/"bad"): Sharpe >= 1, mean >= 0.025,
    max drawdown >= -0.05, correlation with example predictions between 0.5 and 0.8. The other
    rows use the colour scale of Numerai's website at the time: "good", "fair" or "bad" (see
    ``docs/diagnostics.md``).
    """
    msgs: list[str] = []

    def run(func, *args, **kwargs):
        result, caught = _collect_warnings(func, *args, **kwargs)
        msgs.extend(caught)
        return result

    corr = run(per_era_corr, df, pred_col, target_col, "numerai", era_col)
    values = dict.fromkeys(DIAGNOSTIC_ROWS, np.nan)
    values["Validation Sharpe"] = sharpe(corr)
    values["Validation Mean"] = float(corr.mean())
    values["Validation SD"] = float(corr.std(ddof=0))
    values["Max Drawdown"] = max_drawdown(corr)
    neutral = neutral_features if neutral_features is not None else features
    if neutral is not None:
        values["Feature Neutral Mean"] = float(
            run(per_era_fnc, df, neutral, pred_col, target_col, era_col).mean()
        )
    if features is not None:
        values["Feature Exposure"] = run(max_feature_exposure, df, features, pred_col, era_col)
    mmc_ref = meta_col if meta_col is not None else example_col
    if mmc_ref is not None:
        mmc = run(per_era_mmc, df, pred_col, mmc_ref, target_col, era_col)
        values["MMC Mean"] = float(mmc.mean())
        values["Corr + MMC Sharpe"] = sharpe(corr + mmc)
    if example_col is not None:
        values["Corr with Example Preds"] = float(
            run(per_era_corr, df, pred_col, example_col, "spearman", era_col).mean()
        )
    _reemit(msgs)
    rows = []
    for name in DIAGNOSTIC_ROWS:
        value = float(values[name])
        guideline, status = _row_status(name, value)
        rows.append({"value": value, "guideline": guideline, "status": status})
    return pd.DataFrame(rows, index=pd.Index(DIAGNOSTIC_ROWS, name="metric"))


def neutralization_sweep(
    df: pd.DataFrame,
    pred_col: str,
    features: Sequence[str],
    proportions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    target_col: str = "target",
    era_col: str | None = "era",
    score_era_col: str = "era",
) -> pd.DataFrame:
    """Scores of the prediction neutralized against ``features`` at several proportions (2F).

    For each proportion ``p`` the prediction becomes
    ``neutralize(df, pred_col, features, p, era_col=era_col)`` (raw values, as
    :func:`nbutils.neutralize.neutralize`: per era, or as one block when ``era_col`` is None,
    the tutorial's neutralization against example predictions). The table gives the
    ``corr_mean``, ``corr_std`` (ddof=0), ``corr_sharpe`` and ``max_drawdown`` of its per-era
    Numerai CORR, and its ``max_feature_exposure`` (per era the largest |Pearson| with any of
    ``features``, mean over eras). The least-squares fit is computed once and reused for every
    proportion.

    Parameters
    ----------
    era_col : str or None, default "era"
        Eras for the neutralization; None neutralizes the whole frame at once.
    score_era_col : str, default "era"
        Eras for the scores when ``era_col`` is None (scores are always per era).

    Returns
    -------
    pd.DataFrame
        Indexed by ``proportion``, in the order given.
    """
    props = [check_proportion(p) for p in proportions]
    if not props:
        raise ScoringError("No proportions given: pass e.g. [0, 0.5, 1].")
    feats = as_column_list(features, "feature columns")
    score_era = era_col if era_col is not None else score_era_col
    require_columns(df, [pred_col, target_col, score_era, *feats], "columns")
    y = numeric_matrix(df, [pred_col], "predictions").astype(np.float64)
    x = numeric_matrix(df, feats, "features")
    groups = era_groups(df, score_era)
    fitted = fit_by_era(y, x, groups if era_col is not None else era_groups(df, None), [pred_col])
    # A prediction constant in an era is its own fit (NaN from fit_by_era): keep it constant.
    fitted = np.where(np.isnan(fitted), y, fitted)
    cross, xnorm, ygram = _era_exposure_stats(np.hstack([y, fitted]), x, groups)
    rows = []
    msgs: list[str] = []
    for p in props:
        tmp = pd.DataFrame(
            {
                "prediction": (y - p * fitted)[:, 0],
                "target": df[target_col].to_numpy(),
                "era": df[score_era].to_numpy(),
            }
        )
        corr, caught = _collect_warnings(per_era_corr, tmp, "prediction", "target", "numerai")
        msgs.extend(caught)
        exposure = _max_exposure_per_era(cross, xnorm, ygram, np.array([1.0, -p]))
        rows.append(
            {
                "proportion": p,
                "corr_mean": float(corr.mean()),
                "corr_std": float(corr.std(ddof=0)),
                "corr_sharpe": sharpe(corr),
                "max_drawdown": max_drawdown(corr),
                "max_feature_exposure": float(np.nanmean(exposure))
                if (~np.isnan(exposure)).any()
                else np.nan,
            }
        )
    _reemit(msgs)
    return pd.DataFrame(rows).set_index("proportion")
