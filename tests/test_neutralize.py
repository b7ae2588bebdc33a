"""nbutils.neutralize against numerai_tools.scoring.neutralize applied era by era, and the
tutorial's own neutralization code, on tiny synthetic frames with uneven eras."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt

import nbutils._least_squares
from nbutils._least_squares import exact_float32_scale, fit_block
from nbutils.errors import ScoringError
from nbutils.metrics import per_era_fnc
from nbutils.neutralize import ScoringWarning, era_groups, neutralize
from tests.factories import make_frame

FEATURES = [f"feature_{i}" for i in range(5)]
ERA_SIZES = {"era1": 30, "era2": 12, "era10": 45, "era3": 21, "era20": 8}


def reference(df, columns, neutralizers, proportion=1.0, era_col="era"):
    """numerai_tools.scoring.neutralize applied per era through pandas groupby."""

    def one(d):
        return nt.neutralize(d[columns], d[neutralizers].astype(float), proportion)

    if era_col is None:
        return one(df)
    return df.groupby(era_col, group_keys=False).apply(one).loc[df.index]


@pytest.fixture
def df() -> pd.DataFrame:
    return make_frame(seed=1, era_sizes=ERA_SIZES, n_features=len(FEATURES))


@pytest.fixture
def lstsq_calls(monkeypatch) -> list:
    """Record each era that falls back to numerai-tools' own lstsq computation."""
    calls: list = []
    original = nbutils._least_squares._fit_lstsq

    def spy(y, x):
        calls.append(x.shape)
        return original(y, x)

    monkeypatch.setattr(nbutils._least_squares, "_fit_lstsq", spy)
    return calls


@pytest.mark.parametrize("proportion", [1.0, 0.3, 0.0])
def test_equals_numerai_tools_per_era(df, proportion, lstsq_calls):
    cols = ["prediction", "prediction_b"]
    ours = neutralize(df, cols, FEATURES, proportion)
    ref = reference(df, cols, FEATURES, proportion)
    assert ours.index.equals(df.index) and list(ours.columns) == cols
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    assert lstsq_calls == []  # well-conditioned eras take the Cholesky path


def test_fully_neutral_result_has_no_linear_exposure(df):
    ours = neutralize(df, "prediction", FEATURES)
    for _, rows in df.groupby("era").groups.items():
        resid = ours.loc[rows, "prediction"].to_numpy()
        x = df.loc[rows, FEATURES].to_numpy(dtype=float)
        assert abs(resid.mean()) < 1e-12
        assert np.abs((x - x.mean(axis=0)).T @ resid).max() < 1e-10


def tutorial_neutralize_series(series, by, proportion=1.0):
    """The tutorial's (Numerai example scripts') neutralization against example predictions."""
    scores = series.values.reshape(-1, 1)
    exposures = by.values.reshape(-1, 1)
    exposures = np.hstack((exposures, np.array([np.mean(series)] * len(exposures)).reshape(-1, 1)))
    correction = proportion * exposures.dot(np.linalg.lstsq(exposures, scores, rcond=None)[0])
    return pd.Series((scores - correction).ravel(), index=series.index)


@pytest.mark.parametrize("proportion", [1.0, 0.5])
def test_one_block_against_example_predictions_like_the_tutorial(df, proportion):
    ours = neutralize(df, "prediction", "example_prediction", proportion, era_col=None)
    ref = reference(df, ["prediction"], ["example_prediction"], proportion, era_col=None)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9, rtol=0)
    tutorial = tutorial_neutralize_series(df["prediction"], df["example_prediction"], proportion)
    np.testing.assert_allclose(ours["prediction"].to_numpy(), tutorial.to_numpy(), atol=1e-9)


