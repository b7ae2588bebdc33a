"""nbutils.metrics against numerai-tools (era by era), scipy, hand-computed values and the
tutorial's own pandas code, on tiny synthetic frames with ties, 5-bin targets and uneven eras."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt
from scipy.stats import pearsonr, spearmanr

from nbutils import _score_inputs, diagnostics, metrics
from nbutils.errors import ScoringError
from nbutils.metrics import ScoringWarning
from nbutils.util import natural_sorted
from tests.factories import FEATURES, make_frame, with_nan_targets


def per_era_reference(df: pd.DataFrame, func) -> pd.Series:
    """Apply ``func`` to each era through pandas groupby, as Numerai's example notebooks do."""
    out = df.sort_index().groupby("era").apply(func)  # numerai-tools wants sorted ids
    if isinstance(out, pd.DataFrame) and out.shape[1] == 1:
        out = out.iloc[:, 0]
    return out.reindex(natural_sorted(out.index))


@pytest.fixture
def df() -> pd.DataFrame:
    return make_frame()


# ---------------------------------------------------------------- numerai corr, spearman, pearson


def test_numerai_corr_equals_numerai_tools_per_era(df):
    ours = metrics.per_era_corr(df)
    ref = per_era_reference(df, lambda d: nt.numerai_corr(d[["prediction"]], d["target"]))
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    assert ours.name == "prediction"


def test_several_prediction_columns_give_a_frame(df):
    cols = ["prediction", "prediction_b"]
    ours = metrics.per_era_corr(df, cols)
    ref = per_era_reference(df, lambda d: nt.numerai_corr(d[cols], d["target"]))
    assert list(ours.columns) == cols
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)


def test_per_feature_scores_are_built_a_bounded_block_at_a_time(monkeypatch):
    """Notebook 02 scores every feature as a prediction. The float64 predictions are built a
    block of columns at a time (here at most 4), never as one features x rows array: the traced
    peak stays below half of that array, and the scores equal numerai-tools per era."""
    rng = np.random.default_rng(0)
    n, k = 20_000, 60
    feats = [f"f{i}" for i in range(k)]
    frame = pd.DataFrame(rng.integers(0, 5, size=(n, k), dtype=np.int8), columns=feats)
    frame.insert(0, "era", np.repeat([f"era{i}" for i in range(1, 11)], n // 10))
    frame["target"] = rng.integers(0, 5, size=n) / 4
    monkeypatch.setattr(_score_inputs, "PRED_BLOCK_BYTES", 4 * 8 * n)
    widths: list[int] = []
    original = _score_inputs.ScoreFrame._era_ordered
    monkeypatch.setattr(
        _score_inputs.ScoreFrame,
        "_era_ordered",
        lambda self, cols: widths.append(len(cols)) or original(self, cols),
    )
    tracemalloc.start()
    try:
        ours = metrics.per_era_corr(frame, feats)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(widths) == 4 and sum(widths) == k
    assert peak < k * n * 8 / 2, peak  # the whole float64 array would be 9.6 MB
    ref = per_era_reference(frame, lambda d: nt.numerai_corr(d[feats[:5]], d["target"]))
    np.testing.assert_allclose(ours[feats[:5]].to_numpy(), ref.to_numpy(), atol=1e-12, rtol=0)


def test_eras_come_out_in_natural_order(df):
    ours = metrics.per_era_corr(df)
    assert list(ours.index) == ["era1", "era2", "era3", "era9", "era10", "era11", "era12"]
    assert ours.index.name == "era"


def test_spearman_equals_scipy_per_era(df):
    ours = metrics.per_era_corr(df, method="spearman")
    ref = per_era_reference(df, lambda d: spearmanr(d["target"], d["prediction"])[0])
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-12, rtol=0)


def test_pearson_equals_scipy_per_era(df):
    ours = metrics.per_era_corr(df, method="pearson")
    ref = per_era_reference(df, lambda d: pearsonr(d["target"], d["prediction"])[0])
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-12, rtol=0)


def test_tutorial_score_is_pearson_with_tie_broken_ranks(df):
    """The tutorial's ``score``: corrcoef(target, prediction.rank(pct=True, method="first"))."""

    def tutorial_score(d):
        return np.corrcoef(d["target"], d["prediction"].rank(pct=True, method="first"))[0, 1]

    by_id = df.sort_index()  # "first" breaks ties by row order: use the reference's order
    ranked = by_id.assign(
        prediction=by_id.groupby("era")["prediction"].rank(pct=True, method="first")
    )
    ours = metrics.per_era_corr(ranked, method="pearson")
    ref = per_era_reference(df, tutorial_score)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-12, rtol=0)


