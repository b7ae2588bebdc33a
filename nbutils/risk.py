"""Feature risk (notebook 07): how steady each feature's relation to the target (or to a
model's predictions) is from era to era, and which features are the riskiest.

A feature whose per-era correlation with the target changes sign or size over time is a risk
for a model that leans on it: Numerai's feature_neutralization notebook measures this and
neutralizes against the riskiest features only. For each feature ``f`` with per-era
correlations ``c_1 .. c_E`` (eras in natural order):

- ``mean``, ``std`` (population, ddof=0), ``sharpe = mean / std``;
- ``max_drawdown``: the largest fall of the cumulative sum ``C_t`` from its running maximum
  (:func:`nbutils.metrics.max_drawdown`);
- ``first_half`` and ``second_half``: the mean of ``c`` over the first ``floor(E / 2)`` eras and
  over the rest; ``half_change = second_half - first_half``.

:func:`riskiest_features` ranks the features by ``|half_change|`` (default) or by ``std``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from nbutils.checks import as_column_list, check_int
from nbutils.errors import ScoringError
from nbutils.metrics import Method, max_drawdown, per_era_corr, sharpe

RISK_COLUMNS = (
    "mean",
    "std",
    "sharpe",
    "max_drawdown",
    "first_half",
    "second_half",
    "half_change",
)
RISK_ORDERS = ("half_change", "std")


def feature_risk(
    df: pd.DataFrame,
    features: Sequence[str],
    pred_or_target: str = "target",
    era_col: str = "era",
    method: Method = "pearson",
) -> pd.DataFrame:
    """The module's statistics of each feature's per-era correlation with ``pred_or_target``.

    ``method`` is that of :func:`nbutils.metrics.per_era_corr` (default Pearson, as Numerai's
    feature_neutralization notebook correlates features with the target era by era). Returns a
    DataFrame indexed by feature with the columns :data:`RISK_COLUMNS`. Needs at least two eras.
    """
    cols = as_column_list(features, "features")
    per_era = per_era_corr(
        df, pred_col=cols, target_col=pred_or_target, method=method, era_col=era_col
    )
    if isinstance(per_era, pd.Series):
        per_era = per_era.to_frame(cols[0])
    n = len(per_era)
    if n < 2:
        raise ScoringError(
            f"feature_risk needs at least two eras, the frame has {n}: pass more eras."
        )
    half = n // 2
    first, second = per_era.iloc[:half].mean(), per_era.iloc[half:].mean()
    out = pd.DataFrame(
        {
            "mean": per_era.mean(),
            "std": per_era.std(ddof=0),
            "sharpe": sharpe(per_era),
            "max_drawdown": max_drawdown(per_era),
            "first_half": first,
            "second_half": second,
            "half_change": second - first,
        }
    )
    out.index.name = "feature"
    out.attrs["per_era"] = per_era
    return out


def riskiest_features(risk: pd.DataFrame, n: int = 10, by: str = "half_change") -> list[str]:
    """The ``n`` riskiest features of a :func:`feature_risk` table: the largest
    ``|half_change|`` (``by="half_change"``) or the largest ``std`` (``by="std"``)."""
    if by not in RISK_ORDERS:
        raise ScoringError(f"by={by!r} is not one of {RISK_ORDERS}: use 'half_change' or 'std'.")
    if not isinstance(risk, pd.DataFrame) or by not in risk.columns:
        raise ScoringError(
            f"risk must be the table feature_risk returns (a DataFrame with column {by!r})."
        )
    n = check_int(n, "n", 1)
    score = risk[by].abs() if by == "half_change" else risk[by]
    return score.sort_values(ascending=False, kind="stable").index[:n].tolist()