def test_neutralizer_constant_within_an_era_changes_nothing(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era10", "feature_4"] = 2
    ours = neutralize(odd, "prediction", FEATURES)
    np.testing.assert_allclose(
        ours.to_numpy(), reference(odd, ["prediction"], FEATURES).to_numpy(), atol=1e-9
    )
    in_era = odd["era"] == "era10"
    without = neutralize(odd[in_era], "prediction", FEATURES[:4])
    np.testing.assert_allclose(ours[in_era].to_numpy(), without.to_numpy(), atol=1e-12)


def test_collinear_neutralizers_fall_back_to_lstsq(df, lstsq_calls):
    dup = df.assign(feature_dup=2 * df["feature_0"] - df["feature_1"])
    feats = [*FEATURES, "feature_dup"]
    ours = neutralize(dup, "prediction", feats)
    assert len(lstsq_calls) == len(ERA_SIZES)
    np.testing.assert_allclose(
        ours.to_numpy(), reference(dup, ["prediction"], feats).to_numpy(), atol=1e-9
    )


def test_era_with_fewer_rows_than_neutralizers(df, lstsq_calls):
    small = pd.concat([df, df[df["era"] == "era2"].iloc[:3].assign(era="era99")])
    small.index = pd.Index([f"r{i}" for i in range(len(small))])
    ours = neutralize(small, "prediction", FEATURES)
    assert lstsq_calls == [(3, len(FEATURES))]
    np.testing.assert_allclose(
        ours.to_numpy(), reference(small, ["prediction"], FEATURES).to_numpy(), atol=1e-9
    )


def test_ill_conditioned_neutralizers_match_numerai_tools(df, lstsq_calls):
    # A huge common offset makes [X, 1] nearly singular: the fast path must step aside.
    far = df.astype({f: float for f in FEATURES})
    far[FEATURES] = far[FEATURES] + 1e7
    ours = neutralize(far, "prediction", FEATURES)
    assert len(lstsq_calls) == len(ERA_SIZES)
    np.testing.assert_allclose(
        ours.to_numpy(), reference(far, ["prediction"], FEATURES).to_numpy(), atol=1e-10
    )


@pytest.fixture
def paths():
    """How many blocks took each least-squares path during the test."""
    nbutils._least_squares.PATH_COUNTS.clear()
    yield nbutils._least_squares.PATH_COUNTS
    nbutils._least_squares.PATH_COUNTS.clear()


def lstsq_fit(y, x):
    a = np.hstack([x.astype(float), np.ones((len(x), 1))])
    return a @ np.linalg.lstsq(a, y, rcond=1e-6)[0]


@pytest.mark.parametrize("n_features", [705, 760])
def test_well_conditioned_int8_at_width_takes_the_cholesky_path(paths, n_features):
    """Uniform int8 0..4 at Numerai's width: cond([X, 1]) is a few thousand, far from lstsq's
    1e6 cut-off. The old bound (10 n (max diag / min diag) / rcond < 1e10) sent these to lstsq."""
    rng = np.random.default_rng(n_features)
    x = rng.integers(0, 5, size=(2500, n_features), dtype=np.int8)
    y = rng.normal(size=(2500, 2))
    a = np.hstack([x.astype(float), np.ones((2500, 1))])
    sv = np.linalg.svd(a, compute_uv=False)
    assert 1e3 < sv[0] / sv[-1] < 1e5  # well conditioned, yet far from the identity
    ours = fit_block(y, x, exact_float32_scale(x, 2500))
    assert paths == {"cholesky": 1}
    np.testing.assert_allclose(ours, lstsq_fit(y, x), atol=1e-10, rtol=0)
    ours_float = fit_block(y, x.astype(float), None)  # the general (float64) path
    assert paths == {"cholesky": 2}
    np.testing.assert_allclose(ours_float, lstsq_fit(y, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    ("gap", "path"), [(1e-2, "cholesky"), (1e-4, "lstsq"), (1e-6, "lstsq"), (1e-9, "lstsq")]
)
def test_nearly_collinear_falls_back_and_matches_lstsq(paths, gap, path):
    """A feature equal to another plus ``gap`` times noise: cond([X, 1]) about 14/gap. At 1e-9
    lstsq drops that direction, at 1e-6 it sits near the cut-off, at 1e-4 it is past MAX_COND
    (1e5), at 1e-2 well inside: each must equal lstsq to 1e-10."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(400, 20)).astype(float)
    x[:, 1] = x[:, 0] + gap * rng.normal(size=400)
    y = rng.normal(size=(400, 1))
    a = np.hstack([x, np.ones((400, 1))])
    sv = np.linalg.svd(a, compute_uv=False)
    assert (sv[0] / sv[-1] < 1e5) == (path == "cholesky")
    ours = fit_block(y, x, exact_float32_scale(x, 400))
    np.testing.assert_allclose(ours, lstsq_fit(y, x), atol=1e-10, rtol=0)
    assert paths == {path: 1}


def test_condition_bound_is_the_documented_one(paths, monkeypatch):
    """The fast path's test is cond1_estimate(A'A) <= MAX_COND**2 / ESTIMATE_SLACK: lowering
    MAX_COND below cond([X, 1]) sends the same block to lstsq."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=(600, 40), dtype=np.int8)
    y = rng.normal(size=(600, 1))
    a = np.hstack([x.astype(float), np.ones((600, 1))])
    sv = np.linalg.svd(a, compute_uv=False)
    fit_block(y, x, 1.0)
    assert paths == {"cholesky": 1}
    monkeypatch.setattr(nbutils._least_squares, "MAX_COND", sv[0] / sv[-1] / 2)
    fit_block(y, x, 1.0)
    assert paths == {"cholesky": 1, "lstsq": 1}


def test_ill_conditioned_centered_gram_is_refined(paths, monkeypatch):
    """Iterative refinement runs when C's estimated condition is above REFINE_ABOVE and gives
    the same fit (to 1e-10) as lstsq."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 5, size=(500, 30)).astype(float)
    x[:, 1] = x[:, 0] + 1e-2 * rng.normal(size=500)
    y = rng.normal(size=(500, 1))
    calls = []
    original = nbutils._least_squares._xt_dot
    monkeypatch.setattr(
        nbutils._least_squares, "_xt_dot", lambda *a: calls.append(1) or original(*a)
    )
    ours = fit_block(y, x, None)
    assert paths == {"cholesky": 1} and len(calls) == 3  # the solve and two refinements
    np.testing.assert_allclose(ours, lstsq_fit(y, x), atol=1e-10, rtol=0)
    calls.clear()
    fit_block(y, rng.integers(0, 5, size=(500, 30)).astype(float), None)
    assert len(calls) == 1  # well conditioned: no refinement


def test_moderately_conditioned_block_is_not_refined_and_matches_lstsq(paths, monkeypatch):
    """Below REFINE_ABOVE (1e5) the normal equations alone give lstsq's fit to 1e-10: here 20
    nearly collinear pairs put C's estimated condition near 4e4 (measured: unrefined error about
    1e-16 times the estimate, 2e-12 here)."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 5, size=(2000, 200)).astype(float)
    x[:, 1:40:2] = x[:, 0:40:2] + 0.03 * rng.normal(size=(2000, 20))
    y = rng.normal(size=(2000, 1))
    xc = x - x.mean(axis=0)
    c = np.corrcoef(xc, rowvar=False)
    assert 1e3 < np.linalg.cond(c) < nbutils._least_squares.REFINE_ABOVE
    calls = []
    original = nbutils._least_squares._xt_dot
    monkeypatch.setattr(
        nbutils._least_squares, "_xt_dot", lambda *a: calls.append(1) or original(*a)
    )
    ours = fit_block(y, x, None)
    assert paths == {"cholesky": 1} and len(calls) == 1  # the solve only, no refinement
    np.testing.assert_allclose(ours, lstsq_fit(y, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_row_and_column_major_features_give_the_same_fit(paths, layout):
    """Blocks are converted along x's contiguous axis (rows of a C array, columns of a pandas
    block): both layouts give lstsq's fit, on the exact float32 Gram and the float64 path."""
    rng = np.random.default_rng(12)
    x = np.asarray(rng.integers(0, 5, size=(3000, 150), dtype=np.int8), order=layout)
    y = rng.normal(size=(3000, 2))
    expected = lstsq_fit(y, x)
    np.testing.assert_allclose(fit_block(y, x, 1.0), expected, atol=1e-10, rtol=0)
    np.testing.assert_allclose(fit_block(y, x.astype(float), None), expected, atol=1e-10, rtol=0)
    assert paths == {"cholesky": 2}


def test_centered_gram_is_exact_when_m_times_the_gram_passes_2_to_the_24(paths):
    """m X'X - s s' must be computed in float64: with 5,000 rows of int8 values around 3,
    m (X'X)_jj is near 2.3e8, far past float32's 2**24 (a float32 product was off by 8 and the
    unrefined fit by 7e-9 on a benchmark era)."""
    rng = np.random.default_rng(13)
    x = rng.integers(2, 5, size=(5000, 60), dtype=np.int8)
    y = rng.normal(size=(5000, 1))
    cen = nbutils._least_squares._Centered(x, 1.0, nbutils._least_squares.Workspace())
    x64 = x.astype(np.float64)
    s = x64.sum(axis=0)
    exact = 5000 * (x64.T @ x64) - np.outer(s, s)
    assert 5000 * (x64.T @ x64).max() > 2**24
    np.testing.assert_array_equal(cen.diag, np.diag(exact))
    # C is the exact numerator scaled to unit diagonal with two roundings.
    inv_root = 1.0 / np.sqrt(np.diag(exact))
    expected_c = exact * inv_root[:, None] * inv_root[None, :]
    c, c_norm1 = cen.correlation(np.ones(60, dtype=bool))
    np.testing.assert_array_equal(c, np.triu(expected_c))
    # |C|_1's bound: largest column sum plus largest row sum of the upper triangle.
    upper = np.abs(np.triu(expected_c))
    assert c_norm1 == pytest.approx(upper.sum(axis=0).max() + upper.sum(axis=1).max(), rel=1e-14)
    assert np.abs(expected_c).sum(axis=0).max() <= c_norm1
    np.testing.assert_allclose(fit_block(y, x, 1.0), lstsq_fit(y, x), atol=1e-12, rtol=0)


def test_legacy_float_features_use_the_exact_float32_gram(df):
    legacy = df.astype({f: float for f in FEATURES})
    legacy[FEATURES] = legacy[FEATURES] / 4  # 0, 0.25, ..., 1
    assert exact_float32_scale(legacy[FEATURES].to_numpy(), 50) == 4.0
    ours = neutralize(legacy, ["prediction", "prediction_b"], FEATURES, 0.8)
    ref = reference(legacy, ["prediction", "prediction_b"], FEATURES, 0.8)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), atol=1e-9)