def test_unknown_method_raises(df):
    with pytest.raises(ScoringError, match="Unknown method"):
        metrics.per_era_corr(df, method="kendall")


# ---------------------------------------------------------------- MMC and FNC


def test_mmc_equals_correlation_contribution_per_era(df):
    cols = ["prediction", "prediction_b"]
    ours = metrics.per_era_mmc(df, cols)
    ref = per_era_reference(
        df, lambda d: nt.correlation_contribution(d[cols], d["meta_model"], d["target"])
    )
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)


def test_mmc_with_target_outside_unit_interval_is_not_scaled(df):
    shifted = df.assign(target=df["target"] - 0.5)  # numerai-tools multiplies by 4 only in [0,1]
    ours = metrics.per_era_mmc(shifted)
    ref = per_era_reference(
        shifted,
        lambda d: nt.correlation_contribution(d[["prediction"]], d["meta_model"], d["target"]),
    )
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)


def test_mmc_leaves_out_rows_without_meta_model(df):
    holed = df.copy()
    holed.loc[holed.index[::9], "meta_model"] = np.nan
    with pytest.warns(ScoringWarning, match="'meta_model' is NaN"):
        ours = metrics.per_era_mmc(holed)
    ref = per_era_reference(
        holed,
        lambda d: nt.correlation_contribution(d[["prediction"]], d["meta_model"], d["target"]),
    )
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    assert ours.attrs["rows_left_out"] == holed["meta_model"].isna().sum()


def test_fnc_equals_feature_neutral_corr_per_era(df):
    cols = ["prediction", "prediction_b"]
    ours = metrics.per_era_fnc(df, FEATURES, cols)
    ref = per_era_reference(
        df, lambda d: nt.feature_neutral_corr(d[cols], d[FEATURES], d["target"])
    )
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-6, rtol=0)


def test_fnc_with_nan_targets_matches_numerai_tools(df):
    holed = with_nan_targets(df)
    with pytest.warns(ScoringWarning, match="'target' is NaN"):
        ours = metrics.per_era_fnc(holed, FEATURES)
    ref = per_era_reference(
        holed,
        lambda d: nt.feature_neutral_corr(d[["prediction"]], d[FEATURES], d["target"]),
    )
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- bad inputs


def test_nan_targets_are_left_out_and_counted(df):
    holed = with_nan_targets(df, 0.15)
    with pytest.warns(ScoringWarning, match=r"Left out \d+ row"):
        ours = metrics.per_era_corr(holed)
    ref = per_era_reference(holed, lambda d: nt.numerai_corr(d[["prediction"]], d["target"]))
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    assert ours.attrs["rows_left_out"] == holed["target"].isna().sum() > 0


def test_era_with_only_nan_targets_scores_nan(df):
    holed = df.copy()
    holed.loc[holed["era"] == "era3", "target"] = np.nan
    with pytest.warns(ScoringWarning) as record:
        ours = metrics.per_era_corr(holed)
    assert any("era3 (0 row(s))" in str(w.message) for w in record)
    assert np.isnan(ours["era3"])
    assert ours.drop("era3").notna().all()


def test_nan_prediction_raises_naming_the_column(df):
    bad = df.copy()
    bad.loc[bad.index[3], "prediction_b"] = np.nan
    for func in (metrics.per_era_corr, metrics.per_era_mmc):
        with pytest.raises(ScoringError, match="prediction_b"):
            func(bad, ["prediction", "prediction_b"])
    with pytest.raises(ScoringError, match="prediction_b"):
        metrics.per_era_fnc(bad, FEATURES, "prediction_b")


def test_nan_feature_raises(df):
    bad = df.copy()
    bad["feature_2"] = bad["feature_2"].astype(float)
    bad.loc[bad.index[0], "feature_2"] = np.nan
    with pytest.raises(ScoringError, match="feature_2"):
        metrics.per_era_fnc(bad, FEATURES)
    with pytest.raises(ScoringError, match="feature_2"):
        metrics.max_feature_exposure(bad, FEATURES)


MISSING_CASES = [
    (metrics.per_era_corr, {}, "prediction"),
    (metrics.per_era_corr, {}, "target"),
    (metrics.per_era_corr, {}, "era"),
    (metrics.per_era_mmc, {}, "meta_model"),
    (metrics.per_era_fnc, {"features": FEATURES}, "feature_3"),
    (metrics.max_feature_exposure, {"features": FEATURES}, "feature_3"),
    (metrics.feature_exposure, {"features": FEATURES}, "feature_3"),
    (diagnostics.evaluate, {"example_col": "example_prediction"}, "example_prediction"),
    (diagnostics.diagnostics, {"meta_col": "meta_model"}, "meta_model"),
]


