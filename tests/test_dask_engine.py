"""The Dask engine against the local one, on a LocalCluster of 2 worker processes.

The cluster is started once for the module and stopped at its end. Data: a tiny v5 dataset
written here with several row groups (so frames have several partitions, and some eras span two
partitions), and a tiny legacy CSV dataset.
"""

from __future__ import annotations

import json
import os

import dask
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster, get_worker
from numerai_tools.scoring import numerai_corr

import nbutils.dask as de
from nbutils.dask.cluster import worker_addresses
from nbutils.dask.train import _assign
from nbutils.errors import DataError, NbutilsError
from nbutils.metrics import per_era_corr
from nbutils.neutralize import neutralize
from nbutils.train import SEED_PARAMS, load_model, predict, save_model, train_lgbm

N_FEATURES = 10
FEATURES = [f"feature_{i:02d}" for i in range(N_FEATURES)]
ROWS_PER_ERA = 90
ROW_GROUP = 120  # not a multiple of ROWS_PER_ERA: some eras span two row groups
PARAMS = {**SEED_PARAMS, "n_estimators": 25, "learning_rate": 0.1}


# -- tiny datasets ---------------------------------------------------------------------------------
def _split_frame(
    rng: np.random.Generator, eras: list[str], data_type: str, nan_share: float
) -> pd.DataFrame:
    n = len(eras) * ROWS_PER_ERA
    x = rng.integers(0, 5, size=(n, N_FEATURES), dtype=np.int8)
    signal = (x[:, 0] - 2) * 0.5 + (x[:, 1] - 2) * (x[:, 2] - 2) * 0.25 - (x[:, 3] - 2) * 0.3
    y = signal + rng.normal(0, 1.5, n)
    target = np.clip(np.round((y - y.mean()) / y.std() + 2), 0, 4) / 4
    target[rng.random(n) < nan_share] = np.nan
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(0, "data_type", data_type)
    frame.insert(0, "era", np.repeat(eras, ROWS_PER_ERA))
    frame["target"] = target.astype(np.float32)
    frame.index = pd.Index([f"{data_type[0]}{i:05d}" for i in range(n)], name="id")
    return frame


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """train: eras era1..era12 (natural order differs from lexicographic), validation era14..era19."""
    rng = np.random.default_rng(7)
    return {
        "train": _split_frame(rng, [f"era{i}" for i in range(1, 13)], "train", 0.05),
        "validation": _split_frame(rng, [f"era{i}" for i in range(14, 20)], "validation", 0.05),
        "live": _split_frame(rng, ["eraX"], "live", 1.0),
    }