def test_exact_float32_scale_refuses_what_float32_cannot_hold():
    ints = np.arange(12, dtype=np.int8).reshape(6, 2)
    assert exact_float32_scale(ints, 6) == 1.0
    assert exact_float32_scale(ints.astype(float) * 1000, 1000) is None  # sums past 2**24
    assert exact_float32_scale(np.array([[0.1], [0.2]]), 2) is None  # not dyadic
    assert exact_float32_scale(np.empty((0, 3)), 0) is None


def test_fit_block_paths_agree():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, size=(400, 30)).astype(np.int8)
    y = rng.normal(size=(400, 2))
    a = np.hstack([x, np.ones((400, 1))])
    expected = a @ np.linalg.lstsq(a, y, rcond=1e-6)[0]
    np.testing.assert_allclose(fit_block(y, x, 1.0), expected, atol=1e-12)
    np.testing.assert_allclose(fit_block(y, x.astype(float), None), expected, atol=1e-12)


def test_constant_column_becomes_nan_with_a_warning(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era3", "prediction"] = 0.5
    with pytest.warns(ScoringWarning, match="era3"):
        ours = neutralize(odd, ["prediction", "prediction_b"], FEATURES)
    in_era = odd["era"] == "era3"
    assert ours.loc[in_era, "prediction"].isna().all()
    assert ours.loc[~in_era].notna().all().all() and ours["prediction_b"].notna().all()
    ref = reference(odd, ["prediction", "prediction_b"], FEATURES)  # numerai-tools: NaN too
    assert ref.loc[in_era, "prediction"].isna().all()
    np.testing.assert_allclose(ours.loc[~in_era].to_numpy(), ref.loc[~in_era].to_numpy(), atol=1e-9)


def test_nan_neutralizers_raise(df):
    bad = df.astype({"feature_1": float})
    bad.loc[bad.index[4], "feature_1"] = np.nan
    with pytest.raises(ScoringError, match="feature_1"):
        neutralize(bad, "prediction", FEATURES)


def test_nan_columns_raise(df):
    bad = df.copy()
    bad.loc[bad.index[4], "prediction"] = np.nan
    with pytest.raises(ScoringError, match="prediction"):
        neutralize(bad, "prediction", FEATURES)


@pytest.mark.parametrize("proportion", [-0.1, 1.5, float("nan"), "half"])
def test_proportion_outside_unit_interval_raises(df, proportion):
    with pytest.raises(ScoringError, match="proportion"):
        neutralize(df, "prediction", FEATURES, proportion)


def test_bad_column_choices_raise(df):
    with pytest.raises(ScoringError, match="both neutralized and neutralizers"):
        neutralize(df, ["prediction", "feature_0"], FEATURES)
    with pytest.raises(ScoringError, match="no_such_feature"):
        neutralize(df, "prediction", ["no_such_feature"])
    with pytest.raises(ScoringError, match="numeric"):
        neutralize(df, "prediction", ["era"])
    with pytest.raises(ScoringError, match="No neutralizer"):
        neutralize(df, "prediction", [])
    with pytest.raises(ScoringError, match="'epoch'"):
        neutralize(df, "prediction", FEATURES, era_col="epoch")


def test_input_is_never_modified(df):
    odd = df.copy()
    odd.loc[odd["era"] == "era3", "prediction"] = 0.5
    before = odd.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)
        neutralize(odd, ["prediction", "prediction_b"], FEATURES, 0.5)
        neutralize(odd, "prediction", "example_prediction", era_col=None)
    pd.testing.assert_frame_equal(odd, before)