@pytest.mark.parametrize(("func", "kwargs", "missing"), MISSING_CASES)
def test_missing_columns_raise(df, func, kwargs, missing):
    with pytest.raises(ScoringError, match=missing):
        func(df.drop(columns=[missing]), **kwargs)


def test_non_numeric_prediction_raises(df):
    bad = df.assign(prediction=df["prediction"].astype(str))
    with pytest.raises(ScoringError, match="numeric"):
        metrics.per_era_corr(bad)


def test_missing_era_label_raises(df):
    bad = df.copy()
    bad.loc[bad.index[0], "era"] = None
    with pytest.raises(ScoringError, match="missing era"):
        metrics.per_era_corr(bad)


def test_tiny_and_constant_eras_score_nan_with_a_warning(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era9", "prediction"] = 0.5  # constant predictions
    one_row = odd[odd["era"] == "era2"].iloc[[0]].assign(era="era99")
    odd = pd.concat([odd, one_row])
    for func in (metrics.per_era_corr, metrics.per_era_mmc):
        with pytest.warns(ScoringWarning, match="era9") as record:
            ours = func(odd)
        assert any("era99" in str(w.message) for w in record)
        assert np.isnan(ours["era9"]) and np.isnan(ours["era99"])
        assert ours.drop(["era9", "era99"]).notna().all()
    with pytest.warns(ScoringWarning, match="era9"):
        fnc = metrics.per_era_fnc(odd, FEATURES)
    assert np.isnan(fnc["era9"]) and fnc.drop(["era9", "era99"]).notna().all()


def test_constant_target_scores_nan(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era1", "target"] = 0.5
    with pytest.warns(ScoringWarning, match="constant target"):
        ours = metrics.per_era_corr(odd, method="spearman")
    assert np.isnan(ours["era1"])


def test_nullable_dtypes_are_accepted(df):
    nullable = df.astype({"target": "Float64", "prediction": "Float64"})
    nullable.loc[nullable.index[0], "target"] = pd.NA
    with pytest.warns(ScoringWarning):
        ours = metrics.per_era_corr(nullable)
    plain = df.copy()
    plain.loc[plain.index[0], "target"] = np.nan
    with pytest.warns(ScoringWarning):
        ref = metrics.per_era_corr(plain)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-15)


def test_inputs_are_never_modified(df):
    holed = df.copy()
    holed.loc[holed.index[::8], "target"] = np.nan
    before = holed.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)
        metrics.per_era_corr(holed)
        metrics.per_era_corr(holed, method="spearman")
        metrics.per_era_mmc(holed)
        metrics.per_era_fnc(holed, FEATURES)
        metrics.feature_exposure(holed, FEATURES)
        metrics.max_feature_exposure(holed, FEATURES)
        diagnostics.evaluate(holed, features=FEATURES, example_col="example_prediction")
        diagnostics.diagnostics(holed, features=FEATURES, example_col="example_prediction")
        diagnostics.neutralization_sweep(holed, "prediction", FEATURES)
    pd.testing.assert_frame_equal(holed, before)


# ---------------------------------------------------------------- feature exposure


def tutorial_feature_exposure(df, features):
    return np.std([spearmanr(df[f], df["prediction"])[0] for f in features])


def test_feature_exposure_equals_tutorial_code(df):
    assert metrics.feature_exposure(df, FEATURES) == pytest.approx(
        tutorial_feature_exposure(df, FEATURES), abs=1e-12
    )


def test_feature_exposure_with_legacy_float_features(df):
    legacy = df.astype({f: float for f in FEATURES})
    legacy[FEATURES] = legacy[FEATURES] / 4  # 0, 0.25, ..., 1 as in the 2021 files
    assert metrics.feature_exposure(legacy, FEATURES) == pytest.approx(
        tutorial_feature_exposure(legacy, FEATURES), abs=1e-12
    )


def test_feature_exposure_skips_constant_features(df):
    flat = df.assign(feature_5=np.int8(2))
    with pytest.warns(ScoringWarning, match="feature_5"):
        ours = metrics.feature_exposure(flat, FEATURES)
    assert ours == pytest.approx(tutorial_feature_exposure(flat, FEATURES[:-1]), abs=1e-12)


def test_feature_exposure_for_several_columns(df):
    ours = metrics.feature_exposure(df, FEATURES, ["prediction", "prediction_b"])
    assert ours["prediction"] == pytest.approx(tutorial_feature_exposure(df, FEATURES), abs=1e-12)
    other = df.assign(prediction=df["prediction_b"])
    assert ours["prediction_b"] == pytest.approx(
        tutorial_feature_exposure(other, FEATURES), abs=1e-12
    )


