"""Tutorial step 2D (model strength) and section 3 (diagnostics): the scores, per era.

Every per-era function takes a DataFrame with an era column and returns a Series indexed by era
in natural order ("era2" before "era10"), or a DataFrame (eras x columns) when ``pred_col`` is a
list of several prediction columns. The definitions are Numerai's, applied era by era:

- ``per_era_corr(method="numerai")`` equals ``numerai_tools.scoring.numerai_corr``;
- ``per_era_mmc`` equals ``numerai_tools.scoring.correlation_contribution``;
- ``per_era_bmc`` is ``correlation_contribution`` against the benchmark models' ensemble;
- ``per_era_fnc`` equals ``numerai_tools.scoring.feature_neutral_corr``;
- ``per_era_corr(method="spearman")`` is the tutorial's ``spearmanr`` per era.

Each score's docstring lists its steps and its body does them in that order, one comment per
step. The steps are per-era kernels (:mod:`nbutils._era_kernels`: ranks, gaussianization,
sums, Pearson) that score all eras at once on rows put in era order; only the least-squares
part of FNC loops over eras in numpy (:mod:`nbutils.neutralize`). Arithmetic is float64.
The tutorial's summary, the section-3 table and the neutralization sweep are in
:mod:`nbutils.diagnostics` (also importable from here, as the notebooks do).

Input rules, the same everywhere:

- rows whose target (or meta model) is NaN are left out era by era; a :class:`ScoringWarning`
  says how many, and the result's ``attrs["rows_left_out"]`` holds the count;
- NaN or infinite predictions or features, and infinite targets or meta models, raise
  :class:`~nbutils.errors.ScoringError` naming the column; so do missing, duplicated or
  non-numeric columns; inputs are never modified;
- an era with fewer than two rows, or constant predictions or meta model, scores NaN with a
  :class:`ScoringWarning` instead of failing (numerai-tools would raise or return NaN);
- an era whose target is constant: CORR, Spearman, Pearson and FNC are NaN with a
  :class:`ScoringWarning` (a correlation with a constant is undefined; numerai-tools gives NaN
  too); MMC is 0.0, as numerai-tools' ``correlation_contribution`` gives (the centered target is
  0, and so is its covariance with anything), also with a :class:`ScoringWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.stats

from nbutils._era_kernels import (
    center,
    era_constant,
    era_dot,
    era_min_max,
    era_pearson,
    era_ranks,
    exposure_stats,
    max_exposure_per_era,
    pow15,
    ranks_1d,
)
from nbutils._score_inputs import PredCols, ScoreFrame, invalid_eras, warn_invalid
from nbutils.checks import (
    ScoringWarning,
    as_column_list,
    check_number,
    numeric_matrix,
    require_columns,
)
from nbutils.ensemble import target_ensemble
from nbutils.eras import era_groups
from nbutils.errors import ScoringError
from nbutils.neutralize import fit_by_era

__all__ = [
    "ScoringWarning",
    "feature_correlations",
    "feature_exposure",
    "max_drawdown",
    "max_feature_exposure",
    "payout",
    "per_era_bmc",
    "per_era_corr",
    "per_era_fnc",
    "per_era_mmc",
    "sharpe",
    "stake_payout",
]

Method = Literal["numerai", "spearman", "pearson"]
#: Scores per era: a Series, a DataFrame (one column per prediction), an array or a list.
Scores = pd.Series | pd.DataFrame | np.ndarray | Sequence[float]

#: Today's payout multipliers: ``0.5 x CORR + 2 x MMC``. Source: Numerai's docs, "Staking",
#: section "Payouts" (docs.numer.ai/numerai-tournament/staking): fixed at these values for every
#: round starting on or after 2 January 2024.
CORR_MULTIPLIER = 0.5
MMC_MULTIPLIER = 2.0
#: Per-round payout or burn is clipped to +-5 % of the stake (same page).
PAYOUT_CLIP = 0.05
#: ``payout_factor = min(1, stake_threshold / total NMR at risk)`` (same page): 1 while the total
#: stake is under the threshold (72,000 NMR for the Numerai tournament), smaller above it.
PAYOUT_FACTOR = 1.0
#: The tutorial's payout scale: a per-era score of 0.2 pays the full 100 % of the stake.
TUTORIAL_PAYOUT_SCALE = 0.2

# --------------------------------------------------------------------------------------------
# Per-era scores
# --------------------------------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method not in ("numerai", "spearman", "pearson"):
        raise ScoringError(
            f"Unknown method {method!r}; use 'numerai' (Numerai's CORR), 'spearman' "
            "(the tutorial's rank correlation) or 'pearson'."
        )


def _prediction_transform(
    values: np.ndarray, starts: np.ndarray, method: Method
) -> tuple[np.ndarray, np.ndarray]:
    """The prediction side of each correlation, and its number of distinct values per era.

    numerai: tie-kept rank, gaussianize, ``sign(x) |x| ** 1.5``; spearman: tie-kept rank;
    pearson: the values themselves.
    """
    if method == "numerai":
        gauss, distinct = era_ranks(values, starts, gaussian=True)
        return pow15(gauss), distinct
    if method == "spearman":
        return era_ranks(values, starts)
    return values, np.where(era_constant(values, starts), 1, 2)


def _target_transform(target: np.ndarray, starts: np.ndarray, method: Method) -> np.ndarray:
    """The target side: numerai: centered on its era mean, then ``sign(x) |x| ** 1.5``;
    spearman: tie-kept rank; pearson: the values themselves."""
    if method == "numerai":
        return pow15(center(target, starts))
    if method == "spearman":
        return era_ranks(target, starts)[0]
    return target


def per_era_corr(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    target_col: str = "target",
    method: Method = "numerai",
    era_col: str = "era",
) -> pd.Series | pd.DataFrame:
    """Correlation of predictions with the target in each era (tutorial 2D).

    ``method="numerai"`` (Numerai's CORR today), per era:

    1. target: minus its era mean, then ``sign(x) * |x| ** 1.5``;
    2. predictions: tie-kept rank (ties averaged), ``(rank - 0.5) / n``, inverse normal CDF,
       then ``sign(x) * |x| ** 1.5``;
    3. Pearson correlation of the two.

    This equals ``numerai_tools.scoring.numerai_corr`` applied era by era.
    ``method="spearman"`` ranks both sides instead (Spearman's rho per era, the tutorial's
    ``df.groupby("era").apply(lambda d: spearmanr(d.target, d.prediction)[0])``);
    ``method="pearson"`` correlates the values as they are.

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
    _check_method(method)
    frame = ScoreFrame(df, pred_col, era_col, droppable=[target_col])
    target, starts = frame.kept[target_col], frame.starts
    # 1. The target: centered and accentuated (numerai), ranked (spearman) or as is.
    target_t = _target_transform(target, starts, method)
    target_const = era_constant(target, starts)
    scores, invalid = {}, {}
    for first, block in frame.pred_blocks():  # bounded memory however many columns
        for j, values in enumerate(block):
            col = frame.pred_cols[first + j]
            # 2. The predictions: ranked, gaussianized and accentuated (numerai), ranked, or as is.
            pred_t, distinct = _prediction_transform(values, starts, method)
            # 3. Pearson correlation per era.
            scores[col] = era_pearson(pred_t, target_t, starts)
            invalid[col] = invalid_eras(
                frame.counts,
                [(distinct == 1, f"constant {col!r}"), (target_const, "constant target")],
            )
    return frame.output(scores, invalid)


# Deliberate repeat (the `duplicates` tool pairs it with per_era_corr's parameter list): the public scores
# share one parameter vocabulary (df, pred_col, ..., target_col, era_col) on purpose.
def per_era_mmc(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    meta_col: str = "meta_model",
    target_col: str = "target",
    era_col: str = "era",
) -> pd.Series | pd.DataFrame:
    """Meta Model Contribution (MMC) in each era (tutorial section 3).

    Per era (rows where the target and the meta model are both known):

    1. meta model: tie-kept rank, ``(rank - 0.5) / n``, inverse normal CDF (``m``; once for
       all prediction columns);
    2. target: times 4 when it lies in [0, 1] (buckets -2..2), minus its era mean (``t``);
    3. each prediction column ranked and gaussianized like the meta model (``p``; no 1.5 power);
    4. ``p`` orthogonalized to ``m``: ``p - m * (p . m) / (m . m)``;
    5. ``MMC = t . p_orth / n`` (a covariance).

    This equals ``numerai_tools.scoring.correlation_contribution`` applied era by era. Rows with
    a NaN meta model are left out like NaN targets and counted. An era whose target is constant
    scores 0.0, as in numerai-tools (``t`` is 0 there), with a :class:`ScoringWarning`.
    """
    frame = ScoreFrame(df, pred_col, era_col, droppable=[target_col, meta_col])
    target, meta = frame.kept[target_col], frame.kept[meta_col]
    starts, counts = frame.starts, frame.counts
    # 1. The meta model: rank and gaussianize, once for every prediction column.
    m, meta_distinct = era_ranks(meta, starts, gaussian=True)
    mm = era_dot(m, m, starts)
    # 2. The target: buckets -2..2 when the era's target lies in [0, 1], centered. The factor
    # (4, or 1 for a target outside [0, 1]) multiplies the per-era sums of step 5 instead.
    t_min, t_max = era_min_max(target, starts)
    bucket = np.where((t_min < 0) | (t_max > 1), 1.0, 4.0)
    target_c = center(target, starts)
    _warn_constant_target_mmc((t_min == t_max) & (counts > 1), frame)
    tm = era_dot(target_c, m, starts)
    scores, invalid = {}, {}
    for first, block in frame.pred_blocks():
        for j, values in enumerate(block):
            col = frame.pred_cols[first + j]
            # 3. The predictions: rank and gaussianize.
            p, distinct = era_ranks(values, starts, gaussian=True)
            # 4. Orthogonalize to the meta model: p - beta m, beta = (p . m) / (m . m);
            # 5. its covariance with the target: (t . p - beta (t . m)) / n.
            with np.errstate(invalid="ignore", divide="ignore"):
                beta = era_dot(p, m, starts) / mm
                scores[col] = bucket * (era_dot(target_c, p, starts) - beta * tm) / counts
            invalid[col] = invalid_eras(
                counts,
                [
                    (distinct == 1, f"constant {col!r}"),
                    (meta_distinct == 1, f"constant {meta_col!r}"),
                ],
            )
    return frame.output(scores, invalid)


def per_era_bmc(
    df: pd.DataFrame,
    pred_col: PredCols = "prediction",
    benchmark_cols: Sequence[str] = (),
    target_col: str = "target",
    era_col: str = "era",
    weights: Mapping[str, float] | Sequence[float] | None = None,
) -> pd.Series | pd.DataFrame:
    """Benchmark Model Contribution (BMC) in each era: MMC measured against the benchmark models.

    Numerai's definition (docs.numer.ai, "Meta Model Contribution (MMC)"; numerai/docs,
    numerai-tournament/scoring/meta-model-contribution-mmc.md): "BMC is the covariance of a
    model with the target, after its predictions have been neutralized to the stake-weighted
    Benchmark Models", computed like MMC (numerai-tools' ``correlation_contribution``) with the
    benchmark ensemble in place of the meta model. Per era:

    1. the benchmark ensemble ``b``: each benchmark column ranked within the era,
       ``(rank - 0.5) / n``, then averaged with ``weights``
       (:func:`nbutils.ensemble.target_ensemble`). Numerai weights by the benchmark models'
       stakes, which the data files do not hold: by default every benchmark counts the same;
       pass the stakes as ``weights`` to follow Numerai exactly;
    2. ``BMC = correlation_contribution(predictions, b, target)``: :func:`per_era_mmc` with
       ``b`` as the meta model (rank and gaussianize both, orthogonalize the predictions to
       ``b``, covariance with the centered target).

    With a single benchmark column, step 1 is a rank, which step 2 ranks again: BMC is exactly
    ``correlation_contribution`` against that column. Benchmark columns must be finite (no NaN).
    """
    benchmarks = as_column_list(benchmark_cols, "benchmark columns")
    clash = sorted(set(as_column_list(pred_col, "prediction columns")) & set(benchmarks))
    if clash:
        raise ScoringError(
            f"{clash} are both prediction and benchmark columns: a model's BMC against itself is "
            "0 by construction; pass the benchmark columns without the prediction column."
        )
    ensemble = target_ensemble(df, benchmarks, weights=weights, era_col=era_col)
    preds = as_column_list(pred_col, "prediction columns")
    require_columns(df, [era_col, target_col, *preds], "columns")
    name = "__benchmark_ensemble__"
    frame = df[[era_col, target_col, *preds]].assign(**{name: ensemble})
    return per_era_mmc(frame, pred_col, meta_col=name, target_col=target_col, era_col=era_col)


def _warn_constant_target_mmc(constant: np.ndarray, frame: ScoreFrame) -> None:
    if constant.any():
        eras = [str(frame.groups.labels[g]) for g in np.flatnonzero(constant)]
        warnings.warn(
            f"{len(eras)} era(s) have a constant target ({', '.join(eras[:5])}"
            f"{' ...' if len(eras) > 5 else ''}): their MMC is 0.0, as numerai-tools gives.",
            ScoringWarning,
            stacklevel=3,
        )


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
    frame = ScoreFrame(df, pred_col, era_col, droppable=[target_col], required=feats)
    x_feat = numeric_matrix(df, feats, "features")
    groups = frame.groups
    # 1. Rank and gaussianize the predictions on every row of each era.
    ranked = [era_ranks(p, groups.starts, gaussian=True) for p in frame.preds_all]
    gauss_all = np.array([g for g, _ in ranked])
    # 2. Neutralize against the features (least squares per era, in row order).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)  # constant eras are reported below
        fitted = fit_by_era(groups.to_row_order(gauss_all.T), x_feat, groups)
    neutral = np.nan_to_num(gauss_all - groups.to_era_order(fitted).T)[:, frame.keep]
    # 3. Numerai CORR of the neutral predictions with the known targets.
    target, starts = frame.kept[target_col], frame.starts
    target_t = _target_transform(target, starts, "numerai")
    target_const = era_constant(target, starts)
    scores, invalid = {}, {}
    for j, col in enumerate(frame.pred_cols):
        pred_t, distinct = _prediction_transform(neutral[j], starts, "numerai")
        scores[col] = era_pearson(pred_t, target_t, starts)
        invalid[col] = invalid_eras(
            frame.counts,
            [
                (ranked[j][1] == 1, f"constant {col!r}"),
                (distinct == 1, f"{col!r} fully explained by the features"),
                (target_const, "constant target"),
            ],
        )
    return frame.output(scores, invalid)


# --------------------------------------------------------------------------------------------
# Feature exposure
# --------------------------------------------------------------------------------------------


def feature_correlations(
    df: pd.DataFrame, features: Sequence[str], pred_col: str = "prediction"
) -> pd.Series:
    """Spearman correlation of the prediction with each feature over the whole frame (2D).

    ``pd.Series({f: spearmanr(df[f], df[pred_col])[0] for f in features})``: the numbers
    behind the tutorial's feature exposure. A feature that is constant over the frame has no
    correlation and gets NaN.

    Steps: rank the prediction and each feature (ties averaged), center both, then
    ``r_f = (rf . rp) / sqrt((rf . rf) (rp . rp))``.
    """
    feats = as_column_list(features, "feature columns")
    pred = numeric_matrix(df, [pred_col], "predictions").astype(np.float64)[:, 0]
    x = numeric_matrix(df, feats, "features")
    # Rank and center the prediction.
    pr = scipy.stats.rankdata(pred)
    prc = pr - pr.mean()
    pss = float(prc @ prc)
    out = np.full(len(feats), np.nan)
    for i in range(x.shape[1]):
        # Rank and center the feature, then Pearson of the two rank vectors.
        fr = ranks_1d(x[:, i])
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
        # Spearman correlation with each feature, then their population std.
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


def max_feature_exposure(
    df: pd.DataFrame,
    features: Sequence[str],
    pred_col: PredCols = "prediction",
    era_col: str = "era",
) -> float | pd.Series:
    """Max feature exposure: per era the largest |Pearson| with any feature, mean over eras.

    Per era this is ``numerai_tools.scoring.max_feature_correlation`` (its absolute value):

    1. center the prediction and every feature on their era means;
    2. ``max_j |Xc_j . pc| / (|Xc_j| |pc|)``, features constant in the era skipped;
    3. mean over the eras.

    Eras of fewer than two rows or with constant predictions are left out of the mean with a
    :class:`ScoringWarning`. A list of prediction columns gives a Series.
    """
    feats = as_column_list(features, "feature columns")
    cols = as_column_list(pred_col, "prediction columns")
    require_columns(df, [*cols, *feats, era_col], "columns")
    preds = numeric_matrix(df, cols, "predictions").astype(np.float64)
    x = numeric_matrix(df, feats, "features")
    groups = era_groups(df, era_col)
    # 1. Centered cross products per era, once for every prediction column.
    cross, xnorm, ygram = exposure_stats(preds, x, groups.rows_by_era())
    result = {}
    for j, col in enumerate(cols):
        # 2. The largest |correlation| with a feature in each era.
        per_era = max_exposure_per_era(cross, xnorm, ygram, np.eye(len(cols))[j])
        bad = {
            int(g): "fewer than 2 rows or constant predictions"
            for g in np.flatnonzero(np.isnan(per_era))
        }
        warn_invalid({col: bad}, groups.labels)
        # 3. Mean over the eras that have one.
        result[col] = float(np.nanmean(per_era)) if (~np.isnan(per_era)).any() else np.nan
    return result[cols[0]] if isinstance(pred_col, str) else pd.Series(result, dtype=float)


# --------------------------------------------------------------------------------------------
# Summaries of per-era scores
# --------------------------------------------------------------------------------------------


def _clean(scores: Scores) -> pd.Series:
    s = scores if isinstance(scores, pd.Series) else pd.Series(np.asarray(scores, dtype=float))
    return s.astype(float).dropna()


def _per_column(func: Callable[..., float], scores: Scores, *args: object) -> float | pd.Series:
    """``func`` of each column of a DataFrame (a Series of results), or of the scores (a float)."""
    if isinstance(scores, pd.DataFrame):
        return pd.Series({c: func(scores[c], *args) for c in scores.columns}, dtype=float)
    return func(scores, *args)


def sharpe(scores: Scores, ddof: int = 0) -> float | pd.Series:
    """Sharpe ratio of per-era scores: ``mean / std``; NaN eras are ignored.

    Numerai computes it with the population standard deviation (``ddof=0``, the default
    here, as ``numerai_tools.scoring.sharpe_ratio``). The tutorial's ``corrs.mean() /
    corrs.std()`` uses pandas' sample standard deviation: pass ``ddof=1`` to get that number.
    With n eras the two differ by the factor ``sqrt(n / (n - 1))``. NaN when fewer than two
    eras or a zero standard deviation. A DataFrame gives one value per column (a Series).
    """
    return _per_column(_sharpe_1d, scores, ddof)


def _sharpe_1d(scores: Scores, ddof: int) -> float:
    # Drop NaN eras; mean over std.
    s = _clean(scores)
    if len(s) < 2:
        return np.nan
    sd = float(s.std(ddof=ddof))
    return float(s.mean()) / sd if sd > 0 else np.nan


def max_drawdown(scores: Scores) -> float | pd.Series:
    """Largest fall of the cumulative score from its running maximum (0 or negative).

    ``min_t (C_t - max(0, C_1, ..., C_t))`` with ``C_t`` the cumulative sum of the per-era
    scores in era order; the running maximum starts at 0 (before the first era), so a model
    that loses from its first era has a drawdown too. NaN eras are skipped. The tutorial's
    guideline is "-0.05 or better" (``>= -0.05``). A DataFrame gives one value per column (a
    Series).
    """
    return _per_column(_max_drawdown_1d, scores)


def _max_drawdown_1d(scores: Scores) -> float:
    s = _clean(scores).to_numpy()
    if len(s) == 0:
        return np.nan
    # Cumulative score, its running maximum (from 0), the worst gap between them.
    cum = np.cumsum(s)
    peak = np.maximum.accumulate(np.maximum(cum, 0.0))
    return float(min(0.0, (cum - peak).min()))


def payout(scores: Scores) -> float | pd.Series:
    """The tutorial's payout (2D): mean over eras of ``clip(score / 0.2, -1, 1)``.

    The share of the stake paid (or burned) per era under the 2021 rules, where a score of
    0.2 or more paid the full stake. NaN eras are skipped. See :func:`stake_payout` for today.
    A DataFrame gives one value per column (a Series).
    """
    return _per_column(_payout_1d, scores)


def _payout_1d(scores: Scores) -> float:
    s = _clean(scores)
    if len(s) == 0:
        return np.nan
    return float(np.clip(s / TUTORIAL_PAYOUT_SCALE, -1.0, 1.0).mean())


Amount = float | np.ndarray | pd.Series


def stake_payout(
    stake: Amount,
    corr: Amount,
    mmc: Amount,
    payout_factor: float = PAYOUT_FACTOR,
    corr_multiplier: float = CORR_MULTIPLIER,
    mmc_multiplier: float = MMC_MULTIPLIER,
) -> Amount:
    """NMR paid (positive) or burned (negative) for one round under today's rules.

    ``stake * clip(payout_factor * (corr * corr_multiplier + mmc * mmc_multiplier),
    -0.05, 0.05)``, Numerai's formula for rounds from 2 January 2024 (docs.numer.ai, "Staking",
    section "Payouts").

    Steps: weight the round's CORR and MMC by their multipliers, scale by the payout factor,
    clip to +-5 %, multiply by the stake.

    Parameters
    ----------
    stake : float, array or Series
        NMR at risk in the round (0 or more).
    corr, mmc : float, array or Series
        The round's CORR and MMC (e.g. per-era scores; everything broadcasts together).
    payout_factor : float, default 1.0
        ``min(1, stake_threshold / total NMR at risk)``, published per round; 1 while the total
        stake is under the threshold.
    corr_multiplier, mmc_multiplier : float, default 0.5 and 2.0
        The round's multipliers (fixed at 0.5 and 2 since 2024; older rounds let users choose).

    Raises
    ------
    ScoringError
        If ``stake`` or ``payout_factor`` is negative, or a factor is not a finite number.
    """
    if np.any(np.asarray(stake) < 0):
        raise ScoringError("stake must be 0 or more (an amount of NMR).")
    payout_factor = check_number(payout_factor, "payout_factor", low=0.0)
    corr_multiplier = check_number(corr_multiplier, "corr_multiplier")
    mmc_multiplier = check_number(mmc_multiplier, "mmc_multiplier")
    # Weight the two scores, scale by the payout factor, clip to +-5 % of the stake.
    rate = np.clip(
        payout_factor * (corr * corr_multiplier + mmc * mmc_multiplier), -PAYOUT_CLIP, PAYOUT_CLIP
    )
    result = stake * rate
    return float(result) if np.ndim(result) == 0 else result