def test_era_groups_natural_order_and_missing_labels(df):
    groups = era_groups(df, "era")
    assert list(groups.labels) == ["era1", "era2", "era3", "era10", "era20"]
    for g, rows in groups.iter_rows():
        assert (df["era"].to_numpy()[rows] == groups.labels[g]).all()
    assert groups.counts.sum() == len(df)
    assert list(era_groups(df, None).labels) == ["all"]
    bad = df.copy()
    bad.loc[bad.index[0], "era"] = np.nan
    with pytest.raises(ScoringError, match="missing era"):
        era_groups(bad, "era")


def test_infinite_values_raise_naming_the_column(df):
    bad = df.astype({"feature_2": float})
    bad.loc[bad.index[3], "feature_2"] = np.inf
    with pytest.raises(ScoringError, match=r"infinite values in columns \['feature_2'\]"):
        neutralize(bad, "prediction", FEATURES)
    bad = df.copy()
    bad.loc[bad.index[3], "prediction_b"] = -np.inf
    with pytest.raises(ScoringError, match=r"infinite values in columns \['prediction_b'\]"):
        neutralize(bad, ["prediction", "prediction_b"], FEATURES)


@pytest.mark.parametrize("duplicated", ["prediction", "feature_0", "era"])
def test_duplicate_column_names_raise_a_clear_error(df, duplicated):
    twice = pd.concat([df, df[[duplicated]]], axis=1)
    with pytest.raises(ScoringError, match=f"several columns named '{duplicated}'"):
        neutralize(twice, "prediction", FEATURES)


