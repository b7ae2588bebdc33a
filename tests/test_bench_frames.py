"""bench/bench_metrics.py builds its frames from the project's generator; this keeps the two in step
(the benchmark broke once when the generator's era blocks stopped carrying the meta model)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from bench_metrics import make_frame  # noqa: E402


def test_bench_frame_has_int8_features_a_ranked_meta_model_and_tied_predictions():
    df = make_frame(3, 200, 20, "ties")
    features = [f"feature_{i}" for i in range(20)]
    assert list(df.columns) == ["era", *features, "target", "meta_model", "prediction"]
    assert (df[features].dtypes == np.int8).all() and df[features].isin(range(5)).all().all()
    assert df["era"].nunique() == 3 and (df.groupby("era").size() == 200).all()
    # The meta model is a per-era rank in (0, 1) without ties; the predictions take at most
    # 5**4 leaf values (LightGBM-like ties).
    assert df["meta_model"].between(0, 1, inclusive="neither").all()
    assert (df.groupby("era")["meta_model"].nunique() == 200).all()
    assert (df.groupby("era")["prediction"].nunique() < 200).all()
    continuous = make_frame(2, 100, 20, "continuous")
    assert (
        continuous["prediction"].between(0, 1).all() and continuous["prediction"].nunique() == 200
    )
