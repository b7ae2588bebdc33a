"""Tests for nbutils.validation: Numerai's walk-forward splits (the docs' own example, sklearn's
TimeSeriesSplit, hand cases), walk-forward predictions, era boosting and the grid search, each
against an independent reference (train_lgbm, LightGBM's own continued training,
numerai-tools)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import numerai_corr
from sklearn.model_selection import TimeSeriesSplit

from nbutils._lgb_dataset import dataset_params
from nbutils.errors import DataError
from nbutils.train import SEED_PARAMS, lgb_params, predict, train_lgbm
from nbutils.validation import (
    PURGE_BY_HORIZON,
    era_boost,
    purge_eras,
    search_params,
    walk_forward_predict,
    walk_forward_splits,
)

FAST = dict(SEED_PARAMS, n_estimators=15, learning_rate=0.1, num_threads=1)


def make_frame(n_eras: int = 20, per_era: int = 50, n_features: int = 8, seed: int = 0):
    """int8 features 0..4; the target is a noisy function of three features, its sign flipping
    in some eras (so that some eras are much worse than others)."""
    rng = np.random.default_rng(seed)
    n = n_eras * per_era
    x = rng.integers(0, 5, size=(n, n_features), dtype=np.int8)
    features = [f"feature_{i}" for i in range(n_features)]
    df = pd.DataFrame(x, columns=features, index=pd.Index([f"id{i:05d}" for i in range(n)]))
    era = np.arange(n) // per_era + 1
    df.insert(0, "era", [f"{e:04d}" for e in era])
    flip = np.where(era % 5 == 0, -1.0, 1.0)
    signal = flip * (x[:, 0] + x[:, 1]) - x[:, 2] + rng.normal(0, 1.5, n)
    df["target"] = np.clip(np.round((signal + 4) / 12 * 4) / 4, 0, 1)
    return df, features


def numbers(labels):
    return [int(label) for label in labels]


# -- walk_forward_splits ----------------------------------------------------------------------
def test_splits_match_the_example_of_numerais_docs():
    # docs.numer.ai, Benchmark Models: chunks of 156 eras, trained up to the chunk's first era
    # minus a purge of 8 (20-day targets): train 1-148, purge 149-156, predict 157-312; then
    # train 1-304, purge 305-312, predict 313-468; ...
    eras = [f"{e:04d}" for e in range(1, 501)]
    splits = walk_forward_splits(eras, chunk=156, target="target")
    assert len(splits) == 3
    (train1, pred1), (train2, pred2), (train3, pred3) = splits
    assert numbers(train1) == list(range(1, 149)) and numbers(pred1) == list(range(157, 313))
    assert numbers(train2) == list(range(1, 305)) and numbers(pred2) == list(range(313, 469))
    assert numbers(train3) == list(range(1, 461)) and numbers(pred3) == list(range(469, 501))
    # the 8 eras before each chunk are in no training set of that chunk
    assert not set(range(149, 157)) & set(numbers(train1))


def test_sixty_day_targets_purge_sixteen_eras():
    eras = [f"{e:04d}" for e in range(1, 313)]
    ((train, predict),) = walk_forward_splits(eras, chunk=156, target="target_cyrus_60")
    assert numbers(train) == list(range(1, 141)) and numbers(predict) == list(range(157, 313))
    assert purge_eras("target") == PURGE_BY_HORIZON[20] == 8
    assert purge_eras("target_ender_20") == 8 and purge_eras("target_x_60") == 16


@pytest.mark.parametrize(("n_chunks", "chunk", "purge"), [(4, 5, 2), (3, 7, 0), (6, 3, 1)])
def test_splits_equal_sklearns_time_series_split(n_chunks, chunk, purge):
    eras = [f"era{e}" for e in range(1, n_chunks * chunk + 1)]
    ours = walk_forward_splits(eras, chunk=chunk, purge=purge)
    sk = TimeSeriesSplit(n_splits=n_chunks - 1, test_size=chunk, gap=purge).split(eras)
    expected = [([eras[i] for i in tr], [eras[i] for i in te]) for tr, te in sk]
    assert ours == expected


def test_hand_case_with_a_short_last_chunk_and_a_skipped_chunk():
    eras = [f"{e:04d}" for e in range(1, 11)]
    # chunks 1-3, 4-6, 7-9, 10; purge 1: 4-6 trained on 1-2, 7-9 on 1-5, 10 on 1-8
    assert walk_forward_splits(eras, chunk=3, purge=1) == [
        (eras[:2], eras[3:6]),
        (eras[:5], eras[6:9]),
        (eras[:8], eras[9:]),
    ]
    # purge 4: chunk 4-6 has no training era left (<= -1) and is skipped
    assert walk_forward_splits(eras, chunk=3, purge=4) == [
        (eras[:2], eras[6:9]),
        (eras[:5], eras[9:]),
    ]


def test_eras_are_compared_by_number_when_every_other_era_is_kept():
    eras = [f"{e:04d}" for e in range(1, 21, 2)] * 3  # rows of eras 1, 3, ..., 19
    # chunks of 6 numbers from era 1: 1-6, 7-12, 13-18, 19-; purge 3
    assert walk_forward_splits(eras, chunk=6, purge=3) == [
        (["0001", "0003"], ["0007", "0009", "0011"]),
        (["0001", "0003", "0005", "0007", "0009"], ["0013", "0015", "0017"]),
        (["0001", "0003", "0005", "0007", "0009", "0011", "0013", "0015"], ["0019"]),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk": 0}, "chunk=0"),
        ({"chunk": 2.5}, "chunk=2.5"),
        ({"chunk": 3, "purge": -1}, "purge=-1"),
        ({"chunk": 3, "target": "target_nomi"}, "no known horizon"),
        ({"chunk": 40}, "Use a smaller chunk"),
    ],
)
def test_bad_splits_are_refused(kwargs, message):
    eras = [f"{e:04d}" for e in range(1, 21)]
    with pytest.raises(DataError, match=message):
        walk_forward_splits(eras, **kwargs)


def test_labels_without_numbers_are_refused():
    with pytest.raises(DataError, match="eraX"):
        walk_forward_splits(["era1", "era2", "eraX"], chunk=1, purge=0)
    with pytest.raises(DataError, match="no eras"):
        walk_forward_splits([], chunk=1, purge=0)


# -- walk_forward_predict -----------------------------------------------------------------------
def test_walk_forward_predict_equals_one_train_lgbm_per_chunk():
    df, features = make_frame()
    df.loc[df.index[::7], "target"] = np.nan  # unknown targets are skipped in training
    out = walk_forward_predict(df, features, chunk=5, purge=2, params=FAST, progress=False)
    splits = walk_forward_splits(df["era"], chunk=5, purge=2)
    assert len(splits) == 3
    expected = []
    for k, (train_eras, predict_eras) in enumerate(splits, start=1):
        model = train_lgbm(df[df["era"].isin(train_eras)], features, params=FAST, progress=False)
        rows = df[df["era"].isin(predict_eras)]
        expected.append(pd.DataFrame({"fold": k, "prediction": predict(model, rows)}))
    expected = pd.concat(expected)
    assert list(out.index) == list(expected.index) == list(df.index[df["era"] > "0005"])
    assert (out["era"] == df.loc[out.index, "era"]).all()
    assert (out["fold"] == expected["fold"]).all()
    np.testing.assert_allclose(out["prediction"], expected["prediction"], rtol=1e-12)


def test_walk_forward_predict_averages_seeds_and_checks_its_inputs():
    df, features = make_frame(n_eras=12)
    out = walk_forward_predict(
        df, features, chunk=6, purge=1, params=FAST, seeds=(0, 1), progress=False
    )
    model = train_lgbm(df[df["era"] <= "0005"], features, params=FAST, seeds=(0, 1), progress=False)
    np.testing.assert_allclose(out["prediction"], predict(model, df[df["era"] > "0006"]))
    with pytest.raises(DataError, match="seeds is empty"):
        walk_forward_predict(df, features, chunk=6, purge=1, params=FAST, seeds=())
    with pytest.raises(DataError, match="target_x"):
        walk_forward_predict(df, features, target="target_x", chunk=6, purge=1)
    with pytest.raises(DataError, match="feature_99"):
        walk_forward_predict(df, [*features, "feature_99"], chunk=6, purge=1)


# -- era_boost ----------------------------------------------------------------------------------
def reference_era_boost(df, features, params, n_rounds, trees, proportion):
    """The recipe with LightGBM's documented continued training (lgb.train(init_model=...)) on
    plain numpy Datasets sharing the full data's bins, and numerai-tools' per-era CORR."""
    base, _ = lgb_params(params, 0)
    ds_params = dataset_params(base, integer_features=True)
    x = df[features].to_numpy(np.float32)
    y = df["target"].to_numpy()
    full = lgb.Dataset(x, y, params=ds_params, free_raw_data=False)
    booster = lgb.train({**base, **ds_params}, full, num_boost_round=trees)
    worst_counts = []
    for _ in range(n_rounds - 1):
        pred = pd.Series(booster.predict(x), index=df.index)
        scores = pd.Series(
            {
                era: numerai_corr(pred[g.index].to_frame(), g["target"]).iloc[0]
                for era, g in df.groupby("era")
            }
        )
        worst = scores.index[scores <= scores.quantile(proportion)]
        worst_counts.append(len(worst))
        rows = df["era"].isin(worst).to_numpy()
        subset = lgb.Dataset(x[rows], y[rows], reference=full, free_raw_data=False)
        booster = lgb.train(
            {**base, **ds_params},
            subset,
            num_boost_round=trees,
            init_model=booster,
            keep_training_booster=True,
        )
    return booster, worst_counts


def test_era_boost_equals_lightgbms_continued_training_on_the_worst_eras():
    df, features = make_frame(n_eras=16, per_era=60)
    model, history = era_boost(
        df, features, params=FAST, n_rounds=3, trees_per_round=10, proportion=0.5, progress=False
    )
    ref, worst_counts = reference_era_boost(df, features, FAST, 3, 10, 0.5)
    assert model.num_trees == [ref.num_trees()] == [30]
    np.testing.assert_allclose(
        predict(model, df), ref.predict(df[features].to_numpy(np.float32)), rtol=1e-6, atol=1e-9
    )
    assert history["round"].tolist() == [1, 2, 3]
    assert history["trees"].tolist() == [10, 20, 30]
    assert history["eras"].tolist() == [16, *worst_counts]
    assert all(n < 16 for n in worst_counts)


def test_era_boost_history_scores_are_the_in_sample_per_era_corr():
    df, features = make_frame(n_eras=10, per_era=60)
    model, history = era_boost(
        df, features, params=FAST, n_rounds=2, trees_per_round=5, progress=False
    )
    pred = predict(model, df)
    scores = np.array(
        [numerai_corr(pred[g.index].to_frame(), g["target"]).iloc[0] for _, g in df.groupby("era")]
    )
    last = history.iloc[-1]
    np.testing.assert_allclose(last["corr_mean"], scores.mean(), rtol=1e-6)
    np.testing.assert_allclose(last["corr_sharpe"], scores.mean() / scores.std(ddof=0), rtol=1e-6)


def test_one_round_of_era_boosting_is_a_plain_model():
    df, features = make_frame(n_eras=8)
    model, _ = era_boost(df, features, params=FAST, n_rounds=1, trees_per_round=15, progress=False)
    plain = train_lgbm(df, features, params=FAST, progress=False)
    np.testing.assert_allclose(predict(model, df), predict(plain, df), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rounds": 0}, "n_rounds=0"),
        ({"trees_per_round": 0}, "trees_per_round=0"),
        ({"proportion": 0.0}, "proportion=0"),
        ({"proportion": 1.5}, "proportion must lie in"),
        ({"target": "label"}, "label"),
    ],
)
def test_bad_era_boost_arguments_are_refused(kwargs, message):
    df, features = make_frame(n_eras=4)
    with pytest.raises(DataError, match=message):
        era_boost(df, features, params=FAST, progress=False, **kwargs)


# -- search_params ------------------------------------------------------------------------------
def test_search_params_table_equals_a_search_by_hand():
    df, features = make_frame(n_eras=15)
    grid = {"num_leaves": [4, 16], "learning_rate": [0.1]}
    table = search_params(grid, df, features, chunk=5, purge=2, params=FAST, progress=False)
    splits = walk_forward_splits(df["era"], chunk=5, purge=2)
    assert len(splits) == 2
    rows = []
    for leaves in (4, 16):
        params = {**FAST, "num_leaves": leaves, "learning_rate": 0.1}
        per_fold, pooled = {}, []
        for k, (train_eras, held_out) in enumerate(splits, start=1):
            model = train_lgbm(
                df[df["era"].isin(train_eras)], features, params=params, progress=False
            )
            test = df[df["era"].isin(held_out)]
            pred = predict(model, test)
            scores = [
                numerai_corr(pred[g.index].to_frame(), g["target"]).iloc[0]
                for _, g in test.groupby("era")
            ]
            per_fold[f"fold_{k}"] = np.mean(scores)
            pooled += scores
        rows.append(
            {
                "num_leaves": leaves,
                "learning_rate": 0.1,
                "mean": np.mean(pooled),
                "sharpe": np.mean(pooled) / np.std(pooled),
                "eras": len(pooled),
                **per_fold,
            }
        )
    expected = pd.DataFrame(rows).sort_values("mean", ascending=False).reset_index(drop=True)
    assert list(table.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-9)


def test_search_params_takes_given_splits():
    df, features = make_frame(n_eras=12)
    splits = [([f"{e:04d}" for e in range(1, 7)], [f"{e:04d}" for e in range(11, 13)])]
    table = search_params(
        {"max_depth": [2, 3]}, df, features, splits=splits, params=FAST, progress=False
    )
    assert table["eras"].tolist() == [2, 2]
    assert set(table.columns) == {"max_depth", "mean", "sharpe", "eras", "fold_1"}
    np.testing.assert_allclose(table["fold_1"], table["mean"])


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "non-empty dict"),
        ({"learning_rat": [0.1]}, "did you mean 'learning_rate'"),
        ({"num_leaves": 8}, "non-empty list"),
        ({"num_leaves": []}, "non-empty list"),
        ({"objective": "regression"}, "non-empty list"),
    ],
)
def test_bad_grids_are_refused(grid, message):
    df, features = make_frame(n_eras=6)
    with pytest.raises(DataError, match=message):
        search_params(grid, df, features, chunk=2, purge=0, params=FAST, progress=False)


def test_lightgbm_parameter_names_hold_the_documented_names_and_aliases():
    """LightGBM's Parameters page (the reference): ``feature_fraction`` has the alias
    ``colsample_bytree``, ``num_iterations`` has ``n_estimators``, ``seed`` has
    ``random_state``; and every name of our presets is known."""
    from nbutils.train import EXAMPLE_MODEL_PARAMS, lightgbm_parameter_names

    names = lightgbm_parameter_names()
    assert names is not None
    documented = {"feature_fraction", "colsample_bytree", "num_iterations", "n_estimators"}
    assert documented | {"seed", "random_state", "num_leaves", "min_data_in_leaf"} <= names
    assert set(SEED_PARAMS) | set(EXAMPLE_MODEL_PARAMS) <= names
    assert "learning_rat" not in names


def test_a_lightgbm_without_its_parameter_table_leaves_the_names_to_lightgbm(monkeypatch):
    """Without ``lightgbm.basic._ConfigAliases`` (a private name another version may drop) the
    helper says it cannot tell, and a grid's names are not refused by us."""
    from nbutils.train import lightgbm_parameter_names
    from nbutils.validation import _check_grid

    monkeypatch.delattr(lgb.basic, "_ConfigAliases")
    assert lightgbm_parameter_names() is None
    assert _check_grid({"learning_rate": [0.1, 0.2]}) == {"learning_rate": [0.1, 0.2]}
    assert _check_grid({"learning_rat": [0.1]}) == {"learning_rat": [0.1]}
    with pytest.raises(DataError, match="non-empty list"):
        _check_grid({"num_leaves": []})


def test_splits_with_eras_not_in_the_frame_are_refused():
    df, features = make_frame(n_eras=6)
    with pytest.raises(DataError, match="fold 1"):
        search_params({"num_leaves": [4]}, df, features, splits=[(["0001"], ["0099"])], params=FAST)