@pytest.fixture(scope="module")
def v5_dir(tmp_path_factory, frames) -> str:
    root = tmp_path_factory.mktemp("dask_v5") / "v5.2"
    root.mkdir()
    for split, frame in frames.items():
        frame.to_parquet(root / f"{split}.parquet", row_group_size=ROW_GROUP)
    sets = {"all": FEATURES, "small": FEATURES[:4]}
    (root / "features.json").write_text(json.dumps({"feature_sets": sets, "targets": ["target"]}))
    return str(root)


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory, frames) -> str:
    root = tmp_path_factory.mktemp("dask_legacy") / "numerai_dataset_280"
    root.mkdir()
    names = {f: f"feature_wisdom{i + 1}" for i, f in enumerate(FEATURES)}

    def legacy(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.rename(columns=names).reset_index()
        out[list(names.values())] = out[list(names.values())].astype(np.float64) / 4
        return out

    legacy(frames["train"]).to_csv(root / "numerai_training_data.csv", index=False)
    tournament = pd.concat([frames["validation"], frames["live"].assign(data_type="test")])
    legacy(tournament).to_csv(root / "numerai_tournament_data.csv", index=False)
    return str(root)


@pytest.fixture(scope="module")
def client():
    """2 worker processes, 1 thread each, small memory limit; a dead task is not retried."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="1GiB",
            dashboard_address=None,
        )
        c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def live_client(client):
    """The module's client once both workers are up (a test may have killed one)."""
    client.wait_for_workers(2, timeout=60)
    return client


def same_ids(got: pd.Index, want: pd.Index) -> bool:
    """Same ids in the same order. The dtype is not compared: under pandas 2 Dask stores strings
    Arrow-backed (its ``dataframe.convert-string``), where the local engine has object."""
    return got.name == want.name and got.astype(object).equals(want.astype(object))


def _read(v5_dir: str, split: str, **kwargs) -> dd.DataFrame:
    return de.read_split(v5_dir, split, blocksize=1, **kwargs)  # one partition per row group


# -- connect ---------------------------------------------------------------------------------------
def test_connect_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(
        de.DaskEngineError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"
    ):
        de.connect("tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(de.DaskEngineError, match="not a scheduler address"):
        de.connect("  ")
    assert issubclass(de.DaskEngineError, NbutilsError)


def test_connect_returns_a_given_client_and_reaches_an_address(live_client):
    assert de.connect(live_client) is live_client
    other = de.connect(live_client.scheduler.address, timeout=10)
    try:
        assert len(worker_addresses(other)) == 2
    finally:
        other.close()


# -- reading ---------------------------------------------------------------------------------------
def test_read_split_v5_projects_columns_and_keeps_int8(v5_dir, frames, live_client):
    ddf = _read(v5_dir, "train")
    assert ddf.npartitions == -(-len(frames["train"]) // ROW_GROUP)
    assert list(ddf.columns) == ["era", "data_type", *FEATURES, "target"]
    assert all(ddf[f].dtype == np.int8 for f in FEATURES)
    got = ddf.compute()
    assert got.index.name == "id"
    pd.testing.assert_frame_equal(got, frames["train"], check_dtype=False, check_index_type=False)
    small = _read(v5_dir, "validation", features="small", targets=())
    assert list(small.columns) == ["era", "data_type", *FEATURES[:4]]


def test_read_split_era_step_keeps_every_nth_era_in_natural_order(v5_dir):
    got = _read(v5_dir, "train", era_step=5).compute()
    assert sorted(got["era"].unique()) == sorted(["era1", "era6", "era11"])


def test_read_split_errors(v5_dir, tmp_path):
    with pytest.raises(DataError, match="unknown split"):
        de.read_split(v5_dir, "test")
    with pytest.raises(DataError, match="Missing columns"):
        de.read_split(v5_dir, "train", features=["feature_nope"])
    with pytest.raises(DataError, match="unknown feature set"):
        de.read_split(v5_dir, "train", features="huge")
    with pytest.raises(DataError, match="era_step"):
        de.read_split(v5_dir, "train", era_step=0)
    with pytest.raises(DataError, match="no Numerai dataset"):
        de.read_split(tmp_path, "train")


def test_read_split_legacy_maps_floats_to_int8_bins(legacy_dir, frames, live_client):
    train = de.read_split(legacy_dir, "train", blocksize=20_000)
    assert train.npartitions > 1
    got = train.compute()
    names = [f"feature_wisdom{i + 1}" for i in range(N_FEATURES)]
    assert all(got[c].dtype == np.int8 for c in names)
    expected = frames["train"].rename(columns=dict(zip(FEATURES, names, strict=True)))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_index_type=False)
    valid = de.read_split(legacy_dir, "validation").compute()
    assert set(valid["data_type"]) == {"validation"} and len(valid) == len(frames["validation"])
    live = de.read_split(legacy_dir, "live", targets=()).compute()
    assert set(live["data_type"]) == {"test"} and same_ids(live.index, frames["live"].index)


# -- eras whole in partitions ----------------------------------------------------------------------
def _eras_per_partition(ddf: dd.DataFrame) -> list[set]:
    return [set(p["era"]) for p in dask.compute(*ddf.to_delayed())]


def test_by_era_shuffles_only_when_an_era_spans_partitions(v5_dir, live_client):
    ddf = _read(v5_dir, "train")
    assert any(
        len(a & b)
        for a, b in zip(_eras_per_partition(ddf), _eras_per_partition(ddf)[1:], strict=False)
    )
    arranged = de.by_era(ddf, client=live_client)
    parts = [p for p in _eras_per_partition(arranged) if p]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 12
    whole = ddf.map_partitions(lambda p: p).repartition(npartitions=1)
    assert de.by_era(whole, client=live_client) is whole


# -- scores and neutralization -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def scored(frames):
    """Validation rows with a prediction column: the local frame and its Dask twin."""
    rng = np.random.default_rng(3)
    local = frames["validation"].copy()
    local["prediction"] = local["feature_00"] * 0.3 + rng.normal(0, 1, len(local))
    return local


def test_per_era_scores_equal_local_engine(v5_dir, scored, live_client):
    ddf = _read(v5_dir, "validation").assign(prediction=0.0)
    ddf = ddf.map_partitions(
        lambda p, s: p.assign(prediction=s.reindex(p.index).to_numpy()), scored["prediction"]
    )
    for method in ("numerai", "spearman", "pearson"):
        got = de.per_era_scores_dask(ddf, method=method, client=live_client)
        want = per_era_corr(scored, method=method)
        assert list(got.index) == [f"era{i}" for i in range(14, 20)]  # natural order
        np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-9)
    # independent reference: numerai-tools, era by era (rows with a target)
    known = scored[scored["target"].notna()]
    ref = [
        numerai_corr(g[["prediction"]], g["target"].astype(np.float64)).iloc[0]
        for _, g in known.groupby("era")  # era14..era19: lexicographic = natural order here
    ]
    got = de.per_era_scores_dask(ddf, client=live_client)
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=0, atol=1e-9)


