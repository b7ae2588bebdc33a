"""Tutorial step 2D's summary, section 3's diagnostics table and step 2F's neutralization sweep.

- :func:`evaluate`: the tutorial's model summary (Spearman per era, its Sharpe, payout and
  MAE) next to Numerai's own numbers (CORR, Sharpe with ddof=0, drawdown, FNC, MMC);
- :func:`diagnostics`: the nine rows of the tutorial's section-3 table, each with its value,
  guideline and status; the guidelines are one table, :data:`GUIDELINES`;
- :func:`neutralization_sweep`: CORR and feature exposure of the prediction neutralized at
  several proportions (one least-squares fit, reused);
- :func:`for_display`: a table of :func:`diagnostics` (or 06's before/after table) in Japanese,
  for the learner: status words (:data:`STATUS_JA`), guidelines and headers. The tables
  themselves keep English status codes, which ``diagnostics.csv`` and the tests read.

The one Sharpe that decides a status, here, in notebook 04's verdicts and on the run's HTML
index, is :data:`STATUS_SHARPE`: the Sharpe of per-era numerai corr with ddof=0 (Numerai's
definition). The guide's 2D Sharpe (Spearman, ddof=1) is shown beside it, never judged.

Every number comes from the scores of :mod:`nbutils.metrics`; the warnings those scores give
are collected and shown once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nbutils._era_kernels import exposure_stats, max_exposure_per_era
from nbutils.checks import (
    as_column_list,
    check_int,
    check_proportion,
    numeric_matrix,
    require_columns,
)
from nbutils.eras import drop_embargo, era_groups
from nbutils.errors import ScoringError
from nbutils.metrics import (
    PredCols,
    feature_exposure,
    max_drawdown,
    max_feature_exposure,
    payout,
    per_era_corr,
    per_era_fnc,
    per_era_mmc,
    sharpe,
)
from nbutils.neutralize import fit_by_era

__all__ = [
    "DIAGNOSTIC_ROWS",
    "GUIDELINES",
    "REFERENCE_ROWS",
    "STATUS_JA",
    "STATUS_SHARPE",
    "diagnostics",
    "evaluate",
    "for_display",
    "guideline_ja",
    "neutralization_sweep",
    "row_status",
]


class _HeldWarnings:
    """Runs several scores with their warnings held back, then shows each message once.

    ``evaluate`` scores the same frame several times; a warning such as "Left out 12 rows whose
    'target' is NaN" would otherwise appear once per score.
    """

    def __init__(self) -> None:
        self.held: dict[tuple[str, type[Warning]], None] = {}

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = func(*args)
        for w in caught:
            self.held[(str(w.message), w.category)] = None
        return result

    def show(self) -> None:
        for message, category in self.held:
            warnings.warn(message, category, stacklevel=3)


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
    *,
    embargo_eras: int | None = None,
    last_train_era: str | int | None = None,
) -> pd.Series | pd.DataFrame:
    """The tutorial's model summary (2D) next to Numerai's own numbers.

    Always present (the tutorial's ``evaluate``, Spearman per era):

    - ``spearman_mean``, ``spearman_std_ddof1`` (pandas ``.std()``, ddof=1, as the tutorial);
    - ``spearman_sharpe_ddof1``: ``mean / std`` with ddof=1, the tutorial's Sharpe;
    - ``spearman_sharpe_ddof0``: the same with ddof=0, as Numerai computes Sharpe (the two
      differ by ``sqrt(n / (n - 1))`` for n eras, a few percent on ~100 eras);
    - ``payout``: mean of ``clip(spearman / 0.2, -1, 1)``; ``mae``: mean absolute error of the
      prediction against the target over rows with a target (sklearn's
      ``mean_absolute_error``, as the tutorial printed it);

    Numerai's CORR (``per_era_corr(method="numerai")``):

    - ``numerai_corr_mean``, ``numerai_corr_std_ddof0``, ``numerai_corr_sharpe_ddof0``,
      ``numerai_corr_sharpe_ddof1``, ``max_drawdown``;

    Every std and Sharpe key says its ddof, so that two numbers of different definitions never
    share a label (issue 9).

    Only where their inputs are given:

    - ``features``: ``feature_exposure`` (the tutorial's std of Spearman correlations, whole
      frame), ``max_feature_exposure`` (per era, mean) and ``fnc_mean``;
    - ``meta_col``: ``mmc_mean``;
    - ``example_col``: ``corr_with_example_preds`` (mean per-era Spearman between the
      predictions and the example predictions);
    - ``embargo_eras``: the row ``embargo_eras``, the number of eras after the last training era
      left out of the scores (:func:`nbutils.eras.embargo_eras` of the target). With
      ``last_train_era`` the rows of those eras are dropped here
      (:func:`nbutils.eras.drop_embargo`); without it, ``df`` is taken as already embargoed and
      the number is only recorded (so that ``metrics.json`` says which protocol was used).

    Returns a Series, or a DataFrame (metrics x prediction columns) for a list of columns.
    """
    cols = as_column_list(pred_col, "prediction columns")
    if last_train_era is not None:
        if embargo_eras is None:
            raise ScoringError(
                "last_train_era is given without embargo_eras: pass "
                "embargo_eras=nbutils.eras.embargo_eras(target_name) as well."
            )
        df = drop_embargo(df, last_train_era, embargo_eras, era_col)
    elif embargo_eras is not None:
        check_int(embargo_eras, "embargo_eras", 0)
    held = _HeldWarnings()
    run = held.run
    spear = _as_frame(run(per_era_corr, df, cols, target_col, "spearman", era_col))
    corr = _as_frame(run(per_era_corr, df, cols, target_col, "numerai", era_col))
    table: dict[str, pd.Series] = {
        "spearman_mean": spear.mean(),
        "spearman_std_ddof1": spear.std(ddof=1),
        "spearman_sharpe_ddof1": sharpe(spear, ddof=1),
        "spearman_sharpe_ddof0": sharpe(spear),
        "payout": payout(spear),
        "mae": pd.Series({c: _mae(df, c, target_col) for c in cols}),
        "numerai_corr_mean": corr.mean(),
        "numerai_corr_std_ddof0": corr.std(ddof=0),
        "numerai_corr_sharpe_ddof0": sharpe(corr),
        "numerai_corr_sharpe_ddof1": sharpe(corr, ddof=1),
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
    if embargo_eras is not None:
        table["embargo_eras"] = pd.Series(float(embargo_eras), index=cols)
    held.show()
    out = pd.DataFrame(table).T.astype(float)
    out.columns.name = None
    return out[cols[0]].rename(cols[0]) if isinstance(pred_col, str) else out


def _as_frame(scores: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return scores.to_frame() if isinstance(scores, pd.Series) else scores


def _corr_with_example(
    df: pd.DataFrame, cols: list[str], example_col: str, era_col: str, run: Callable[..., Any]
) -> pd.Series:
    """Mean per-era Spearman correlation between each prediction and the example predictions."""
    return pd.Series(
        {c: float(run(per_era_corr, df, c, example_col, "spearman", era_col).mean()) for c in cols},
        dtype=float,
    )


#: The guideline of every row of the tutorial's section-3 table, in its order: ONE table.
#:
#: ``(source, first, second)``:
#:
#: - ``"tutorial"``: the guide's pass/fail rule, "good" when ``first <= value <= second``
#:   (None: no bound on that side), else "bad";
#: - ``"site"``: the colour scale of Numerai's website at the time (forum thread "Coloring
#:   validation metrics", 2020-2021): ``first`` is the bad end and ``second`` the good end; a value
#:   more than 75 % of the way from ``first`` to ``second`` is "good", less than 35 % "bad",
#:   "fair" in between;
#: - ``"reference"``: a row the guide calls "not very useful" (あまり参考にならない): its status is
#:   "reference", never good or bad (and no colour in the plot); the site scale is still shown as
#:   its guideline text.
GUIDELINES: dict[str, tuple[str, float | None, float | None]] = {
    "Validation Sharpe": ("tutorial", 1.0, None),
    "Validation Mean": ("tutorial", 0.025, None),
    "Feature Neutral Mean": ("reference", 0.006, 0.022),
    "Validation SD": ("reference", 0.0303, 0.0168),
    "Max Feature Exposure": ("site", 0.4, 0.0661),
    "Max Drawdown": ("tutorial", -0.05, None),
    "Corr + MMC Sharpe": ("site", 0.41, 1.34),
    "MMC Mean": ("site", -0.008, 0.008),
    "Corr with Example Preds": ("tutorial", 0.5, 0.8),
}
#: The nine rows of the tutorial's section-3 table, in its order.
DIAGNOSTIC_ROWS = tuple(GUIDELINES)
#: The rows the guide calls "not very useful": status "reference", never judged.
REFERENCE_ROWS = tuple(row for row, (source, _, _) in GUIDELINES.items() if source == "reference")


#: The one Sharpe every status uses (section-3 table, notebook 04's verdicts, the HTML index):
#: :func:`evaluate`'s key for it, the Sharpe of per-era numerai corr with ddof=0.
STATUS_SHARPE = "numerai_corr_sharpe_ddof0"

#: Status words as the learner reads them (notebooks, figures, HTML index). The tables keep the
#: English codes (keys of this dict): diagnostics.csv, summary.json and the tests read those.
STATUS_JA = {
    "good": "良い",
    "fair": "まずまず",
    "bad": "悪い",
    "reference": "参考",
    "n/a": "計算なし",
}


def _site_bounds(bad_end: float, good_end: float) -> tuple[float, float]:
    """``(good, bad)`` thresholds of the site scale: 75 % and 35 % of the way to ``good_end``."""
    return bad_end + 0.75 * (good_end - bad_end), bad_end + 0.35 * (good_end - bad_end)


def _tutorial_status(value: float, low: float | None, high: float | None) -> tuple[str, str]:
    """The guide's pass/fail rule: "good" inside ``[low, high]``."""
    text = f">= {low:g} (tutorial)" if high is None else f"{low:g} to {high:g} (tutorial)"
    inside = (low is None or value >= low) and (high is None or value <= high)
    return text, "good" if inside else "bad"


def _site_status(value: float, bad_end: float, good_end: float) -> tuple[str, str]:
    """Numerai's site scale: good past 75 % of the way from ``bad_end`` to ``good_end``."""
    good, bad = _site_bounds(bad_end, good_end)
    if good_end > bad_end:
        text = f">= {good:.3g} good, < {bad:.3g} bad (Numerai site scale)"
        status = "good" if value >= good else ("bad" if value < bad else "fair")
    else:
        text = f"<= {good:.3g} good, > {bad:.3g} bad (Numerai site scale)"
        status = "good" if value <= good else ("bad" if value > bad else "fair")
    return text, status


def row_status(value: float, row: str) -> tuple[str, str]:
    """``(guideline text, status)`` of ``value`` in ``row``; status "n/a" for NaN.

    A "reference" row keeps the site scale's text (for comparison) but its status is always
    "reference": the guide says these rows are not very useful, so they are never judged.
    """
    source, first, second = GUIDELINES[row]
    rule = _tutorial_status if source == "tutorial" else _site_status
    text, status = rule(value if np.isfinite(value) else 0.0, first, second)
    if not np.isfinite(value):
        return text, "n/a"
    return text, "reference" if source == "reference" else status


_row_status = row_status  # the name the tests have used


def guideline_ja(row: str) -> str:
    """The guideline of ``row`` in Japanese, from the same :data:`GUIDELINES` entry.

    The guide's Max Drawdown line reads "-0.05以下を目安"; a drawdown is 0 or negative and deeper
    is worse, so it is read as "no deeper than -0.05", i.e. a value of -0.05 or more.
    """
    source, first, second = GUIDELINES[row]
    if source == "tutorial":
        text = f"{first:g} 以上" if second is None else f"{first:g}〜{second:g}"
        note = "落ち込みが 0.05 以内、" if row == "Max Drawdown" else ""
        return f"{text}（{note}チュートリアル）"
    good, bad = _site_bounds(first, second)
    if second > first:
        text = f"{good:.3g} 以上で良い、{bad:.3g} 未満で悪い"
    else:
        text = f"{good:.3g} 以下で良い、{bad:.3g} より上で悪い"
    if source == "reference":
        return f"判定しない（チュートリアル: あまり参考にならない。サイトの色分けでは {text}）"
    return text + "（当時の Numerai サイトの色分け）"


#: Japanese headers of the diagnostics tables (``diagnostics()`` and notebook 06's before/after).
HEADERS_JA = {
    "value": "値",
    "guideline": "目安",
    "status": "判定",
    "before": "中和前",
    "before_status": "中和前の判定",
    "after": "中和後",
    "after_status": "中和後の判定",
}


def for_display(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as the learner reads it: Japanese headers, status words and guidelines.

    ``table`` is :func:`diagnostics`'s output or a table of the same rows with columns among
    :data:`HEADERS_JA` (notebook 06's before/after table). Status columns go through
    :data:`STATUS_JA`, the guideline column is :func:`guideline_ja` of each row; the row names
    (the guide's own English names) and the values are kept.
    """
    out = table.copy()
    unknown = [s for c in out.columns if c.endswith("status") for s in out[c] if s not in STATUS_JA]
    if unknown:
        raise ScoringError(
            f"for_display got status values {sorted(set(map(str, unknown)))}; expected "
            f"{list(STATUS_JA)} (pass the table of nbutils.diagnostics.diagnostics)."
        )
    for col in out.columns:
        if col.endswith("status"):
            out[col] = out[col].map(STATUS_JA)
    if "guideline" in out.columns:
        out["guideline"] = [guideline_ja(str(r)) if r in GUIDELINES else "" for r in out.index]
    out.index.name = "診断項目"
    return out.rename(columns=HEADERS_JA)


# Deliberate repeat (the `duplicates` tool pairs it with evaluate's parameter list): both score the same
# frame with the same column parameters, in the same order, on purpose.
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
    SD (ddof=0), Max Feature Exposure (:func:`max_feature_exposure` against ``features``, the
    per-era definition the site used; not the guide's Feature Exposure, the std of the
    Spearman correlations, which :func:`evaluate` gives as ``feature_exposure``), Max Drawdown (of CORR), Corr + MMC Sharpe (Sharpe of
    per-era CORR + MMC), MMC Mean, Corr with Example Preds (mean per-era Spearman).

    MMC is against ``meta_col`` when given, else against ``example_col``: Numerai's diagnostics
    used the example predictions as a stand-in for the meta model, which is not public for
    most eras.

    Status: the tutorial's guidelines are pass/fail ("good"/"bad"): Sharpe >= 1, mean >= 0.025,
    max drawdown >= -0.05, correlation with example predictions between 0.5 and 0.8. Feature
    Neutral Mean and Validation SD, which the guide calls not very useful, get the status
    "reference" (not judged). The other rows use the colour scale of Numerai's website at the
    time: "good", "fair" or "bad" (see ``docs/diagnostics.md``).
    """
    held = _HeldWarnings()
    run = held.run
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
        values["Max Feature Exposure"] = run(max_feature_exposure, df, features, pred_col, era_col)
    mmc_ref = meta_col if meta_col is not None else example_col
    if mmc_ref is not None:
        mmc = run(per_era_mmc, df, pred_col, mmc_ref, target_col, era_col)
        values["MMC Mean"] = float(mmc.mean())
        values["Corr + MMC Sharpe"] = sharpe(corr + mmc)
    if example_col is not None:
        values["Corr with Example Preds"] = float(
            run(per_era_corr, df, pred_col, example_col, "spearman", era_col).mean()
        )
    held.show()
    rows = []
    for name in DIAGNOSTIC_ROWS:
        value = float(values[name])
        guideline, status = row_status(value, name)
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
    # One least-squares fit (per era, or of the whole frame), reused for every proportion.
    fitted = fit_by_era(y, x, groups if era_col is not None else era_groups(df, None), [pred_col])
    # A prediction constant in an era is its own fit (NaN from fit_by_era): keep it constant.
    fitted = np.where(np.isnan(fitted), y, fitted)
    # Per-era cross products of the prediction and its fit with the features, also reused.
    cross, xnorm, ygram = exposure_stats(np.hstack([y, fitted]), x, groups.rows_by_era())
    rows = []
    held = _HeldWarnings()
    for p in props:
        # Neutralize at proportion p, score its CORR per era and its exposure per era.
        tmp = pd.DataFrame(
            {
                "prediction": (y - p * fitted)[:, 0],
                "target": df[target_col].to_numpy(),
                "era": df[score_era].to_numpy(),
            }
        )
        corr = held.run(per_era_corr, tmp, "prediction", "target", "numerai")
        exposure = max_exposure_per_era(cross, xnorm, ygram, np.array([1.0, -p]))
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
    held.show()
    return pd.DataFrame(rows).set_index("proportion")