def test_max_feature_exposure_equals_numerai_tools(df):
    ref = per_era_reference(
        df, lambda d: nt.max_feature_correlation(d["prediction"], d[FEATURES])[1]
    ).mean()
    assert metrics.max_feature_exposure(df, FEATURES) == pytest.approx(ref, abs=1e-12)


def test_max_feature_exposure_skips_constant_eras(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era2", "prediction"] = 0.3
    with pytest.warns(ScoringWarning, match="era2"):
        ours = metrics.max_feature_exposure(odd, FEATURES)
    rest = odd[odd["era"] != "era2"]
    ref = per_era_reference(
        rest, lambda d: nt.max_feature_correlation(d["prediction"], d[FEATURES])[1]
    ).mean()
    assert ours == pytest.approx(ref, abs=1e-12)


# ---------------------------------------------------------------- summaries, hand-computed


def test_sharpe_hand_computed():
    scores = pd.Series([0.01, 0.03, -0.01, 0.05])  # mean 0.02, deviations +-0.01, +-0.03
    assert metrics.sharpe(scores) == pytest.approx(2 / np.sqrt(5), rel=1e-12)  # ddof=0
    assert metrics.sharpe(scores, ddof=1) == pytest.approx(np.sqrt(3 / 5), rel=1e-12)
    assert metrics.sharpe(scores) == pytest.approx(nt.sharpe_ratio(scores), rel=1e-12)


def test_sharpe_edge_cases():
    assert np.isnan(metrics.sharpe([0.02]))
    assert np.isnan(metrics.sharpe([0.02, 0.02, 0.02]))
    assert metrics.sharpe([0.01, np.nan, 0.03]) == pytest.approx(2.0)  # NaN eras skipped
    frame = pd.DataFrame({"a": [0.01, 0.03], "b": [0.0, 0.04]})
    assert metrics.sharpe(frame).to_dict() == pytest.approx({"a": 2.0, "b": 1.0})


def test_max_drawdown_hand_computed():
    # cumulative: 0.02, -0.01, 0.00, -0.04, 0.01; peak 0.02 -> worst -0.06
    assert metrics.max_drawdown([0.02, -0.03, 0.01, -0.04, 0.05]) == pytest.approx(-0.06)
    # losing from the first era counts from 0: cumulative -0.01, -0.03
    assert metrics.max_drawdown([-0.01, -0.02]) == pytest.approx(-0.03)
    assert metrics.max_drawdown([0.01, 0.02, 0.0]) == 0.0
    assert np.isnan(metrics.max_drawdown([]))


def test_payout_hand_computed():
    # clip(score / 0.2, -1, 1): 0.5, 1, -1, 0 -> mean 0.125
    assert metrics.payout([0.1, 0.3, -0.5, 0.0]) == pytest.approx(0.125)


def test_stake_payout_hand_computed():
    # 0.5 * 0.02 + 2 * 0.01 = 0.03 of the stake
    assert metrics.stake_payout(100, 0.02, 0.01) == pytest.approx(3.0)
    assert metrics.stake_payout(100, 0.2, 0.05) == pytest.approx(5.0)  # clipped at +5 %
    assert metrics.stake_payout(100, -0.2, -0.05) == pytest.approx(-5.0)  # and -5 %
    assert metrics.stake_payout(100, 0.02, 0.01, payout_factor=0.5) == pytest.approx(1.5)
    assert metrics.stake_payout(
        10, 0.02, 0.01, corr_multiplier=1.0, mmc_multiplier=0.0
    ) == pytest.approx(0.2)
    per_era = metrics.stake_payout(100, pd.Series([0.02, 0.2]), pd.Series([0.01, 0.0]))
    assert per_era.tolist() == pytest.approx([3.0, 5.0])


def test_stake_payout_rejects_negative_inputs():
    with pytest.raises(ScoringError, match="stake"):
        metrics.stake_payout(-1, 0.01, 0.01)
    with pytest.raises(ScoringError, match="payout_factor"):
        metrics.stake_payout(1, 0.01, 0.01, payout_factor=-0.5)


# ---------------------------------------------------------------- the tutorial's evaluate


def tutorial_evaluate(df, features):
    """The tutorial's 2D summary, written the way the tutorial wrote it."""
    corrs = df.groupby("era").apply(lambda d: spearmanr(d["target"], d["prediction"])[0])
    return {
        "spearman_mean": corrs.mean(),
        "spearman_std_ddof1": corrs.std(),
        "payout": (corrs.clip(-0.2, 0.2) / 0.2).mean(),
        "spearman_sharpe_ddof1": corrs.mean() / corrs.std(),
        "mae": np.mean(np.abs(df["target"] - df["prediction"])),
        "feature_exposure": np.std([spearmanr(df[f], df["prediction"])[0] for f in features]),
    }


def test_evaluate_matches_the_tutorial_code(df):
    ours = diagnostics.evaluate(df, features=FEATURES)
    for key, value in tutorial_evaluate(df, FEATURES).items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_evaluate_numerai_numbers(df):
    ours = diagnostics.evaluate(
        df, features=FEATURES, example_col="example_prediction", meta_col="meta_model"
    )
    corr = metrics.per_era_corr(df)
    n = len(corr)
    assert ours["numerai_corr_mean"] == pytest.approx(corr.mean())
    assert ours["numerai_corr_std_ddof0"] == pytest.approx(np.std(corr.to_numpy()))
    assert ours["numerai_corr_sharpe_ddof0"] == pytest.approx(corr.mean() / np.std(corr.to_numpy()))
    assert ours["numerai_corr_sharpe_ddof1"] == pytest.approx(
        corr.mean() / np.std(corr.to_numpy(), ddof=1)
    )
    assert ours["spearman_sharpe_ddof0"] == pytest.approx(
        ours["spearman_sharpe_ddof1"] * np.sqrt(n / (n - 1))
    )
    assert ours["max_drawdown"] == pytest.approx(metrics.max_drawdown(corr))
    assert ours["fnc_mean"] == pytest.approx(metrics.per_era_fnc(df, FEATURES).mean())
    assert ours["mmc_mean"] == pytest.approx(metrics.per_era_mmc(df).mean())
    ex = per_era_reference(
        df, lambda d: spearmanr(d["prediction"], d["example_prediction"])[0]
    ).mean()
    assert ours["corr_with_example_preds"] == pytest.approx(ex, abs=1e-12)


def test_evaluate_only_reports_what_its_inputs_allow(df):
    ours = diagnostics.evaluate(df)
    for key in ("fnc_mean", "mmc_mean", "corr_with_example_preds", "feature_exposure"):
        assert key not in ours.index
    both = diagnostics.evaluate(df, ["prediction", "prediction_b"])
    assert list(both.columns) == ["prediction", "prediction_b"]
    assert both["prediction"].to_dict() == pytest.approx(ours.to_dict())


def test_evaluate_warns_once_about_nan_targets(df):
    holed = df.copy()
    holed.loc[holed.index[::5], "target"] = np.nan
    with pytest.warns(ScoringWarning) as record:
        diagnostics.evaluate(holed)
    messages = [str(w.message) for w in record if "Left out" in str(w.message)]
    assert len(messages) == 1


# ---------------------------------------------------------------- diagnostics


def test_diagnostics_has_all_nine_rows_even_without_inputs(df):
    table = diagnostics.diagnostics(df)
    assert list(table.index) == list(diagnostics.DIAGNOSTIC_ROWS)
    assert list(table.columns) == ["value", "guideline", "status"]
    missing = ["Feature Neutral Mean", "Max Feature Exposure", "Corr + MMC Sharpe", "MMC Mean"]
    missing.append("Corr with Example Preds")
    assert table.loc[missing, "value"].isna().all()
    assert (table.loc[missing, "status"] == "n/a").all()
    assert table["value"].drop(missing).notna().all()


def test_diagnostics_values_match_the_scores(df):
    table = diagnostics.diagnostics(df, features=FEATURES, example_col="example_prediction")
    corr = metrics.per_era_corr(df)
    mmc = metrics.per_era_mmc(df, meta_col="example_prediction")  # example preds as meta model
    expected = {
        "Validation Sharpe": metrics.sharpe(corr),
        "Validation Mean": corr.mean(),
        "Feature Neutral Mean": metrics.per_era_fnc(df, FEATURES).mean(),
        "Validation SD": np.std(corr.to_numpy()),
        "Max Feature Exposure": metrics.max_feature_exposure(df, FEATURES),
        "Max Drawdown": metrics.max_drawdown(corr),
        "Corr + MMC Sharpe": metrics.sharpe(corr + mmc),
        "MMC Mean": mmc.mean(),
        "Corr with Example Preds": metrics.per_era_corr(
            df, target_col="example_prediction", method="spearman"
        ).mean(),
    }
    for row, value in expected.items():
        assert table.loc[row, "value"] == pytest.approx(value, abs=1e-12), row
    assert set(table["status"].drop(list(diagnostics.REFERENCE_ROWS))) <= {"good", "fair", "bad"}
    assert (table.loc[["Feature Neutral Mean", "Validation SD"], "status"] == "reference").all()


def test_diagnostics_meta_model_takes_precedence_and_neutral_features(df):
    table = diagnostics.diagnostics(
        df, example_col="example_prediction", meta_col="meta_model", neutral_features=FEATURES[:2]
    )
    assert table.loc["MMC Mean", "value"] == pytest.approx(metrics.per_era_mmc(df).mean())
    assert table.loc["Feature Neutral Mean", "value"] == pytest.approx(
        metrics.per_era_fnc(df, FEATURES[:2]).mean()
    )
    assert table.loc["Max Feature Exposure", "status"] == "n/a"


@pytest.mark.parametrize(
    ("row", "value", "status"),
    [
        ("Validation Sharpe", 1.0, "good"),
        ("Validation Sharpe", 0.99, "bad"),
        ("Validation Mean", 0.025, "good"),
        ("Validation Mean", 0.0249, "bad"),
        ("Max Drawdown", -0.05, "good"),
        ("Max Drawdown", -0.051, "bad"),
        ("Corr with Example Preds", 0.5, "good"),
        ("Corr with Example Preds", 0.8, "good"),
        ("Corr with Example Preds", 0.81, "bad"),
        ("Corr with Example Preds", 0.3, "bad"),
        # Numerai site scale: good above 75 % of (low -> high), bad below 35 %.
        ("Max Feature Exposure", 0.1, "good"),
        ("Max Feature Exposure", 0.3, "bad"),
        # The rows the guide calls not very useful are never judged (issue 9).
        ("Feature Neutral Mean", 0.006 + 0.75 * 0.016, "reference"),
        ("Feature Neutral Mean", 0.01, "reference"),
        ("Validation SD", 0.02, "reference"),
        ("Validation SD", 0.03, "reference"),
        ("Validation SD", np.nan, "n/a"),
        ("MMC Mean", 0.005, "good"),
        ("MMC Mean", -0.003, "bad"),
        ("Corr + MMC Sharpe", 1.2, "good"),
        ("Corr + MMC Sharpe", 0.5, "bad"),
        ("MMC Mean", np.nan, "n/a"),
    ],
)
def test_diagnostic_statuses(row, value, status):
    guideline, got = diagnostics._row_status(value, row)
    assert got == status
    assert guideline


def test_reference_rows_keep_the_site_scale_as_their_guideline():
    """The two rows the guide calls not very useful still show the site scale, for comparison."""
    assert diagnostics.REFERENCE_ROWS == ("Feature Neutral Mean", "Validation SD")
    text, status = diagnostics._row_status(0.03, "Validation SD")
    assert status == "reference"
    assert text == "<= 0.0202 good, > 0.0256 bad (Numerai site scale)"


# ---------------------------------------------------------------- neutralization sweep


def test_neutralization_sweep_matches_neutralize_then_score(df):
    from nbutils.neutralize import neutralize

    table = diagnostics.neutralization_sweep(df, "prediction", FEATURES, [0.0, 0.5, 1.0])
    assert list(table.index) == [0.0, 0.5, 1.0]
    for p in (0.0, 0.5, 1.0):
        neutral = df.assign(prediction=neutralize(df, "prediction", FEATURES, p)["prediction"])
        corr = metrics.per_era_corr(neutral)
        row = table.loc[p]
        assert row["corr_mean"] == pytest.approx(corr.mean(), abs=1e-12)
        assert row["corr_sharpe"] == pytest.approx(metrics.sharpe(corr), abs=1e-10)
        assert row["max_drawdown"] == pytest.approx(metrics.max_drawdown(corr), abs=1e-12)
        assert row["max_feature_exposure"] == pytest.approx(
            metrics.max_feature_exposure(neutral, FEATURES), abs=1e-10
        )
    assert table.loc[1.0, "max_feature_exposure"] < 1e-10


def test_neutralization_sweep_as_one_block_like_the_tutorial(df):
    from nbutils.neutralize import neutralize

    table = diagnostics.neutralization_sweep(
        df, "prediction", ["example_prediction"], [0.0, 0.6], era_col=None
    )
    for p in (0.0, 0.6):
        block = neutralize(df, "prediction", "example_prediction", p, era_col=None)
        neutral = df.assign(prediction=block["prediction"])
        corr = metrics.per_era_corr(neutral)
        assert table.loc[p, "corr_mean"] == pytest.approx(corr.mean(), abs=1e-12)
        assert table.loc[p, "max_feature_exposure"] == pytest.approx(
            metrics.max_feature_exposure(neutral, ["example_prediction"]), abs=1e-10
        )
    # One-block neutralization leaves exposure inside the eras; per era removes it.
    per_era = diagnostics.neutralization_sweep(df, "prediction", ["example_prediction"], [1.0])
    assert per_era.loc[1.0, "max_feature_exposure"] < 1e-10
    assert (
        diagnostics.neutralization_sweep(
            df, "prediction", ["example_prediction"], [1.0], era_col=None
        ).loc[1.0, "max_feature_exposure"]
        > 1e-6
    )


def test_neutralization_sweep_rejects_bad_proportions(df):
    with pytest.raises(ScoringError, match="proportion"):
        diagnostics.neutralization_sweep(df, "prediction", FEATURES, [0.5, 1.5])
    with pytest.raises(ScoringError, match="No proportions"):
        diagnostics.neutralization_sweep(df, "prediction", FEATURES, [])


def test_rows_grouped_by_era_give_the_same_scores(df):
    """Numerai's files come sorted by era; that fast path must agree with shuffled rows."""
    by_era = df.iloc[np.argsort([int(e[3:]) for e in df["era"]], kind="stable")]
    for func, kwargs in [
        (metrics.per_era_corr, {}),
        (metrics.per_era_corr, {"method": "spearman"}),
        (metrics.per_era_mmc, {}),
        (metrics.per_era_fnc, {"features": FEATURES}),
    ]:
        np.testing.assert_allclose(
            func(by_era, **kwargs).to_numpy(), func(df, **kwargs).to_numpy(), atol=1e-12
        )


# ---------------------------------------------------------------- issue 13 item 10: bad values


@pytest.mark.parametrize("column", ["target", "meta_model"])
def test_infinite_target_or_meta_model_raises_instead_of_a_nan_era(df, column):
    bad = df.copy()
    bad.loc[bad.index[5], column] = np.inf
    calls = [
        lambda: metrics.per_era_corr(bad),
        lambda: metrics.per_era_mmc(bad),
        lambda: metrics.per_era_fnc(bad, FEATURES),
        lambda: diagnostics.evaluate(bad, meta_col="meta_model"),
        lambda: diagnostics.diagnostics(bad, meta_col="meta_model"),
    ]
    if column == "meta_model":
        calls = calls[1:2] + calls[3:]
    for call in calls:
        with pytest.raises(ScoringError, match=rf"'{column}' holds 1 infinite"):
            call()


def test_infinite_prediction_raises_naming_the_column(df):
    bad = df.copy()
    bad.loc[bad.index[7], "prediction_b"] = -np.inf
    cols = ["prediction", "prediction_b"]
    for call in [
        lambda: metrics.per_era_corr(bad, cols),
        lambda: metrics.per_era_mmc(bad, cols),
        lambda: metrics.per_era_fnc(bad, FEATURES, cols),
        lambda: metrics.max_feature_exposure(bad, FEATURES, cols),
        lambda: metrics.feature_exposure(bad, FEATURES, cols),
        lambda: diagnostics.neutralization_sweep(bad, "prediction_b", FEATURES),
    ]:
        with pytest.raises(ScoringError, match=r"infinite values in columns \['prediction_b'\]"):
            call()


def test_infinite_feature_raises_naming_the_column(df):
    bad = df.astype({"feature_3": float})
    bad.loc[bad.index[2], "feature_3"] = np.inf
    for call in [
        lambda: metrics.per_era_fnc(bad, FEATURES),
        lambda: metrics.max_feature_exposure(bad, FEATURES),
        lambda: metrics.feature_exposure(bad, FEATURES),
    ]:
        with pytest.raises(ScoringError, match=r"infinite values in columns \['feature_3'\]"):
            call()


DUPLICATE_CASES = [
    (metrics.per_era_corr, {}, "prediction"),
    (metrics.per_era_corr, {}, "target"),
    (metrics.per_era_corr, {}, "era"),
    (metrics.per_era_mmc, {}, "meta_model"),
    (metrics.per_era_fnc, {"features": FEATURES}, "feature_1"),
    (metrics.max_feature_exposure, {"features": FEATURES}, "feature_1"),
    (metrics.feature_exposure, {"features": FEATURES}, "prediction"),
    (diagnostics.evaluate, {"example_col": "example_prediction"}, "example_prediction"),
]


@pytest.mark.parametrize(("func", "kwargs", "duplicated"), DUPLICATE_CASES)
def test_duplicate_column_names_raise_a_clear_error(df, func, kwargs, duplicated):
    twice = pd.concat([df, df[[duplicated]]], axis=1)
    with pytest.raises(ScoringError, match=f"several columns named '{duplicated}'"):
        func(twice, **kwargs)


def test_feature_exposure_of_int8_features_spanning_more_than_127(df):
    wide = df.copy()
    rng = np.random.default_rng(3)
    wide["feature_wide"] = rng.integers(-100, 101, size=len(df)).astype(np.int8)
    ours = metrics.feature_correlations(wide, ["feature_wide"])["feature_wide"]
    assert ours == pytest.approx(spearmanr(wide["feature_wide"], wide["prediction"])[0], abs=1e-12)
    assert metrics.feature_exposure(wide, [*FEATURES, "feature_wide"]) == pytest.approx(
        tutorial_feature_exposure(wide, [*FEATURES, "feature_wide"]), abs=1e-12
    )


def test_constant_target_gives_mmc_zero_like_numerai_tools_and_says_so(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era1", "target"] = 0.5
    with pytest.warns(ScoringWarning, match=r"constant target \(era1\): their MMC is 0.0"):
        ours = metrics.per_era_mmc(odd)
    ref = per_era_reference(
        odd, lambda d: nt.correlation_contribution(d[["prediction"]], d["meta_model"], d["target"])
    )
    assert ours["era1"] == 0.0 == ref["era1"]
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    # The module docstring states what the code does: MMC 0.0, the correlations NaN.
    assert "MMC is 0.0" in metrics.__doc__
    with pytest.warns(ScoringWarning, match="constant target"):
        assert np.isnan(metrics.per_era_corr(odd)["era1"])


def test_meta_model_is_ranked_once_for_several_columns(df, monkeypatch):
    calls = []
    original = metrics.era_ranks

    def counting(values, starts, gaussian=False):
        calls.append(gaussian)
        return original(values, starts, gaussian)

    monkeypatch.setattr(metrics, "era_ranks", counting)
    metrics.per_era_mmc(df, ["prediction", "prediction_b", "example_prediction"])
    assert calls == [True] * 4  # the meta model once, then each of the three columns


def test_stake_payout_takes_the_rounds_multipliers_and_checks_them():
    # today's defaults: 0.5 x CORR + 2 x MMC, payout factor 1
    assert metrics.CORR_MULTIPLIER == 0.5 and metrics.MMC_MULTIPLIER == 2.0
    assert metrics.stake_payout(100, 0.02, 0.01, 0.8, 1.0, 3.0) == pytest.approx(4.0)
    for name in ("payout_factor", "corr_multiplier", "mmc_multiplier"):
        with pytest.raises(ScoringError, match=name):
            metrics.stake_payout(100, 0.02, 0.01, **{name: float("nan")})


# ---------------------------------------------------------------- the per-era kernels


@pytest.mark.parametrize("sizes", [[7, 7, 7, 5], [3, 9, 0, 4]], ids=["shared-sizes", "unique"])
@pytest.mark.parametrize("ties", [True, False], ids=["ties", "no-ties"])
def test_era_ranks_equal_pandas_rank_per_era(sizes, ties):
    from scipy.special import ndtri

    from nbutils._era_kernels import era_ranks

    values = np.random.default_rng(2).normal(size=sum(sizes))
    values = np.round(values) if ties else values
    starts = np.concatenate(([0], np.cumsum(sizes)))
    ranks, distinct = era_ranks(values, starts)
    gauss, _ = era_ranks(values, starts, gaussian=True)
    for g, n in enumerate(sizes):
        era = slice(starts[g], starts[g + 1])
        ref = pd.Series(values[era]).rank(method="average").to_numpy()
        np.testing.assert_array_equal(ranks[era], ref)
        np.testing.assert_allclose(gauss[era], ndtri((ref - 0.5) / n), rtol=0, atol=1e-15)
        assert distinct[g] == len(np.unique(values[era]))


@pytest.mark.parametrize("sizes", [[600, 0, 450, 700], [5, 9, 0, 4]], ids=["large", "small"])
def test_era_dot_equals_per_era_sums_of_products(sizes):
    """One BLAS dot per era (large eras) or era_sums of the products (small ones): the same."""
    from nbutils._era_kernels import era_dot, era_sums

    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(2, sum(sizes)))
    starts = np.concatenate(([0], np.cumsum(sizes)))
    expected = [
        a[s:e] @ b[s:e] if e > s else 0.0 for s, e in zip(starts[:-1], starts[1:], strict=True)
    ]
    np.testing.assert_allclose(era_dot(a, b, starts), expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(era_sums(a * b, starts), expected, rtol=1e-13, atol=1e-13)


def test_mmc_with_ties_at_numerai_era_sizes_equals_numerai_tools():
    """Eras of hundreds of rows (the per-era BLAS dot path) and LightGBM-like ties in the
    predictions: equal to correlation_contribution per era to 1e-12."""
    df = make_frame(seed=4, era_sizes={"era1": 700, "era2": 512, "era10": 900})
    rng = np.random.default_rng(4)
    df["prediction"] = np.round(df["prediction"] + 0.05 * rng.normal(size=len(df)), 1)
    ours = metrics.per_era_mmc(df, ["prediction", "prediction_b"])
    ref = per_era_reference(
        df,
        lambda d: nt.correlation_contribution(
            d[["prediction", "prediction_b"]], d["meta_model"], d["target"]
        ),
    )
    assert (df.groupby("era")["prediction"].nunique() < 40).all()  # ties, many per value
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-12, rtol=0)