def test_neutralize_equals_local_engine(v5_dir, scored, live_client):
    ddf = _read(v5_dir, "validation")
    ddf = ddf.map_partitions(
        lambda p, s: p.assign(prediction=s.reindex(p.index).to_numpy()), scored["prediction"]
    )
    got = de.neutralize_dask(ddf, "prediction", FEATURES[:4], proportion=0.5, client=live_client)
    want = neutralize(scored, "prediction", FEATURES[:4], proportion=0.5)
    assert same_ids(got.index, want.index)  # ddf's row order, though the eras were shuffled
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-9)
    lazy = de.neutralize_dask(ddf, "prediction", FEATURES[:4], client=live_client, compute=False)
    assert isinstance(lazy, dd.DataFrame)
    full = neutralize(scored, "prediction", FEATURES[:4])
    np.testing.assert_allclose(
        lazy.compute().loc[full.index].to_numpy(), full.to_numpy(), atol=1e-9
    )
    block = de.neutralize_dask(ddf, "prediction", FEATURES[:4], era_col=None, client=live_client)
    want_block = neutralize(scored, "prediction", FEATURES[:4], era_col=None)
    np.testing.assert_allclose(block.to_numpy(), want_block.to_numpy(), rtol=0, atol=1e-9)


# -- training ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_model(frames):
    return train_lgbm(frames["train"], FEATURES, params=PARAMS, seeds=(0, 1), progress=False)


def _mean_corr(model, frame: pd.DataFrame) -> float:
    scored = frame.assign(prediction=predict(model, frame))
    return float(per_era_corr(scored).mean())


def test_stream_training_on_two_workers_matches_local_model(
    v5_dir, frames, local_model, live_client
):
    ddf = _read(v5_dir, "train")
    model = de.train_lgbm_dask(live_client, ddf, FEATURES, params=PARAMS, seeds=(0, 1))
    assert model.features == FEATURES and model.seeds == [0, 1] and model.num_trees == [25, 25]
    valid = frames["validation"]
    # Same bins (int8 values 0..4 all occur in every machine's sample) and the same summed
    # histograms: only the order of floating-point sums differs, so the validation corr agrees
    # to far better than 1e-6.
    assert abs(_mean_corr(model, valid) - _mean_corr(local_model, valid)) < 1e-6
    assert _mean_corr(model, valid) > 0.02  # it learned something


def test_lightgbm_dask_training_matches_local_corr(v5_dir, frames, local_model, live_client):
    ddf = _read(v5_dir, "train")
    model = de.train_lgbm_dask(
        live_client, ddf, FEATURES, params=PARAMS, seeds=(0, 1), method="lightgbm.dask"
    )
    assert isinstance(model.boosters[0], lgb.Booster) and model.num_trees == [25, 25]
    valid = frames["validation"]
    # DaskLGBMRegressor finds bins per worker from float32 copies and leaves LightGBM's default
    # 200,000-row bin sample; on int8 data the bins agree, so the corr agrees closely. The
    # tolerance 0.01 (a tenth of a typical era-to-era std) allows other bin boundaries on data
    # where a worker's partitions lack some value.
    assert abs(_mean_corr(model, valid) - _mean_corr(local_model, valid)) < 0.01


def test_dask_model_predicts_and_saves_like_a_local_one(v5_dir, frames, tmp_path, live_client):
    ddf = _read(v5_dir, "train")
    model = de.train_lgbm_dask(live_client, ddf, FEATURES, params=PARAMS, seeds=(0, 1))
    valid = _read(v5_dir, "validation")
    got = de.predict_dask(model, valid, FEATURES).compute()
    want = predict(model, frames["validation"])
    np.testing.assert_array_equal(got.loc[want.index].to_numpy(), want.to_numpy())
    loaded = load_model(save_model(model, tmp_path / "model.txt"))
    np.testing.assert_array_equal(predict(loaded, frames["validation"]).to_numpy(), want.to_numpy())
    with pytest.raises(DataError, match="feature list differs"):
        de.predict_dask(model, valid, FEATURES[::-1])


def test_training_errors(v5_dir, live_client):
    ddf = _read(v5_dir, "train")
    with pytest.raises(DataError, match="unknown training method"):
        de.train_lgbm_dask(live_client, ddf, FEATURES, method="spark")
    with pytest.raises(DataError, match="seeds is empty"):
        de.train_lgbm_dask(live_client, ddf, FEATURES, seeds=())
    with pytest.raises(DataError, match="Missing columns"):
        de.train_lgbm_dask(live_client, ddf, [*FEATURES, "feature_nope"])
    unlabelled = _read(v5_dir, "live")
    with pytest.raises(DataError, match="no training rows"):
        de.train_lgbm_dask(live_client, unlabelled, FEATURES)