def test_era_groups_of_rows_grouped_by_era_or_not(df):
    """Rows in runs of one era take a fast path; an era in two runs must still be one era."""
    by_era = df.sort_values("era", kind="stable")
    split = pd.concat([by_era, by_era[by_era["era"] == "era1"].iloc[:3]])  # era1 runs twice
    for frame in (by_era, split, df):
        groups = era_groups(frame, "era")
        assert list(groups.labels) == ["era1", "era2", "era3", "era10", "era20"]
        labels = groups.labels[groups.codes]
        assert (labels == frame["era"].to_numpy()).all()


def test_features_are_converted_to_float_one_era_at_a_time(paths):
    """The int8 features are never copied as a whole (to float, or even to int8): the traced
    peak of neutralize and FNC stays below half the int8 feature matrix (16 MB; one era in
    float64 is 3.2 MB, its Gram matrix 1.3 MB)."""
    rng = np.random.default_rng(8)
    n_eras, rows, k = 40, 1000, 400
    feats = [f"feature_{i}" for i in range(k)]
    frame = pd.DataFrame(rng.integers(0, 5, size=(n_eras * rows, k), dtype=np.int8), columns=feats)
    frame.insert(0, "era", np.repeat([f"era{i}" for i in range(1, n_eras + 1)], rows))
    frame["prediction"] = rng.normal(size=len(frame))
    frame["target"] = rng.integers(0, 5, size=len(frame)) / 4
    payload = n_eras * rows * k  # bytes of int8 features
    tracemalloc.start()
    try:
        neutralize(frame, "prediction", feats)
        per_era_fnc(frame, feats)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < payload / 2, (peak, payload)
    assert paths == {"cholesky": 2 * n_eras}


