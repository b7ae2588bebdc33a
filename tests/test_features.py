"""Tests for nbutils.features against the tutorial's own pandas / scikit-learn code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import PolynomialFeatures

from nbutils.errors import DataError
from nbutils.features import (
    FEATURE_SPEC_NAME,
    FeatureSpec,
    add_group_stats,
    add_interactions,
    group_stats,
    groups_from_names,
)

GROUPS = {
    "intelligence": ["feature_intelligence1", "feature_intelligence2", "feature_intelligence10"],
    "wisdom": ["feature_wisdom1", "feature_wisdom2", "feature_wisdom3", "feature_wisdom4"],
}
FEATURES = [c for cols in GROUPS.values() for c in cols]


def make_frame(n: int = 300, seed: int = 0, index: pd.Index | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {c: rng.integers(0, 5, n).astype(np.int8) for c in FEATURES}
    df = pd.DataFrame(
        data,
        index=index if index is not None else pd.Index([f"id{i}" for i in range(n)], name="id"),
    )
    df.insert(0, "era", [f"era{i // 30 + 1}" for i in range(n)])
    df.insert(1, "data_type", "train")
    df["target"] = rng.integers(0, 5, n) / 4
    # a constant row and a row with two equal values exercise the zero-variance branch
    df.iloc[0, 2:9] = 2
    return df


def tutorial_get_group_stats(df: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """The tutorial's get_group_stats, as written there (pandas, in place, float64)."""
    df = df.copy()
    for group, cols in groups.items():
        df[f"feature_{group}_mean"] = df[cols].mean(axis=1)
        df[f"feature_{group}_std"] = df[cols].std(axis=1)
        df[f"feature_{group}_skew"] = df[cols].skew(axis=1)
        if int(pd.__version__.split(".")[0]) < 3:  # pandas < 3 gave 0 for a constant row
            df.loc[df[cols].nunique(axis=1) == 1, f"feature_{group}_skew"] = np.nan
    return df


def test_group_stats_equal_tutorial_pandas_code():
    df = make_frame()
    ours = add_group_stats(df, GROUPS)
    ref = tutorial_get_group_stats(df, GROUPS)
    assert list(ours.columns) == list(ref.columns)
    new = [c for c in ref.columns if c not in df.columns]
    assert len(new) == 6
    for c in new:
        assert ours[c].dtype == np.float32
        np.testing.assert_allclose(
            ours[c].to_numpy(np.float64), ref[c].to_numpy(), rtol=1e-5, atol=1e-6
        )
    # constant row: the skew is undefined; NaN as pandas >= 3 (pandas < 3 returned 0)
    assert np.isnan(ours.loc["id0", "feature_wisdom_skew"])
    pd.testing.assert_frame_equal(ours[df.columns], df)


def test_group_stats_small_groups_and_nan_match_pandas():
    df = pd.DataFrame(
        {"a": [1.0, np.nan, 3.0, 0.5], "b": [2.0, 1.0, np.nan, 0.5], "c": [4.0, 2.0, 1.0, 0.5]},
        index=["x", "y", "z", "w"],
    )
    groups = {"pair": ["a", "b"], "three": ["a", "b", "c"], "one": ["c"]}
    ours = group_stats(df, groups)
    ref = tutorial_get_group_stats(df, groups)
    for c in ours.columns:
        np.testing.assert_allclose(
            ours[c].to_numpy(np.float64), ref[c].to_numpy(), rtol=1e-6, equal_nan=True
        )


def test_group_stats_chunking_does_not_change_results():
    df = make_frame(n=257)
    whole = group_stats(df, GROUPS)
    chunked = group_stats(df, GROUPS, chunk_rows=10)
    pd.testing.assert_frame_equal(whole, chunked)


def test_add_group_stats_does_not_mutate_input():
    df = make_frame()
    before = df.copy()
    add_group_stats(df, GROUPS)
    pd.testing.assert_frame_equal(df, before)


def test_groups_from_names_legacy_pattern():
    names = [
        "feature_wisdom10",
        "feature_intelligence1",
        "feature_wisdom2",
        "feature_charisma3",
        "era",
    ]
    assert groups_from_names(names) == {
        "wisdom": ["feature_wisdom2", "feature_wisdom10"],
        "intelligence": ["feature_intelligence1"],
        "charisma": ["feature_charisma3"],
    }


def test_interactions_equal_polynomial_features():
    df = make_frame()
    cols = ["feature_intelligence1", "feature_wisdom2", "feature_wisdom4"]
    ours = add_interactions(df, cols)
    poly = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
    ref = poly.fit_transform(df[cols].to_numpy(np.float64))[:, len(cols) :]
    new = [c for c in ours.columns if c not in df.columns]
    assert new == [
        "feature_intelligence1_x_feature_wisdom2",
        "feature_intelligence1_x_feature_wisdom4",
        "feature_wisdom2_x_feature_wisdom4",
    ]
    np.testing.assert_array_equal(ours[new].to_numpy(np.float64), ref)
    assert (ours[new].dtypes == np.float32).all()


def test_interactions_stay_aligned_with_shuffled_index():
    rng = np.random.default_rng(3)
    df = make_frame(index=pd.Index([f"id{i}" for i in rng.permutation(300)], name="id"))
    shuffled = df.sample(frac=1.0, random_state=1)
    cols = ["feature_intelligence1", "feature_wisdom2"]
    out = add_interactions(shuffled, cols)
    assert out.index.equals(shuffled.index)
    expected = shuffled["feature_intelligence1"].astype(float) * shuffled["feature_wisdom2"]
    np.testing.assert_array_equal(out["feature_intelligence1_x_feature_wisdom2"], expected)
    # the products of each id are that id's products, whatever the row order
    by_id = add_interactions(df, cols)["feature_intelligence1_x_feature_wisdom2"]
    pd.testing.assert_series_equal(
        out["feature_intelligence1_x_feature_wisdom2"].sort_index(), by_id.sort_index()
    )
    # and the target still belongs to the same id
    pd.testing.assert_series_equal(out["target"].sort_index(), df["target"].sort_index())


