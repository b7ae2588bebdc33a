"""Shared builders of the small synthetic frames the scoring tests use.

One builder, :func:`make_frame`: uneven eras whose labels sort differently in lexicographic and
natural order, shuffled rows, int8 features 0..4, a 5-bin target and predictions with ties, so
that every score meets the cases Numerai's data has.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

FEATURES = [f"feature_{i}" for i in range(6)]
#: Uneven era sizes; labels chosen so that lexicographic order differs from natural order.
ERA_SIZES = {"era1": 40, "era2": 25, "era3": 60, "era9": 33, "era10": 18, "era11": 52, "era12": 30}


def make_frame(
    seed: int = 0, era_sizes: Mapping[str, int] = ERA_SIZES, n_features: int = len(FEATURES)
) -> pd.DataFrame:
    """Shuffled rows indexed by ``id``.

    Columns: ``era``; ``feature_0`` .. ``feature_{n_features - 1}`` (int8 0..4); ``target`` (0,
    0.25, ..., 1, related to features 0 and 1); ``prediction`` (rounded to 2 decimals: ties),
    ``prediction_b`` (uniform, no ties), ``meta_model`` and ``example_prediction`` (both related
    to the target, with ties).
    """
    rng = np.random.default_rng(seed)
    eras = np.concatenate([[e] * n for e, n in era_sizes.items()])
    n = len(eras)
    names = [f"feature_{i}" for i in range(n_features)]
    feats = rng.integers(0, 5, size=(n, n_features)).astype(np.int8)
    signal = feats[:, 0] * 0.3 - feats[:, 1] * 0.2 + rng.normal(size=n)
    df = pd.DataFrame(feats, columns=names)
    df.insert(0, "era", eras)
    df["target"] = np.clip(np.round((signal - signal.min()) / np.ptp(signal) * 4) / 4, 0, 1)
    df["prediction"] = np.round(0.5 + 0.05 * signal + 0.1 * rng.normal(size=n), 2)  # ties
    df["prediction_b"] = rng.random(n)
    df["meta_model"] = np.round(0.5 + 0.04 * signal + 0.1 * rng.normal(size=n), 2)
    df["example_prediction"] = np.round(0.5 + 0.03 * signal + 0.1 * rng.normal(size=n), 3)
    df.index = pd.Index([f"id{i:04d}" for i in range(n)], name="id")
    return df.sample(frac=1.0, random_state=seed)


def with_nan_targets(df: pd.DataFrame, share: float = 0.1) -> pd.DataFrame:
    """A copy with ``share`` of each era's targets set to NaN (numerai-tools accepts < 20 %)."""
    holed = df.copy()
    for _, rows in holed.groupby("era").groups.items():
        holed.loc[rows[: max(1, int(share * len(rows)))], "target"] = np.nan
    return holed


#: Benchmark columns named as in Numerai's v5.2 ``*_benchmark_models.parquet`` files; the
#: example predictions come from :data:`EXAMPLE_BENCHMARK` (deliberately not the first column).
BENCHMARK_COLUMNS = ("v52_lgbm_cyrusd20", "v52_lgbm_ender20", "v5_lgbm_ct_blend")
EXAMPLE_BENCHMARK = "v5_lgbm_ct_blend"


def benchmark_models(example: pd.Series, seed: int = 0) -> pd.DataFrame:
    """A benchmark-models frame shaped like Numerai's: index ``id``, one float column per
    benchmark model, no ``prediction`` column; :data:`EXAMPLE_BENCHMARK` equals ``example``,
    the others are noisy relatives of it (correlation about 0.7)."""
    rng = np.random.default_rng(seed)
    values = example.to_numpy(dtype=np.float64)
    columns = {}
    for name in BENCHMARK_COLUMNS:
        if name == EXAMPLE_BENCHMARK:
            columns[name] = values
        else:
            noisy = values + rng.normal(scale=values.std() or 1.0, size=len(values))
            columns[name] = pd.Series(noisy).rank(pct=True).to_numpy()
    return pd.DataFrame(columns, index=pd.Index(example.index.astype(str), name="id"))


def write_benchmark_models(dataset_dir, seed: int = 0) -> list:
    """Write ``<split>_benchmark_models.parquet`` beside each ``<split>_example_preds.parquet``
    of a synthetic dataset that has none (the synthetic data does not make them yet)."""
    from pathlib import Path

    written = []
    for split in ("validation", "live"):
        source = Path(dataset_dir) / f"{split}_example_preds.parquet"
        target = Path(dataset_dir) / f"{split}_benchmark_models.parquet"
        if source.is_file() and not target.is_file():
            example = pd.read_parquet(source)
            if "id" in example.columns:
                example = example.set_index("id")
            benchmark_models(example.iloc[:, 0], seed).to_parquet(target)
            written.append(target)
    return written
