"""The self-contained ``predict`` function pickled for Numerai's model upload.

Numerai runs an uploaded pickle in its own container, where nbutils is not installed. So this
module imports only numpy, pandas and lightgbm, and :mod:`nbutils.daily.export` pickles it *by
value* (``cloudpickle.register_pickle_by_value``): the functions below travel inside the pickle.

Each step is the one the run took, rewritten without nbutils (tests check both agree):

1. engineered features (``nbutils.features.FeatureSpec.apply``): per feature group the row-wise
   mean, std (ddof=1) and bias-corrected skew (NaN for a constant row or fewer than 3 values),
   then pairwise products ``a * b`` of the interaction columns, all as float32;
2. the model: the mean over the LightGBM boosters of ``booster.predict(X.astype(float32))``;
   notebook 08's target ensemble (``bundle["members"]``): each member model's values ranked per
   era, ``(rank - 0.5) / n``, then averaged with the members' weights
   (``nbutils.ensemble.target_ensemble``);
3. neutralization (``nbutils.neutralize.neutralize``): per era (or the whole frame as one block)
   ``y - proportion * [X, 1] @ lstsq([X, 1], y, rcond=1e-6)``, where ``X`` is the raw features or
   the one column of ``live_benchmark_models`` named by ``settings["benchmark_column"]`` (the
   benchmark model behind the example predictions; Numerai's runner passes no example
   predictions);
4. the submission's values: ``(rank - 0.5) / n`` per era (whatever ``per_era`` says about the
   neutralization, as ``nbutils.submission.build_submission``), average ranks for ties, in (0, 1).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

_FP_ZERO = 1e-14


# Deliberate repeat (the `duplicates` tool pairs it with nbutils/features.py's _row_moments): this module
# runs inside the exported pickle where nbutils is not installed, so it cannot import it; the
# tests check features' version against pandas and this one against features'.
def _row_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise mean, std (ddof=1) and bias-corrected skew, NaN skipped (as pandas)."""
    missing = np.isnan(values)
    count = (~missing).sum(axis=1).astype(np.float64)
    values = np.where(missing, 0.0, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        centered = values - mean[:, None]
        centered[missing] = 0.0
        sq = centered * centered
        s2 = sq.sum(axis=1)
        s3 = (sq * centered).sum(axis=1)
        std = np.sqrt(s2 / (count - 1))
        s2 = np.where(np.abs(s2) < _FP_ZERO, 0.0, s2)
        s3 = np.where(np.abs(s3) < _FP_ZERO, 0.0, s3)
        skew = count * np.sqrt(count - 1) / (count - 2) * s3 / s2**1.5
    skew = np.where(s2 == 0, np.nan, skew)
    skew[count < 3] = np.nan
    std[count < 2] = np.nan
    mean[count < 1] = np.nan
    return mean, std, skew


def engineer(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The engineered columns of ``spec`` (group statistics, then interactions), float32."""
    out: dict[str, np.ndarray] = {}
    for group, cols in spec["groups"].items():
        values = frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        moments = dict(zip(("mean", "std", "skew"), _row_moments(values), strict=True))
        for stat in spec["stats"]:
            out[f"feature_{group}_{stat}"] = moments[stat].astype(np.float32)
    inter = list(spec["interactions"])
    if len(inter) >= 2:
        vals = {c: frame[c].to_numpy(dtype=np.float32, na_value=np.nan) for c in inter}
        for a, b in combinations(inter, 2):
            out[f"{a}_x_{b}"] = vals[a] * vals[b]
    return pd.DataFrame(out, index=frame.index)


def neutralize_block(y: np.ndarray, x: np.ndarray, proportion: float) -> np.ndarray:
    """``y - proportion * [x, 1] @ lstsq([x, 1], y, rcond=1e-6)`` (numerai-tools' formula)."""
    design = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    coef = np.linalg.lstsq(design, y, rcond=1e-6)[0]
    return y - proportion * design @ coef


def tie_kept_rank(values: pd.Series) -> pd.Series:
    """``(rank - 0.5) / n`` with average ranks for ties: strictly inside (0, 1)."""
    return (values.rank(method="average") - 0.5) / values.count()


def make_predict(bundle: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``predict(live_features, live_benchmark_models=None) -> DataFrame`` for ``bundle``.

    ``bundle`` holds ``model_texts`` (LightGBM text, one per seed), ``features`` (the model's
    columns, in order), ``raw_features``, ``spec`` (``groups``, ``stats``, ``interactions``),
    ``settings`` (``neutralize``, ``proportion``, ``neutralize_against``, ``per_era``,
    ``rank_per_era``, ``benchmark_column``).
    """
    single = {"model_texts": bundle.get("model_texts"), "features": bundle.get("features")}
    members = bundle.get("members") or [{**single, "weight": 1.0}]
    cache: list[list[Any]] = []

    def boosters() -> list[list[Any]]:
        if not cache:
            import lightgbm as lgb

            cache.extend([lgb.Booster(model_str=t) for t in m["model_texts"]] for m in members)
        return cache

    def predict(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame | None = None):
        settings = bundle["settings"]
        missing = [c for c in bundle["raw_features"] if c not in live_features.columns]
        if missing:
            raise ValueError(
                f"live_features lacks {len(missing)} feature(s) the model needs, e.g. "
                f"{missing[:3]}; upload with the data version the model was trained on."
            )
        frame = live_features
        extra = engineer(frame, bundle["spec"])
        frame = pd.concat([frame[bundle["raw_features"]], extra], axis=1)
        one_block = pd.Series("live", index=live_features.index)
        # ranked per era as build_submission does; neutralized per era or as one block
        eras = live_features["era"] if "era" in live_features.columns else one_block
        raws = []
        for member, member_boosters in zip(members, boosters(), strict=True):
            matrix = np.ascontiguousarray(
                frame[member["features"]].to_numpy(np.float32, na_value=np.nan)
            )
            raws.append(np.mean([b.predict(matrix) for b in member_boosters], axis=0))
        if "members" in bundle:  # the ensemble: per-era ranks, weighted mean
            weights = np.array([m["weight"] for m in members], dtype=np.float64)
            ranked = [
                pd.Series(r, index=live_features.index)
                .groupby(eras, sort=False)
                .transform(tie_kept_rank)
                .to_numpy()
                for r in raws
            ]
            raw = np.column_stack(ranked) @ weights / weights.sum()
        else:
            raw = raws[0]
        values = pd.Series(raw, index=live_features.index, dtype=np.float64)
        blocks = eras if settings["per_era"] else one_block
        if settings["neutralize"]:
            if settings["neutralize_against"] == "features":
                neutralizers = live_features[bundle["raw_features"]].to_numpy(np.float64)
            else:
                column = settings.get("benchmark_column")
                given = [] if live_benchmark_models is None else list(live_benchmark_models)
                if not column or column not in given:
                    raise ValueError(
                        f"this model is neutralized against the benchmark model {column!r} (the "
                        f"one behind the example predictions): live_benchmark_models must have "
                        f"that column; it has {given[:8]}."
                    )
                bench = live_benchmark_models[column].reindex(live_features.index)
                if bench.isna().any():
                    raise ValueError(
                        f"live_benchmark_models[{column!r}] has no value for "
                        f"{int(bench.isna().sum())} of the live ids; it must cover every live id."
                    )
                neutralizers = bench.to_numpy(np.float64)[:, None]
            out = values.to_numpy().copy()
            for _, pos in blocks.groupby(blocks, sort=False).indices.items():
                out[pos] = neutralize_block(
                    values.to_numpy()[pos], neutralizers[pos], settings["proportion"]
                )
            values = pd.Series(out, index=live_features.index)
        if settings["rank_per_era"]:
            values = values.groupby(eras, sort=False).transform(tie_kept_rank)
        return pd.DataFrame({"prediction": values.to_numpy()}, index=live_features.index)

    return predict