def test_assign_balances_rows_and_skips_empty_partitions():
    # largest first to the least loaded: 0 (100) -> A, 3 (60) -> B, 2 (50) -> B (110),
    # 4 (40) -> A (140); the empty partition 1 goes nowhere
    groups = _assign([100, 0, 50, 60, 40], 2)
    assert groups == [[0, 4], [2, 3]]
    assert _assign([0, 5], 4) == [[1]]


# -- the notebooks' one-call helpers ---------------------------------------------------------------
def test_train_and_predict_then_per_era_table(v5_dir, frames, live_client):
    model, predictions = de.train_and_predict_dask(live_client, v5_dir, FEATURES, params=PARAMS)
    assert list(predictions.columns) == ["era", "data_type", "prediction"]
    assert predictions.index.name == "id"
    assert len(predictions) == len(frames["validation"]) + len(frames["live"])
    table = de.per_era_table_dask(live_client, v5_dir, predictions)
    valid = frames["validation"].join(predictions["prediction"])
    for method, column in de.PER_ERA_COLUMNS.items():
        np.testing.assert_allclose(
            table[column].to_numpy(), per_era_corr(valid, method=method).to_numpy(), atol=1e-9
        )


# -- a worker that dies ------------------------------------------------------------------------------
def _die_in_first_partition(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    """Kill the worker that computes partition 0 (one death only)."""
    if partition_info is not None and partition_info["number"] == 0:
        os._exit(1)
    return part


def _die_in_training(part: pd.DataFrame) -> pd.DataFrame:
    """Kill the worker of rank 1 while it reads a partition inside the training task."""
    if str(get_worker().get_current_task()).endswith("-1") and "nbutils-train-" in str(
        get_worker().get_current_task()
    ):
        os._exit(1)
    return part


def test_dead_worker_during_scoring_is_reported(v5_dir, scored, live_client):
    ddf = _read(v5_dir, "validation").assign(prediction=1.0)
    ddf = ddf.map_partitions(_die_in_first_partition, meta=ddf._meta)  # meta: never run here
    with pytest.raises(
        de.DaskEngineError, match="failed on the Dask cluster: KilledWorker"
    ) as info:
        de.per_era_scores_dask(ddf, client=live_client)
    assert "No partial result" in str(info.value) and "memory_limit" in str(info.value)


def test_dead_worker_during_training_is_reported(v5_dir, live_client):
    ddf = _read(v5_dir, "train")
    ddf = ddf.map_partitions(_die_in_training, meta=ddf._meta)
    with pytest.raises(de.DaskEngineError, match=r"training \(LightGBM on the workers\) failed"):
        de.train_lgbm_dask(live_client, ddf, FEATURES, params=PARAMS)


def test_train_and_predict_with_a_feature_spec_matches_local(v5_dir, frames, live_client):
    from nbutils.features import FeatureSpec

    spec = FeatureSpec(group_stats=True, stats=["mean", "std"], interactions=FEATURES[:3])
    groups = {"a": FEATURES[:5], "b": FEATURES[5:]}
    model, predictions = de.train_and_predict_dask(
        live_client, v5_dir, FEATURES, params=PARAMS, feature_spec=spec, feature_groups=groups
    )
    new = spec.new_columns(groups)
    assert model.features == [*FEATURES, *new] and len(set(model.features)) == len(model.features)
    local_valid = spec.apply(frames["validation"], groups)[0]
    want = predict(model, local_valid)  # the engineered columns computed locally, whole frame
    got = predictions["prediction"].loc[want.index]
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


# -- era labels (issue 13 item 10) -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["int", "str"])
def test_per_era_scores_keep_the_local_engines_era_labels(scored, live_client, kind):
    """Int eras stay ints (they used to become str, so subtracting the engines gave NaN)."""
    local = scored.copy()
    numbers = local["era"].str.removeprefix("era").astype(np.int64)
    local["era"] = numbers if kind == "int" else local["era"]
    ddf = dd.from_pandas(local[["era", "prediction", "target"]], npartitions=3, sort=False)
    got = de.per_era_scores_dask(ddf, client=live_client)
    want = per_era_corr(local)
    pd.testing.assert_series_equal(got, want, check_names=False, rtol=0, atol=1e-12)
    assert got.index.dtype == want.index.dtype and got.index.name == want.index.name
    assert (got - want).notna().all()