def test_tutorial_reset_index_concat_misaligns_and_ours_does_not():
    df = make_frame()
    part = df.iloc[50:]  # non-default index, as after a filter on data_type
    cols = ["feature_intelligence1", "feature_wisdom2"]
    poly = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
    tutorial = pd.concat(
        [part, pd.DataFrame(poly.fit_transform(part[cols])[:, 2:], columns=["ix"])], axis=1
    )
    assert tutorial["ix"].isna().sum() > 0  # the tutorial's bug: NaN rows, lost alignment
    ours = add_interactions(part, cols)
    assert len(ours) == len(part)
    assert ours["feature_intelligence1_x_feature_wisdom2"].notna().all()


def test_errors_name_the_problem():
    df = make_frame()
    with pytest.raises(DataError, match="Missing columns of feature group 'g': 'feature_nope1'"):
        add_group_stats(df, {"g": ["feature_nope1"]})
    with pytest.raises(DataError, match="Missing interaction columns: 'feature_nope2'"):
        add_interactions(df, ["feature_wisdom1", "feature_nope2"])
    with pytest.raises(DataError, match="no columns"):
        add_group_stats(df, {"g": []})
    with pytest.raises(DataError, match="unknown group statistics"):
        group_stats(df, GROUPS, stats=("kurt",))
    with pytest.raises(DataError, match="duplicates"):
        add_interactions(df, ["feature_wisdom1", "feature_wisdom1"])


def test_feature_spec_round_trip_and_same_columns_everywhere(tmp_path):
    spec = FeatureSpec(
        groups=["wisdom"],
        stats=["mean", "skew"],
        interactions=["feature_wisdom1", "feature_wisdom2"],
    )
    path = spec.save(tmp_path)
    assert path.name == FEATURE_SPEC_NAME
    loaded = FeatureSpec.load(tmp_path)
    assert loaded == spec
    train, live = make_frame(seed=1), make_frame(n=40, seed=2)
    train_out, train_features = loaded.apply(train, GROUPS)
    live_out, live_features = loaded.apply(live, GROUPS, features=FEATURES)
    engineered = ["feature_wisdom_mean", "feature_wisdom_skew", "feature_wisdom1_x_feature_wisdom2"]
    assert loaded.new_columns(GROUPS) == engineered
    assert train_features == live_features == [*FEATURES, *engineered]
    assert list(train_out.columns) == list(live_out.columns) == [*train.columns, *engineered]
    ref = tutorial_get_group_stats(live, {"wisdom": GROUPS["wisdom"]})
    np.testing.assert_allclose(
        live_out["feature_wisdom_mean"], ref["feature_wisdom_mean"], rtol=1e-6
    )


def test_feature_spec_errors(tmp_path):
    df = make_frame()
    with pytest.raises(DataError, match="unknown groups"):
        FeatureSpec(groups=["strength"]).apply(df, GROUPS)
    with pytest.raises(DataError, match="at least two"):
        FeatureSpec(group_stats=False, interactions=["feature_wisdom1"]).apply(df, GROUPS)
    out, _ = FeatureSpec().apply(df, GROUPS)
    with pytest.raises(DataError, match="already in the frame"):
        FeatureSpec().apply(out, GROUPS)
    with pytest.raises(DataError, match="no feature spec"):
        FeatureSpec.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"group_stats": true, "rm -rf": 1}')
    with pytest.raises(DataError, match="unknown keys"):
        FeatureSpec.load(tmp_path / "bad.json")


def test_feature_spec_without_anything_returns_a_new_frame_of_the_same_rows():
    df = make_frame()
    out, features = FeatureSpec(group_stats=False).apply(df, GROUPS)
    assert features == FEATURES
    assert out is not df
    pd.testing.assert_frame_equal(out, df)


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(group_stats=False),
        FeatureSpec(),
        FeatureSpec(group_stats=False, interactions=FEATURES[:2]),
    ],
    ids=["nothing", "group_stats", "interactions"],
)
def test_the_engineered_frame_shares_the_inputs_feature_data(spec):
    """The raw feature block is not copied (on pandas 2, ``pd.concat(axis=1)`` copied it: the
    whole int8 train block again, about 1.9 GB at Numerai's shape); the input is unchanged."""
    df = make_frame()
    before = df.copy()
    out, _ = spec.apply(df, GROUPS)
    for column in FEATURES:
        assert np.shares_memory(out[column].to_numpy(), df[column].to_numpy()), column
    pd.testing.assert_frame_equal(df, before)


def test_group_stats_never_hold_a_float64_copy_of_all_features():
    import tracemalloc

    rng = np.random.default_rng(0)
    n, per_group = 20_000, 20
    groups = {g: [f"feature_{g}{i}" for i in range(per_group)] for g in ("a", "b", "c")}
    cols = [c for g in groups.values() for c in g]
    df = pd.DataFrame(rng.integers(0, 5, size=(n, len(cols)), dtype=np.int8), columns=cols)
    float64_copy = n * len(cols) * 8
    tracemalloc.start()
    try:
        out = group_stats(df, groups, chunk_rows=2_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (n, 9)
    assert peak < float64_copy / 2, (peak, float64_copy)
