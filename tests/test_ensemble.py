"""Notebooks 07 and 08's library: BMC against numerai-tools, the ensemble and the target
correlations against scipy/pandas by hand, feature risk against a per-era scipy loop, and one
model per target against single-target training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt
from scipy.stats import pearsonr, rankdata

from nbutils import ensemble, metrics, risk
from nbutils.errors import DataError, ScoringError
from nbutils.train import (
    SEED_PARAMS,
    load_target_models,
    predict,
    save_target_models,
    target_model_path,
    train_lgbm,
    train_targets,
)
from nbutils.util import natural_sorted
from tests.factories import FEATURES, make_frame

BENCH = ["bench_a", "bench_b", "bench_c"]


@pytest.fixture
def frame() -> pd.DataFrame:
    df = make_frame(seed=3)
    rng = np.random.default_rng(7)
    df["bench_a"] = df["example_prediction"]  # ties
    df["bench_b"] = df["meta_model"] + rng.normal(scale=0.05, size=len(df))
    df["bench_c"] = rng.random(len(df))
    df["target_aux"] = np.clip(df["target"] + rng.normal(scale=0.3, size=len(df)), 0, 1).round(2)
    return df


def tie_kept_rank(values: np.ndarray) -> np.ndarray:
    return (rankdata(values, method="average") - 0.5) / len(values)


# -- target_ensemble -----------------------------------------------------------------------------
def test_target_ensemble_is_the_weighted_mean_of_per_era_ranks(frame):
    weights = {"bench_a": 1.0, "bench_b": 3.0, "bench_c": 0.5}
    got = ensemble.target_ensemble(frame, BENCH, weights=weights)
    assert got.index.equals(frame.index)
    for _, rows in frame.groupby("era"):
        by_hand = sum(w * tie_kept_rank(rows[c].to_numpy()) for c, w in weights.items()) / 4.5
        np.testing.assert_allclose(got.loc[rows.index], by_hand, rtol=1e-12)
    plain = ensemble.target_ensemble(frame, BENCH)
    listed = ensemble.target_ensemble(frame, BENCH, weights=[2, 2, 2])
    np.testing.assert_allclose(plain, listed, rtol=1e-12)
    assert ((plain > 0) & (plain < 1)).all()


def test_target_ensemble_equals_numerai_tools_tie_kept_rank_for_one_column(frame):
    got = ensemble.target_ensemble(frame, ["prediction"])
    for _, rows in frame.sort_index().groupby("era"):  # numerai-tools wants sorted ids
        ref = nt.tie_kept_rank(rows[["prediction"]])["prediction"]
        np.testing.assert_allclose(got.loc[rows.index], ref.loc[rows.index], rtol=1e-12)


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"bench_a": 1, "bench_x": 1, "bench_c": 1}, "bench_x"),
        ([1, 2], "2 weights for 3"),
        ([1, -1, 1], "non-negative"),
        ([0, 0, 0], "not all 0"),
        ([1, np.nan, 1], "finite"),
        (["a", 1, 1], "numbers"),
    ],
)
def test_target_ensemble_refuses_bad_weights(frame, weights, message):
    with pytest.raises(ScoringError, match=message):
        ensemble.target_ensemble(frame, BENCH, weights=weights)


def test_target_ensemble_refuses_nan_missing_and_empty_columns(frame):
    holed = frame.copy()
    holed.iloc[0, holed.columns.get_loc("bench_b")] = np.nan
    with pytest.raises(ScoringError, match="NaN.*bench_b"):
        ensemble.target_ensemble(holed, BENCH)
    with pytest.raises(ScoringError, match="bench_z"):
        ensemble.target_ensemble(frame, ["bench_a", "bench_z"])
    with pytest.raises(ScoringError, match="No prediction columns"):
        ensemble.target_ensemble(frame, [])
    with pytest.raises(ScoringError, match="epoch"):
        ensemble.target_ensemble(frame, BENCH, era_col="epoch")


# -- target_correlations -------------------------------------------------------------------------
def test_target_correlations_against_scipy(frame):
    holed = frame.copy()
    holed.iloc[:5, holed.columns.get_loc("target_aux")] = np.nan
    got = ensemble.target_correlations(holed, ["target_aux", "meta_model"])
    assert list(got.columns) == ["all_rows", "era_mean", "era_std"]
    assert got["all_rows"].is_monotonic_decreasing
    for col in ["target_aux", "meta_model"]:
        known = holed[holed[col].notna()]
        assert got.loc[col, "all_rows"] == pytest.approx(
            pearsonr(known[col], known["target"])[0], rel=1e-10
        )
        per_era = [pearsonr(rows[col], rows["target"])[0] for _, rows in known.groupby("era")]
        assert got.loc[col, "era_mean"] == pytest.approx(np.mean(per_era), rel=1e-10)
        assert got.loc[col, "era_std"] == pytest.approx(np.std(per_era), rel=1e-10)


def test_target_correlations_refuses_unknown_and_empty_targets(frame):
    with pytest.raises(ScoringError, match="target_nope"):
        ensemble.target_correlations(frame, ["target_nope"])
    empty = frame.assign(target_aux=np.nan)
    with pytest.raises(ScoringError, match="fewer than two rows"):
        ensemble.target_correlations(empty, ["target_aux"])


# -- per_era_bmc ---------------------------------------------------------------------------------
def test_bmc_is_correlation_contribution_against_the_benchmark_ensemble(frame):
    got = metrics.per_era_bmc(frame, ["prediction", "prediction_b"], BENCH)
    expected = {}
    for era, rows in frame.sort_index().groupby("era"):
        bench = sum(tie_kept_rank(rows[c].to_numpy()) for c in BENCH) / 3
        expected[era] = nt.correlation_contribution(
            rows[["prediction", "prediction_b"]],
            # named: numerai-tools 0.6 (the minimum) selects the meta model by its name
            pd.Series(bench, index=rows.index, name="benchmark"),
            rows["target"],
        )
    ref = pd.DataFrame(expected).T.reindex(natural_sorted(expected))
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=1e-12)
    assert list(got.index) == natural_sorted(expected)


def test_bmc_with_one_benchmark_is_mmc_against_it(frame):
    bmc = metrics.per_era_bmc(frame, "prediction", ["bench_b"])
    mmc = metrics.per_era_mmc(frame, "prediction", meta_col="bench_b")
    np.testing.assert_allclose(bmc, mmc, rtol=1e-12)


def test_bmc_weights_change_the_benchmark(frame):
    equal = metrics.per_era_bmc(frame, "prediction", BENCH)
    only_c = metrics.per_era_bmc(frame, "prediction", BENCH, weights=[0, 0, 1])
    np.testing.assert_allclose(only_c, metrics.per_era_bmc(frame, "prediction", ["bench_c"]))
    assert not np.allclose(equal, only_c)


def test_bmc_refuses_the_prediction_among_the_benchmarks_and_no_benchmarks(frame):
    with pytest.raises(ScoringError, match="both prediction and benchmark"):
        metrics.per_era_bmc(frame, "bench_a", BENCH)
    with pytest.raises(ScoringError, match="No benchmark columns"):
        metrics.per_era_bmc(frame, "prediction", [])


# -- feature risk --------------------------------------------------------------------------------
def test_feature_risk_against_a_scipy_loop(frame):
    got = risk.feature_risk(frame, FEATURES[:3], "target")
    eras = natural_sorted(frame["era"].unique())
    for feature in FEATURES[:3]:
        c = np.array(
            [
                pearsonr(frame.loc[frame.era == e, feature], frame.loc[frame.era == e, "target"])[0]
                for e in eras
            ]
        )
        half = len(c) // 2
        cum = np.cumsum(c)
        drawdown = np.min(cum - np.maximum.accumulate(np.maximum(cum, 0)))
        row = got.loc[feature]
        assert row["mean"] == pytest.approx(c.mean(), rel=1e-9)
        assert row["std"] == pytest.approx(c.std(), rel=1e-9)
        assert row["sharpe"] == pytest.approx(c.mean() / c.std(), rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(drawdown, rel=1e-9, abs=1e-12)
        assert row["first_half"] == pytest.approx(c[:half].mean(), rel=1e-9)
        assert row["second_half"] == pytest.approx(c[half:].mean(), rel=1e-9)
        assert row["half_change"] == pytest.approx(c[half:].mean() - c[:half].mean(), rel=1e-9)


def test_riskiest_features_orders_by_absolute_change_or_std():
    table = pd.DataFrame(
        {"half_change": [0.01, -0.05, 0.03], "std": [0.2, 0.1, 0.3]},
        index=["f_a", "f_b", "f_c"],
    )
    assert risk.riskiest_features(table, 2) == ["f_b", "f_c"]
    assert risk.riskiest_features(table, 3, by="std") == ["f_c", "f_a", "f_b"]
    with pytest.raises(ScoringError, match="by='sharpe'"):
        risk.riskiest_features(table, 2, by="sharpe")
    with pytest.raises(ScoringError, match="n=0"):
        risk.riskiest_features(table, 0)
    with pytest.raises(ScoringError, match="feature_risk returns"):
        risk.riskiest_features(table[["std"]], 2)


def test_feature_risk_needs_two_eras(frame):
    one = frame[frame["era"] == "era1"]
    with pytest.raises(ScoringError, match="at least two eras"):
        risk.feature_risk(one, FEATURES[:2])


# -- one model per target ------------------------------------------------------------------------
def test_train_targets_equals_one_train_lgbm_per_target(frame, tmp_path):
    params = {**SEED_PARAMS, "n_estimators": 5}
    targets = ["target", "target_aux"]
    models = train_targets(frame, FEATURES, targets, params=params, seeds=(1, 2), progress=False)
    assert list(models) == targets
    for target in targets:
        alone = train_lgbm(frame, FEATURES, target, params=params, seeds=(1, 2), progress=False)
        np.testing.assert_array_equal(predict(models[target], frame), predict(alone, frame))
    paths = save_target_models(models, tmp_path)
    assert paths["target_aux"] == tmp_path / "model_target_aux.txt"
    loaded = load_target_models(tmp_path, targets)
    for target in targets:
        np.testing.assert_array_equal(
            predict(loaded[target], frame), predict(models[target], frame)
        )
    assert not np.array_equal(
        predict(models["target"], frame), predict(models["target_aux"], frame)
    )


@pytest.mark.parametrize(
    "targets, message",
    [
        ([], "empty"),
        (["target", "target"], "more than once"),
        (["target_missing"], "not columns"),
        (["../evil"], "letters, digits"),
    ],
)
def test_train_targets_refuses_bad_target_lists(frame, targets, message):
    with pytest.raises(DataError, match=message):
        train_targets(frame, FEATURES, targets, progress=False)


def test_target_model_path_refuses_paths():
    with pytest.raises(DataError, match="letters, digits"):
        target_model_path("runs", "a/b")