def test_column_block_is_a_view_for_contiguous_columns_and_a_selection_otherwise():
    from nbutils.checks import column_block

    matrix = np.asfortranarray(np.arange(12, dtype=np.int8).reshape(3, 4))
    frame = pd.DataFrame(matrix, columns=list("abcd"), copy=False)
    frame.insert(0, "era", ["1", "1", "2"])
    block = np.asarray(column_block(frame, ["b", "c"]))
    assert np.shares_memory(block, frame["b"].to_numpy()) and not block.flags.writeable
    np.testing.assert_array_equal(block, frame[["b", "c"]].to_numpy())
    np.testing.assert_array_equal(np.asarray(column_block(frame, ["c", "a"])), frame[["c", "a"]])
    mixed = frame.assign(e=np.zeros(3))
    np.testing.assert_array_equal(np.asarray(column_block(mixed, ["d", "e"])), mixed[["d", "e"]])


def _exact_products(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a' v`` rounded once from exact rational sums (the independent reference)."""
    from fractions import Fraction

    return np.array(
        [
            [
                float(sum(Fraction(int(a[r, i])) * Fraction(v[r, j]) for r in range(len(a))))
                for j in range(v.shape[1])
            ]
            for i in range(a.shape[1])
        ]
    )


@pytest.mark.parametrize("layout", ["C", "F"])
def test_xty_from_the_gram_pass_and_exact_x_dot_equal_exact_sums(layout):
    """X'y (from the ssyrk on y's integer parts) and X b (float32 blocks times b's parts) equal
    the exactly rounded sums to a few units in the last place, on values spanning 1e-8..1e3."""
    rng = np.random.default_rng(21)
    x = np.asarray(rng.integers(0, 5, size=(300, 7), dtype=np.int8), order=layout)
    y = rng.normal(size=(300, 2)) * np.array([1e3, 1e-8])
    y[:5, 0] = [1e-12, -3e-9, 123456.789, -0.1, 1.0]
    y_c = y - y.mean(axis=0)
    cen = nbutils._least_squares._Centered(x, 1.0, nbutils._least_squares.Workspace(), y_c, 4.0)
    expected = _exact_products(x, y_c)
    scale = np.abs(x).T.astype(float) @ np.abs(y_c)  # sum |x||y|: the size of the rounding
    np.testing.assert_array_less(np.abs(cen.xty - expected), 1e-15 * scale + 1e-300)
    b = rng.normal(size=(7, 2)) * np.array([10.0, 1e-5])
    xb = nbutils._least_squares._exact_x_dot(x, b, 1.0, 4.0)
    expected_xb = _exact_products(x.T, b)
    np.testing.assert_array_less(
        np.abs(xb - expected_xb), 1e-15 * (np.abs(x).astype(float) @ np.abs(b)) + 1e-300
    )


def test_integer_parts_refuse_too_narrow_parts_and_fit_falls_back_to_float64(paths):
    """With sums too large for parts of 8 bits (many rows times large values), no parts are
    made and the products take the float64 path; the fit still equals lstsq."""
    assert nbutils._least_squares._integer_parts(np.ones((10, 1)), 2**16, 1.0) is not None
    assert nbutils._least_squares._integer_parts(np.ones((10, 1)), 2**17, 1.0) is None
    parts, weights = nbutils._least_squares._integer_parts(np.ones((10, 1)), 100, 4.0)
    assert parts.dtype == np.float32 and np.abs(parts).max() < 2**15
    rng = np.random.default_rng(22)
    x = (rng.integers(0, 2, size=(2000, 5)) * 60).astype(np.int8)  # 60**2 * 2000 < 2**24
    y = rng.normal(size=(2000, 1))
    assert exact_float32_scale(x, 2000) == 1.0
    cen = nbutils._least_squares._Centered(x, 1.0, nbutils._least_squares.Workspace(), y, 60.0)
    assert cen.xty is None  # 2000 rows x 60: parts of 7 bits, not made
    np.testing.assert_allclose(fit_block(y, x, 1.0), lstsq_fit(y, x), atol=1e-12, rtol=0)
    assert paths == {"cholesky": 1}


@pytest.mark.parametrize("gs", [1.0, 4.0])
@pytest.mark.parametrize("shift", [0, -2])
def test_gram_one_norm_equals_numpy(gs, shift):
    """|[x, 1]'[x, 1]|_1 from the float32 Gram matrix (ssymv when no entry is negative, the
    absolute values otherwise) against numpy on the float64 matrix: never below, within 1e-3."""
    rng = np.random.default_rng(23)
    x = (rng.integers(0, 5, size=(400, 9)) + shift) / gs
    cen = nbutils._least_squares._Centered(x, gs, nbutils._least_squares.Workspace())
    a = np.hstack([x, np.ones((400, 1))])
    exact = np.abs(a.T @ a).sum(axis=0).max()
    assert exact <= cen.g_norm1 <= exact * (1 + 1e-3)


def test_condition_bound_is_tight_for_int8_features(paths, monkeypatch):
    """For int8 features the bound on cond1([x, 1]'[x, 1]) is set by G^-1's first column,
    computed from w = S^-1 mu without estimation: the block goes to lstsq as soon as MAX_COND**2
    is below the true cond1(G), and stays on the Cholesky path at twice it."""
    rng = np.random.default_rng(24)
    x = rng.integers(0, 5, size=(1500, 60), dtype=np.int8)
    y = rng.normal(size=(1500, 1))
    a = np.hstack([x.astype(float), np.ones((1500, 1))])
    g = a.T @ a
    cond1 = np.abs(g).sum(axis=0).max() * np.abs(np.linalg.inv(g)).sum(axis=0).max()
    monkeypatch.setattr(nbutils._least_squares, "MAX_COND", np.sqrt(0.999 * cond1))
    fit_block(y, x, 1.0)
    assert paths == {"lstsq": 1}
    monkeypatch.setattr(nbutils._least_squares, "MAX_COND", np.sqrt(2 * cond1))
    np.testing.assert_allclose(fit_block(y, x, 1.0), lstsq_fit(y, x), atol=1e-12, rtol=0)
    assert paths == {"lstsq": 1, "cholesky": 1}


def test_constant_columns_and_blocks_on_the_float32_path(paths, monkeypatch):
    """Constant neutralizers dropped (C taken from the kept rows and columns), small blocks for
    x b: still lstsq's fit."""
    monkeypatch.setattr(nbutils._least_squares, "_X32_BLOCK_BYTES", 4 * 700 * 3)
    rng = np.random.default_rng(25)
    for layout in ("C", "F"):
        x = np.asarray(rng.integers(0, 5, size=(700, 12), dtype=np.int8), order=layout)
        x[:, [3, 7]] = 2
        y = rng.normal(size=(700, 2))
        np.testing.assert_allclose(fit_block(y, x, 1.0), lstsq_fit(y, x), atol=1e-12, rtol=0)
    assert paths == {"cholesky": 2}
