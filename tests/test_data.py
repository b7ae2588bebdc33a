"""nbutils.data: the synthetic generator, both layouts through load_data, and every bad input.

References are independent of nbutils: pandas' own ``read_parquet``/``read_csv``, numpy counts,
numerai-tools' ``numerai_corr`` and ``neutralize``, scikit-learn and LightGBM.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from numerai_tools.scoring import neutralize, numerai_corr

from nbutils.checks import column_block
from nbutils.data import (
    AUX_TARGETS,
    EXAMPLE_BENCHMARK,
    GROUPS,
    MANIFEST_NAME,
    META_MODEL_COL,
    NAMED_TARGETS,
    TINY_SIZES,
    V5_CSV_FILES,
    V5_FILES,
    V5_VERSIONS,
    NumeraiData,
    SyntheticModel,
    benchmark_columns,
    find_dataset,
    legacy_feature_sets,
    load_data,
    make_synthetic_dataset,
)
from nbutils.data.validate import fixed_width_bytes
from nbutils.errors import DataError
from nbutils.util import natural_sorted, read_json, string_dtype, write_json

LEGACY_NAMES = (
    "numerai_training_data.csv",
    "numerai_tournament_data.csv",
    "example_predictions.csv",
)


def _visible(directory) -> list[str]:
    """The dataset's file names, without the generator's hidden marker."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def _sha(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def v5(tiny_v5_dir) -> NumeraiData:
    return load_data(tiny_v5_dir)


@pytest.fixture(scope="module")
def legacy(tiny_legacy_dir) -> NumeraiData:
    return load_data(tiny_legacy_dir)


@pytest.fixture
def v5_copy(tiny_v5_dir, tmp_path):
    return shutil.copytree(tiny_v5_dir, tmp_path / tiny_v5_dir.name)


@pytest.fixture
def legacy_copy(tiny_legacy_dir, tmp_path):
    return shutil.copytree(tiny_legacy_dir, tmp_path / tiny_legacy_dir.name)


# --------------------------------------------------------------------------------------------
# layout on disk
# --------------------------------------------------------------------------------------------


#: The files Numerai lists for v5.2 and v5.3 (hello_numerai's listing; docs/data.md).
REAL_V5_NAMES = [
    "features.json",
    "live.parquet",
    "live_benchmark_models.parquet",
    "live_example_preds.csv",
    "live_example_preds.parquet",
    "meta_model.parquet",
    "train.parquet",
    "train_benchmark_models.parquet",
    "validation.parquet",
    "validation_benchmark_models.parquet",
    "validation_example_preds.csv",
    "validation_example_preds.parquet",
]


def test_v5_files_and_names(tiny_v5_dir):
    assert tiny_v5_dir.name == "v5.3" == V5_VERSIONS[0]
    assert _visible(tiny_v5_dir) == REAL_V5_NAMES
    assert sorted([*V5_FILES.values(), *V5_CSV_FILES.values()]) == REAL_V5_NAMES
    meta = read_json(tiny_v5_dir / "features.json")
    assert set(meta) == {"feature_sets", "targets"}
    sets = meta["feature_sets"]
    assert {"small", "medium", "all", *GROUPS, "quantum"} <= set(sets)
    assert {"v2_equivalent_features", "v3_equivalent_features", "fncv3_features"} <= set(sets)
    assert meta["targets"] == [*NAMED_TARGETS, "target"]
    assert all(t.endswith(("_20", "_60")) for t in AUX_TARGETS)
    assert "target_ender_20" in NAMED_TARGETS and "target_ender_20" not in AUX_TARGETS
    # the groups partition "all"; names do not reveal the group
    members = [f for g in GROUPS for f in sets[g]]
    assert sorted(members) == sorted(sets["all"]) and len(set(members)) == len(members)
    assert not any(g in f for g in GROUPS for f in sets["all"])
    assert set(sets["small"]) < set(sets["medium"]) < set(sets["all"])
    for key, members in sets.items():
        assert set(members) <= set(sets["all"]) and members, key
    train = pd.read_parquet(tiny_v5_dir / "train.parquet")
    assert train.index.name == "id"
    assert list(train.columns[:2]) == ["era", "data_type"]
    assert list(train.columns[2 : 2 + len(sets["all"])]) == sets["all"]
    assert list(train.columns[2 + len(sets["all"]) :]) == ["target", *NAMED_TARGETS]
    assert (train[sets["all"]].dtypes == np.int8).all()
    assert (train[["target", *NAMED_TARGETS]].dtypes == np.float32).all()
    # target is an alias of target_ender_20 (Numerai's target_ensemble notebook asserts it)
    assert train["target"].equals(train["target_ender_20"])
    meta_model = pd.read_parquet(tiny_v5_dir / "meta_model.parquet")
    assert list(meta_model.columns) == ["era", "data_type", META_MODEL_COL]
    assert meta_model.index.name == "id"
    for split in ("train", "validation", "live"):
        bench = pd.read_parquet(tiny_v5_dir / f"{split}_benchmark_models.parquet")
        assert bench.index.name == "id"
        assert list(bench.columns) == ["era", *benchmark_columns("v5.3")]
        assert "v53_lgbm_ender20" in bench.columns and "prediction" not in bench.columns
    example = pd.read_csv(tiny_v5_dir / "live_example_preds.csv", dtype={"id": str})
    assert list(example.columns) == ["id", "prediction"]
    parquet = pd.read_parquet(tiny_v5_dir / "live_example_preds.parquet")
    assert example["id"].tolist() == parquet.index.tolist()
    np.testing.assert_allclose(example["prediction"], parquet["prediction"], rtol=1e-6)


def test_v52_is_the_release_before_without_the_quantum_features(tmp_path, tiny_v5_dir):
    out = make_synthetic_dataset(tmp_path, version="v5.2", **TINY_SIZES)
    assert out.name == "v5.2" == V5_VERSIONS[1]
    assert _visible(out) == REAL_V5_NAMES
    old, new = load_data(out), load_data(tiny_v5_dir)
    quantum = read_json(tiny_v5_dir / "features.json")["feature_sets"]["quantum"]
    assert "quantum" not in old.feature_sets
    assert old.features == [f for f in new.features if f not in quantum]
    pd.testing.assert_frame_equal(old.train[old.features], new.train[old.features])
    assert list(old.benchmark_models["live"].columns) == ["era", *benchmark_columns("v5.2")]
    assert "v52_lgbm_ender20" in old.benchmark_models["live"]
    assert benchmark_columns("v5.0")[0] == "v5_lgbm_cyrusd20"


def test_benchmark_models_and_example_predictions(v5, tiny_v5_dir):
    """The example predictions are the ct_blend benchmark column, exactly; the benchmark files
    cover validation (with its test rows) and live whole, and train from a walk-forward start."""
    for split in ("validation", "live"):
        bench = v5.benchmark_models[split]
        frame = getattr(v5, split)
        assert bench.index.equals(frame.index)
        assert bench["era"].equals(frame["era"])
        assert bench[EXAMPLE_BENCHMARK].equals(v5.example_predictions.loc[frame.index])
        assert (bench.drop(columns="era").dtypes == np.float64).all()
        values = bench.drop(columns="era").to_numpy()
        assert np.isfinite(values).all() and ((values > 0) & (values < 1)).all()
    train_bench = v5.benchmark_models["train"]
    t = TINY_SIZES["n_train_eras"]
    assert natural_sorted(train_bench["era"].unique()) == [
        f"{e:04d}" for e in range(t // 2 + 1, t + 1)
    ]
    assert train_bench.index.isin(v5.train.index).all()


def test_legacy_files_and_names(tiny_legacy_dir):
    assert tiny_legacy_dir.name == "numerai_dataset_280"
    assert _visible(tiny_legacy_dir) == sorted(LEGACY_NAMES)
    train = pd.read_csv(tiny_legacy_dir / "numerai_training_data.csv")
    features = [c for c in train.columns if c.startswith("feature_")]
    assert list(train.columns) == ["id", "era", "data_type", *features, "target"]
    groups = {g for g in GROUPS if any(f.startswith(f"feature_{g}") for f in features)}
    assert groups == set(GROUPS)
    values = np.unique(train[features].to_numpy())
    np.testing.assert_array_equal(values, [0, 0.25, 0.5, 0.75, 1])
    tournament = pd.read_csv(tiny_legacy_dir / "numerai_tournament_data.csv")
    assert set(tournament["data_type"]) == {"validation", "test", "live"}
    assert tournament.loc[tournament["data_type"] != "validation", "target"].isna().all()
    assert tournament.loc[tournament["data_type"] == "validation", "target"].notna().all()
    # as in 2021: validation rows, then test, then live; within each part sorted by id, so the
    # eras are interleaved and only the file's own order is a valid submission order
    blocks = tournament["data_type"][tournament["data_type"] != tournament["data_type"].shift()]
    assert blocks.tolist() == ["validation", "test", "live"]
    for _, part in tournament.groupby("data_type", sort=False):
        assert part["id"].is_monotonic_increasing
    valid_eras = tournament.loc[tournament["data_type"] == "validation", "era"]
    assert (valid_eras != valid_eras.shift()).sum() > valid_eras.nunique()
    example = pd.read_csv(tiny_legacy_dir / "example_predictions.csv")
    assert list(example.columns) == ["id", "prediction"]
    assert example["id"].tolist() == tournament["id"].tolist()


def test_eras_no_gap_and_labels(v5, legacy):
    """Validation starts right after train (Numerai's v5 files have no gap); the test eras
    (no targets) follow validation in validation.parquet, then the live era."""
    t, v = TINY_SIZES["n_train_eras"], TINY_SIZES["n_validation_eras"]
    s = TINY_SIZES["n_test_eras"]
    assert natural_sorted(v5.train["era"].unique()) == [f"{e:04d}" for e in range(1, t + 1)]
    assert natural_sorted(v5.validation["era"].unique()) == [
        f"{e:04d}" for e in range(t + 1, t + 1 + v + s)
    ]
    scored = v5.validation[v5.validation["data_type"] == "validation"]
    test = v5.validation[v5.validation["data_type"] == "test"]
    assert natural_sorted(scored["era"].unique())[0] == f"{t + 1:04d}"
    assert natural_sorted(test["era"].unique()) == [
        f"{e:04d}" for e in range(t + 1 + v, t + 1 + v + s)
    ]
    assert test[v5.targets].isna().all().all() and scored[v5.targets].notna().all().all()
    assert v5.live["era"].unique().tolist() == [f"{t + 1 + v + s:04d}"]
    assert natural_sorted(legacy.train["era"].unique()) == [f"era{e}" for e in range(1, t + 1)]
    assert natural_sorted(legacy.validation["era"].unique()) == [
        f"era{e}" for e in range(t + 1, t + 1 + v)
    ]
    live_eras = set(legacy.live["era"])
    assert "eraX" in live_eras and len(live_eras) == TINY_SIZES["n_test_eras"] + 1
    assert set(legacy.live["data_type"]) == {"test", "live"}


def test_determinism_byte_identical(tmp_path, tiny_v5_dir, tiny_legacy_dir):
    for layout, reference in (("v5", tiny_v5_dir), ("legacy", tiny_legacy_dir)):
        again = make_synthetic_dataset(
            tmp_path / f"a_{layout}", layout=layout, seed=0, **TINY_SIZES
        )
        assert _sha(again) == _sha(reference)
    other = make_synthetic_dataset(tmp_path / "seed1", layout="v5", seed=1, **TINY_SIZES)
    assert _sha(other)["train.parquet"] != _sha(tiny_v5_dir)["train.parquet"]
    assert _sha(other)["features.json"] == _sha(tiny_v5_dir)["features.json"]


def test_generation_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves no file under a final name and no temporary file."""
    import nbutils.data.write as write_module

    def broken(*args, **kwargs):
        yield from ()
        raise RuntimeError("disk full")

    monkeypatch.setattr(write_module, "_v5_split_tables", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        make_synthetic_dataset(tmp_path, **TINY_SIZES)
    (out,) = tmp_path.glob("*/v5.3")
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------------------------
# load_data: round trips against pandas' own readers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "validation", "live"])
def test_v5_round_trip(v5, tiny_v5_dir, split):
    reference = pd.read_parquet(tiny_v5_dir / f"{split}.parquet")
    frame = getattr(v5, split)
    assert frame.index.name == "id"
    assert frame.index.tolist() == reference.index.tolist()
    # pandas 3's Arrow-backed "str" dtype under pandas 2.2 and 3 alike (no Python object a row)
    assert frame.index.dtype == string_dtype()
    assert all(isinstance(i, str) for i in frame.index[:5])
    assert list(frame.columns) == ["era", "data_type", *v5.features, *v5.targets]
    assert (frame[v5.features].dtypes == np.int8).all()
    np.testing.assert_array_equal(frame[v5.features].to_numpy(), reference[v5.features].to_numpy())
    assert frame["era"].tolist() == reference["era"].tolist()
    # validation.parquet also holds the test eras (no targets yet), as Numerai's file does
    assert set(frame["data_type"]) == ({"validation", "test"} if split == "validation" else {split})
    # era and data_type: the same Arrow-backed string dtype (groupby as with plain strings)
    for col in ("era", "data_type"):
        assert frame[col].dtype == string_dtype()
        assert frame[col].tolist() == reference[col].tolist()
    for target in v5.targets:
        assert frame[target].dtype == np.float64  # the file's float32, widened (exact)
        np.testing.assert_array_equal(frame[target].to_numpy(), reference[target].to_numpy())
    assert frame["target"].isna().all() == (split == "live")
    assert frame["target"].isna().equals(frame["data_type"] != "train") or split != "train"


def test_v5_metadata(v5, tiny_v5_dir):
    meta = read_json(tiny_v5_dir / "features.json")
    assert v5.layout == "v5" and v5.version == "v5.3" and v5.round is None
    assert v5.features == meta["feature_sets"]["all"]
    assert v5.targets == ["target", *NAMED_TARGETS]
    assert v5.feature_groups == {g: meta["feature_sets"][g] for g in GROUPS}
    assert v5.feature_sets == meta["feature_sets"]
    assert v5.data_dir == tiny_v5_dir
    assert set(v5.files) == set(V5_FILES)
    assert set(v5.benchmark_models) == {"train", "validation", "live"}
    example = pd.concat(
        [
            pd.read_parquet(tiny_v5_dir / "validation_example_preds.parquet")["prediction"],
            pd.read_parquet(tiny_v5_dir / "live_example_preds.parquet")["prediction"],
        ]
    ).astype(np.float64)  # stored as float32, like the benchmark column it equals
    pd.testing.assert_series_equal(v5.example_predictions, example, check_index_type=False)
    assert v5.example_predictions.index.tolist() == [*v5.validation.index, *v5.live.index]
    assert v5.example_predictions.between(0, 1).all()
    scored = v5.validation[v5.validation["data_type"] == "validation"]
    assert v5.meta_model.index.tolist() == scored.index.tolist()  # validation eras only
    assert v5.meta_model.name == META_MODEL_COL


def test_v5_round_from_manifest(v5_copy):
    write_json(v5_copy / MANIFEST_NAME, {"round": 1234, "files": {}})
    assert load_data(v5_copy).round == 1234


def test_legacy_round_trip(legacy, tiny_legacy_dir):
    train_ref = pd.read_csv(tiny_legacy_dir / "numerai_training_data.csv").set_index("id")
    tour_ref = pd.read_csv(tiny_legacy_dir / "numerai_tournament_data.csv").set_index("id")
    features = [c for c in train_ref.columns if c.startswith("feature_")]
    assert legacy.layout == "legacy" and legacy.round == 280
    assert legacy.features == features and legacy.targets == ["target"]
    expected = {
        "train": train_ref,
        "validation": tour_ref[tour_ref["data_type"] == "validation"],
        "live": tour_ref[tour_ref["data_type"].isin(["test", "live"])],  # file order kept
    }
    for split, reference in expected.items():
        frame = getattr(legacy, split)
        assert frame.index.tolist() == reference.index.tolist()
        assert (frame[features].dtypes == np.int8).all()
        np.testing.assert_array_equal(
            frame[features].to_numpy(), reference[features].to_numpy() * 4
        )
        np.testing.assert_array_equal(frame["target"].to_numpy(), reference["target"].to_numpy())
        assert frame["era"].tolist() == reference["era"].tolist()
        assert frame["data_type"].tolist() == reference["data_type"].tolist()
    example = pd.read_csv(tiny_legacy_dir / "example_predictions.csv").set_index("id")["prediction"]
    assert legacy.example_predictions.index.tolist() == example.index.tolist()
    np.testing.assert_allclose(legacy.example_predictions.to_numpy(), example.to_numpy())
    assert legacy.meta_model is None
    assert set(legacy.feature_groups) == set(GROUPS)


def test_both_layouts_hold_the_same_data(v5, legacy):
    """Feature k of group g is ``feature_<g><k>`` in legacy and ``feature_sets[g][k-1]`` in v5."""
    assert v5.train.index.tolist() == legacy.train.index.tolist()
    np.testing.assert_array_equal(v5.train["target"], legacy.train["target"])
    legacy_test = legacy.live[legacy.live["data_type"] == "test"]
    assert set(v5.validation.index) == set(legacy.validation.index) | set(legacy_test.index)
    for group in GROUPS:
        for k, name in enumerate(v5.feature_groups[group], start=1):
            np.testing.assert_array_equal(
                v5.train[name].to_numpy(), legacy.train[f"feature_{group}{k}"].to_numpy()
            )
    live_only = legacy.live[legacy.live["data_type"] == "live"]
    assert set(live_only.index) == set(v5.live.index)


def test_float32(tiny_v5_dir, tiny_legacy_dir, v5, legacy):
    v5_f = load_data(tiny_v5_dir, dtype="float32")
    assert (v5_f.train[v5.features].dtypes == np.float32).all()
    np.testing.assert_array_equal(
        v5_f.train[v5.features].to_numpy(), v5.train[v5.features].to_numpy()
    )
    legacy_f = load_data(tiny_legacy_dir, dtype=np.float32)
    reference = pd.read_csv(tiny_legacy_dir / "numerai_training_data.csv")
    # the tutorial's reduce_memory: the file's values as float32
    np.testing.assert_array_equal(
        legacy_f.train[legacy.features].to_numpy(),
        reference[legacy.features].to_numpy().astype(np.float32),
    )


@pytest.mark.parametrize("step", [2, 3])
def test_era_step(tiny_v5_dir, tiny_legacy_dir, v5, legacy, step):
    for path, full in ((tiny_v5_dir, v5), (tiny_legacy_dir, legacy)):
        sub = load_data(path, era_step=step)
        kept = natural_sorted(full.train["era"].unique())[::step]
        assert natural_sorted(sub.train["era"].unique()) == kept
        expected = full.train[full.train["era"].isin(kept)]
        pd.testing.assert_frame_equal(sub.train, expected)
        pd.testing.assert_frame_equal(sub.validation, full.validation)


@pytest.mark.parametrize("name", ["small", "medium", "all", "charisma"])
def test_feature_sets_v5(tiny_v5_dir, v5, name):
    sub = load_data(tiny_v5_dir, feature_set=name)
    assert sub.features == v5.feature_sets[name]
    assert list(sub.train.columns) == ["era", "data_type", *sub.features, *sub.targets]
    pd.testing.assert_frame_equal(sub.train[sub.features], v5.train[sub.features])
    assert sorted(f for fs in sub.feature_groups.values() for f in fs) == sorted(sub.features)


def test_feature_sets_legacy_rule(tiny_legacy_dir, legacy):
    per_group = TINY_SIZES["n_features"] // len(GROUPS)  # 3
    small = load_data(tiny_legacy_dir, feature_set="small")
    assert small.features == [f"feature_{g}1" for g in GROUPS]  # ceil(3 / 4) = 1 per group
    medium = load_data(tiny_legacy_dir, feature_set="medium")
    assert medium.features == [f"feature_{g}{k}" for g in GROUPS for k in (1, 2)]  # ceil(3 / 2)
    wisdom = load_data(tiny_legacy_dir, feature_set="wisdom")
    assert wisdom.features == [f"feature_wisdom{k}" for k in range(1, per_group + 1)]
    assert wisdom.feature_groups == {"wisdom": wisdom.features}
    columns = ["id", "feature_strength10", "feature_strength2", "feature_strength1", "target"]
    sets = legacy_feature_sets(columns)
    assert sets["strength"] == ["feature_strength1", "feature_strength2", "feature_strength10"]
    assert sets["small"] == ["feature_strength1"]
    assert sets["medium"] == ["feature_strength1", "feature_strength2"]
    assert sets["all"] == ["feature_strength10", "feature_strength2", "feature_strength1"]


def test_feature_list_and_target_selection(tiny_v5_dir, v5):
    chosen = v5.features[3:5]
    sub = load_data(tiny_v5_dir, feature_set=chosen, targets="target")
    assert sub.features == chosen and sub.targets == ["target"]
    assert list(sub.live.columns) == ["era", "data_type", *chosen, "target"]
    sub = load_data(tiny_v5_dir, targets=[AUX_TARGETS[1], "target"])
    assert sub.targets == ["target", AUX_TARGETS[1]]


def test_layout_detection(tmp_path, tiny_v5_dir):
    root = tmp_path / "data"
    for version in ("v5.2", "v5.10", "v5.9"):
        shutil.copytree(tiny_v5_dir, root / version)
    make_synthetic_dataset(root, layout="legacy", **TINY_SIZES)
    assert find_dataset(root) == ("v5", root / "v5.10")  # natural order, v5 first
    assert load_data(root).version == "v5.10"
    legacy_root = tmp_path / "old"
    for round_number in (99, 281):
        built = make_synthetic_dataset(
            tmp_path / "built", layout="legacy", round=round_number, **TINY_SIZES
        )
        shutil.copytree(built, legacy_root / built.name)
    assert find_dataset(legacy_root) == ("legacy", legacy_root / "numerai_dataset_281")
    assert find_dataset(legacy_root / "numerai_dataset_99")[1].name == "numerai_dataset_99"


def test_features_block_is_not_copied(v5):
    """The loader hands pandas one Fortran-ordered array: the features are a single int8 block,
    so the feature matrix is a view of the memory each feature column lives in (no copy; pandas 2
    copies on a list selection, hence ``column_block``)."""
    matrix = np.asarray(column_block(v5.train, v5.features))
    assert matrix.dtype == np.int8 and matrix.shape == (len(v5.train), len(v5.features))
    for name in (v5.features[0], v5.features[-1]):
        assert np.shares_memory(matrix, v5.train[name].to_numpy())


# --------------------------------------------------------------------------------------------
# statistical properties
# --------------------------------------------------------------------------------------------


def test_bins_equal_frequency(v5):
    n = TINY_SIZES["rows_per_era"]
    for _, era in v5.train.groupby("era"):
        values = era[v5.features].to_numpy()
        counts = np.stack([(values == b).sum(axis=0) for b in range(5)])
        assert np.abs(counts - n / 5).max() <= 1


def test_target_distribution(v5):
    expected = np.array([0.05, 0.20, 0.50, 0.20, 0.05])
    levels = np.array([0, 0.25, 0.5, 0.75, 1])
    for name in v5.targets:
        for _, era in v5.train.groupby("era"):
            counts = np.array([(era[name] == level).sum() for level in levels])
            assert counts.sum() == len(era)
            assert np.abs(counts - expected * len(era)).max() <= 1
    assert v5.live[v5.targets].isna().all().all()
    scored = v5.validation["data_type"] == "validation"
    assert v5.validation.loc[scored, v5.targets].notna().all().all()
    assert v5.validation.loc[~scored, v5.targets].isna().all().all()


MEDIUM = {
    "n_train_eras": 20,
    "n_validation_eras": 12,
    "rows_per_era": 3000,
    "n_features": 12,
    "n_live": 100,
}


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> NumeraiData:
    return load_data(make_synthetic_dataset(tmp_path_factory.mktemp("medium"), seed=0, **MEDIUM))


@pytest.fixture(scope="module")
def medium_scored(medium) -> pd.DataFrame:
    """Validation with a small LightGBM's predictions, ranked per era, and their neutral version."""
    model = lgb.LGBMRegressor(
        n_estimators=60,
        learning_rate=0.08,
        max_depth=5,
        num_leaves=31,
        random_state=0,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(medium.train[medium.features], medium.train["target"])
    valid = medium.validation[medium.validation["data_type"] == "validation"].copy()
    valid["lgbm"] = model.predict(valid[medium.features])
    valid["lgbm"] = valid.groupby("era")["lgbm"].rank(pct=True)
    valid["neutral"] = valid.groupby("era", group_keys=False).apply(
        lambda g: neutralize(g[["lgbm"]], g[medium.features].astype(float))["lgbm"]
    )
    valid["example"] = medium.example_predictions.reindex(valid.index)
    valid["meta"] = medium.meta_model.reindex(valid.index)
    return valid


def _per_era(frame: pd.DataFrame, column: str, target: str = "target") -> pd.Series:
    return frame.groupby("era").apply(lambda g: numerai_corr(g[[column]], g[target]).iloc[0])


def test_simple_model_finds_signal(medium_scored):
    scores = _per_era(medium_scored, "lgbm")
    assert 0.02 < scores.mean() < 0.12
    assert scores.mean() / scores.std(ddof=0) > 1


def test_ridge_finds_signal(medium):
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=1.0).fit(medium.train[medium.features], medium.train["target"])
    scored = medium.validation[medium.validation["target"].notna()]
    valid = scored.assign(ridge=model.predict(scored[medium.features]))
    assert _per_era(valid, "ridge").mean() > 0.01


def test_neutralizing_lowers_mean_and_std(medium_scored):
    raw, neutral = _per_era(medium_scored, "lgbm"), _per_era(medium_scored, "neutral")
    assert neutral.mean() < raw.mean()
    assert neutral.std(ddof=0) < raw.std(ddof=0)
    assert neutral.mean() > 0  # the nonlinear signal survives linear neutralization


def test_example_predictions_and_meta_model(medium_scored):
    corr = np.corrcoef(medium_scored["example"], medium_scored["lgbm"])[0, 1]
    assert 0.4 < corr < 0.9
    assert _per_era(medium_scored, "example").mean() > 0
    assert _per_era(medium_scored, "meta").mean() > 0


def test_auxiliary_targets_correlate_as_in_the_real_data(medium):
    """Numerai's target_ensemble prints, for v5: other 20-day targets 0.66-0.80 with the main
    target, 60-day targets 0.36-0.46 (docs/data.md); the synthetic ones fall near those ranges."""
    corr = medium.train[medium.targets].corr()["target"]
    assert corr["target_ender_20"] == 1.0
    for name in AUX_TARGETS:
        low, high = (0.6, 0.85) if name.endswith("_20") else (0.3, 0.55)
        assert low < corr[name] < high, (name, corr[name])


def _flipping_features(data: NumeraiData) -> list[str]:
    """Features whose per-era Pearson correlation with the target is beyond +3 and -3 standard
    errors (1 / sqrt(rows)) in different eras."""
    per_era = data.train.groupby("era")[[*data.features, "target"]].apply(
        lambda g: g[data.features].corrwith(g["target"])
    )
    bound = 3 / np.sqrt(MEDIUM["rows_per_era"])
    flips = (per_era > bound).any() & (per_era < -bound).any()
    return flips[flips].index.tolist()


def test_feature_risk_exists(medium, tmp_path):
    assert len(_flipping_features(medium)) >= 1
    # control: without the risky part no feature flips significantly
    calm = make_synthetic_dataset(tmp_path, seed=0, model=SyntheticModel(risk_weight=0.0), **MEDIUM)
    assert _flipping_features(load_data(calm)) == []


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist.*make_synthetic_dataset"):
        load_data(tmp_path / "nope")


def test_directory_without_dataset(tmp_path):
    with pytest.raises(DataError, match="no Numerai dataset"):
        load_data(tmp_path)


@pytest.mark.parametrize(
    "name", ["validation.parquet", "live.parquet", "features.json", "train.parquet"]
)
def test_missing_v5_file(v5_copy, name):
    (v5_copy / name).unlink()
    with pytest.raises(DataError, match=f"{name} is missing.*download"):
        load_data(v5_copy)


def test_missing_optional_v5_files(v5_copy):
    for name in ("meta_model.parquet", "live_example_preds.parquet"):
        (v5_copy / name).unlink()
    data = load_data(v5_copy)
    assert data.meta_model is None
    assert data.example_predictions.index.tolist() == data.validation.index.tolist()


@pytest.mark.parametrize("name", ["numerai_tournament_data.csv", "numerai_training_data.csv"])
def test_missing_legacy_file(legacy_copy, name):
    (legacy_copy / name).unlink()
    with pytest.raises(DataError, match=f"{name} is missing"):
        load_data(legacy_copy)


def test_missing_feature_column(v5_copy, v5):
    table = pq.read_table(v5_copy / "validation.parquet").drop_columns([v5.features[0]])
    pq.write_table(table, v5_copy / "validation.parquet")
    with pytest.raises(
        DataError, match=rf"Missing column.*{v5.features[0]}.*validation.parquet has"
    ):
        load_data(v5_copy)


def test_missing_target_column(v5_copy, tiny_legacy_dir):
    with pytest.raises(DataError, match="Missing column.*target_nope.*train.parquet has"):
        load_data(v5_copy, targets=["target", "target_nope"])
    with pytest.raises(
        DataError, match="Missing column.*target_nope.*numerai_training_data.csv has"
    ):
        load_data(tiny_legacy_dir, targets="target_nope")


def test_missing_legacy_column(legacy_copy):
    path = legacy_copy / "numerai_tournament_data.csv"
    frame = pd.read_csv(path).drop(columns=["feature_wisdom2"])
    frame.to_csv(path, index=False)
    with pytest.raises(
        DataError, match="Missing column.*feature_wisdom2.*numerai_tournament_data.csv has"
    ):
        load_data(legacy_copy)


def test_unknown_feature_column_in_list(tiny_v5_dir):
    with pytest.raises(
        DataError, match="Missing column.*feature_nope.*train.parquet has.*feature_set"
    ):
        load_data(tiny_v5_dir, feature_set=["feature_nope"])


@pytest.mark.parametrize("name", ["train.parquet", "live.parquet", "meta_model.parquet"])
def test_corrupt_parquet(v5_copy, name):
    path = v5_copy / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=f"{name} is not a readable parquet file.*download"):
        load_data(v5_copy)


def test_corrupt_features_json(v5_copy):
    (v5_copy / "features.json").write_text("{not json")
    with pytest.raises(DataError, match="features.json is not a readable json file"):
        load_data(v5_copy)
    (v5_copy / "features.json").write_text('{"targets": []}')
    with pytest.raises(DataError, match="no 'feature_sets'"):
        load_data(v5_copy)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text + "n999,era1,train,0.5\n",  # too few fields
        lambda text: text.replace("0.25", "abc", 1),  # not a number
        lambda text: "",  # empty file
    ],
)
def test_corrupt_csv(legacy_copy, damage):
    path = legacy_copy / "numerai_training_data.csv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(DataError, match="numerai_training_data.csv is not a readable csv file"):
        load_data(legacy_copy)


def test_off_grid_legacy_values(legacy_copy):
    path = legacy_copy / "numerai_training_data.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "feature_wisdom1"] = 0.3
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match='off the 0, 0.25.*dtype="float32"'):
        load_data(legacy_copy)
    assert load_data(legacy_copy, dtype="float32").train["feature_wisdom1"].iloc[0] == np.float32(
        0.3
    )


def test_missing_feature_values(legacy_copy):
    """Missing values become the middle bin 2 in int8 and stay NaN in float32."""
    path = legacy_copy / "numerai_training_data.csv"
    frame = pd.read_csv(path)
    frame.loc[1, "feature_charisma1"] = np.nan
    frame.to_csv(path, index=False)
    assert load_data(legacy_copy).train["feature_charisma1"].iloc[1] == 2
    assert np.isnan(load_data(legacy_copy, dtype="float32").train["feature_charisma1"].iloc[1])


@pytest.mark.parametrize("feature_set", ["huge", "v9_features", ""])
def test_unknown_feature_set(tiny_v5_dir, tiny_legacy_dir, feature_set):
    for path in (tiny_v5_dir, tiny_legacy_dir):
        with pytest.raises(DataError, match="unknown feature set.*small"):
            load_data(path, feature_set=feature_set)


@pytest.mark.parametrize("feature_set", [[], [1, 2]])
def test_bad_feature_list(tiny_v5_dir, feature_set):
    with pytest.raises(DataError, match="non-empty list"):
        load_data(tiny_v5_dir, feature_set=feature_set)


@pytest.mark.parametrize("era_step", [0, -1, 1.5, True, "2", None])
def test_bad_era_step(tiny_v5_dir, era_step):
    with pytest.raises(DataError, match="era_step.*integer >= 1"):
        load_data(tiny_v5_dir, era_step=era_step)


@pytest.mark.parametrize("dtype", ["float64", "int16", "banana", None])
def test_bad_dtype(tiny_v5_dir, dtype):
    with pytest.raises(DataError, match='dtype.*"int8".*"float32"'):
        load_data(tiny_v5_dir, dtype=dtype)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "csv"}, "unknown layout"),
        ({"n_trees": 3}, "unknown synthetic size"),
        ({"rows_per_era": 3}, "rows_per_era=3 is invalid"),
        ({"n_features": 2.5}, "n_features=2.5 is invalid"),
        ({"n_train_eras": True}, "n_train_eras=True is invalid"),
        ({"version": "latest"}, "not a v5 release"),
        ({"version": "v5.1"}, "not a v5 release"),
        ({"seed": -1}, "seed=-1 is invalid"),
        ({"seed": "0"}, "seed='0' is invalid"),
    ],
)
def test_bad_generator_input(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        make_synthetic_dataset(tmp_path, **{**TINY_SIZES, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_to_int8_bins_maps_the_2021_grid_and_rejects_other_values():
    from nbutils.data import to_int8_bins

    got = to_int8_bins(np.array([0.0, 0.25, 0.5, 0.75, 1.0, np.nan]), 4.0, "x.csv")
    np.testing.assert_array_equal(got, np.array([0, 1, 2, 3, 4, 2], dtype=np.int8))
    assert got.dtype == np.int8
    with pytest.raises(DataError, match="column 'f' has feature values off the 0, 0.25"):
        to_int8_bins(np.array([0.0, 0.3]), 4.0, "column 'f'")
    with pytest.raises(DataError, match="off the"):
        to_int8_bins(np.array([5.0]), 1.0, "v5 file")


def test_kept_eras_natural_order_on_arrow_columns_and_nulls():
    """kept_eras works on the Arrow column (no Python string a row): every ``step``-th era in
    natural order ("era2" before "era10"), across chunks; a null era is kept only when every row
    is (step 1; the whole-dataset checks then refuse it), and _strings keeps it missing."""
    import pyarrow as pa

    from nbutils.data.load import _strings, kept_eras

    labels = ["era10", "era2", None, "era1", "era2", "era10", "era3"]
    column = pa.chunked_array([labels[:3], labels[3:]])
    order = ["era1", "era2", "era3", "era10"]  # by hand
    for step in (1, 2, 3):
        kept = set(order[::step])
        expected = [step == 1 if v is None else v in kept for v in labels]
        np.testing.assert_array_equal(kept_eras(column, step), expected)
        np.testing.assert_array_equal(
            kept_eras(column.cast(pa.dictionary(pa.int8(), pa.string())), step), expected
        )
    got = _strings(column)
    assert got.dtype == string_dtype()
    assert [None if pd.isna(v) else v for v in got] == labels


def test_benchmark_models_lean_on_the_risky_features():
    """The benchmark models' coefficients are the ridge least squares of each target on the
    design (checked against numpy's lstsq on the design with the ridge as extra rows), then the
    risky features' columns, and only those, times ``example_risk_tilt``."""
    from nbutils.data.synthetic import (
        BENCHMARK_TARGETS,
        BenchmarkModels,
        SyntheticSizes,
        _centred,
        iter_split,
        make_plan,
    )

    plan = make_plan(SyntheticSizes(**TINY_SIZES), SyntheticModel(example_risk_tilt=2.5), seed=3)
    plain = BenchmarkModels(plan.design_columns())
    tilted = BenchmarkModels(plan.design_columns(), plan.design_tilt())
    blocks = list(iter_split(plan, "v5", "train"))
    for block in blocks:
        plain.add(block)
        tilted.add(block)
    x = np.vstack([b.design for b in blocks])
    y = np.column_stack(
        [np.concatenate([b.targets[t] for b in blocks]) for t in BENCHMARK_TARGETS.values()]
    )
    penalty = np.sqrt(1e-3 * len(x)) * np.eye(x.shape[1])
    penalty[0, 0] = np.sqrt(1e-9)
    reference = np.linalg.lstsq(
        np.vstack([x, penalty]), np.vstack([y, np.zeros((x.shape[1], y.shape[1]))]), rcond=None
    )[0]
    np.testing.assert_allclose(plain.coef(), reference, rtol=1e-6, atol=1e-9)
    ratio = tilted.coef() / plain.coef()
    n_lin = len(plan.lin[: plan.model.example_features])
    risky = slice(1 + n_lin, 1 + n_lin + len(plan.risk[: plan.model.example_features]))
    np.testing.assert_allclose(ratio[risky], 2.5)
    np.testing.assert_allclose(np.delete(ratio, np.r_[risky], axis=0), 1.0)
    # those columns are the risky features' centred bins
    block = blocks[0]
    np.testing.assert_array_equal(
        block.design[:, risky].T, _centred(block.cols, plan.risk[: plan.model.example_features])
    )


def test_benchmark_models_score_positively(medium):
    """The ender20 model is fitted to target and, like the example predictions, scores positively
    on validation (on the medium data: the tiny data's 6 eras of 60 rows are too few for the
    risky, tilted benchmark models)."""
    scored = medium.validation[medium.validation["target"].notna()]
    cols = ["v53_lgbm_ender20", EXAMPLE_BENCHMARK]
    frame = scored[["era", "target"]].join(medium.benchmark_models["validation"][cols])
    per_era = frame.groupby("era")[[*cols, "target"]].apply(
        lambda d: numerai_corr(d[cols], d["target"])
    )
    assert (per_era.mean() > 0).all(), per_era.mean()


def test_loaded_era_groups_like_plain_strings(tiny_v5_dir):
    """era and data_type as load_data gives them group, filter and compare exactly like plain
    Python strings (object dtype), with no warning, after era_step and a filter: no empty group
    for an era the frame no longer has (the Categorical pitfall of pandas 2's observed=False).
    Run under pandas 2.2 and 3 (the lowest-versions job)."""
    import warnings

    from nbutils.eras import drop_embargo, era_number
    from nbutils.metrics import per_era_corr

    data = load_data(tiny_v5_dir, era_step=2)
    train = data.train[data.train["target"].notna()]
    last = max(train["era"].unique(), key=era_number)
    valid = drop_embargo(data.validation, last, 2)
    valid = valid[valid["target"].notna()]
    for frame in (train, valid, train[train["era"] != train["era"].iloc[0]]):
        plain = frame.assign(
            era=frame["era"].astype(object), data_type=frame["data_type"].astype(object)
        )
        assert plain["era"].dtype == object
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = frame.groupby("era")[["target", data.features[0]]].mean()
            ref = plain.groupby("era")[["target", data.features[0]]].mean()
            got_kind = frame.groupby("data_type").size()
            ref_kind = plain.groupby("data_type").size()
            got_corr = per_era_corr(frame, pred_col=data.features[0])
            ref_corr = per_era_corr(plain, pred_col=data.features[0])
        assert got.index.tolist() == ref.index.tolist() == sorted(set(plain["era"]))
        np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())
        assert got_kind.to_dict() == ref_kind.to_dict()
        assert got_corr.index.tolist() == ref_corr.index.tolist()
        np.testing.assert_array_equal(got_corr.to_numpy(), ref_corr.to_numpy())
        assert not got_corr.isna().any()
        assert frame["era"].nunique() == plain["era"].nunique() == len(got)
        assert (frame["era"] == frame["era"].iloc[0]).dtype == bool  # a numpy mask, as strings
        assert all(type(e) is str for e in frame["era"].unique())


def test_benchmark_frames_share_their_splits_ids(v5, tiny_v5_dir, tmp_path):
    """A benchmark file whose ids are its split's (validation, live) or one run of them (train's
    later eras) shares the split's index; other ids (reordered, or not in the split) get their
    own index. The frames equal pandas' reading of the files either way."""
    from nbutils.data.load import _read_benchmarks

    for split in ("train", "validation", "live"):
        path = tiny_v5_dir / f"{split}_benchmark_models.parquet"
        bench = v5.benchmark_models[split]
        reference = pd.read_parquet(path)  # id is the index (pandas metadata)
        assert bench.index.tolist() == reference.index.tolist()
        np.testing.assert_array_equal(bench.drop(columns="era"), reference.drop(columns="era"))
        own = getattr(v5, split).index
        start = own.get_loc(bench.index[0])
        assert np.shares_memory(
            fixed_width_bytes(bench.index), fixed_width_bytes(own[start : start + len(bench)])
        )
        reordered = reference.iloc[::-1].reset_index()
        reordered.to_parquet(tmp_path / "reordered.parquet", index=False)
        other = _read_benchmarks(tmp_path / "reordered.parquet", own)
        assert other.index.tolist() == reordered["id"].tolist()
        assert not np.shares_memory(fixed_width_bytes(other.index), fixed_width_bytes(own))
        pd.testing.assert_frame_equal(other.iloc[::-1], bench, check_index_type=False)


@pytest.mark.parametrize("step", [2, 3])
def test_train_benchmarks_keep_only_the_kept_eras(v5, tiny_v5_dir, step):
    """With ``era_step`` > 1 train's benchmark frame holds the rows of the training eras kept, no
    other (it held the whole file before), equal to pandas' reading of the file filtered, and
    shares the train split's ids; validation's and live's are whole."""
    sub = load_data(tiny_v5_dir, era_step=step)
    bench = sub.benchmark_models["train"]
    reference = pd.read_parquet(tiny_v5_dir / "train_benchmark_models.parquet")
    kept = reference[reference["era"].isin(set(sub.train["era"]))]
    assert 0 < len(kept) < len(reference)
    assert set(bench["era"]) == set(kept["era"]) <= set(sub.train["era"])
    assert bench.index.tolist() == kept.index.tolist()
    np.testing.assert_array_equal(bench.drop(columns="era"), kept.drop(columns="era"))
    own = sub.train.index
    start = own.get_loc(bench.index[0])
    assert np.shares_memory(
        fixed_width_bytes(bench.index), fixed_width_bytes(own[start : start + len(bench)])
    )
    for split in ("validation", "live"):
        pd.testing.assert_frame_equal(sub.benchmark_models[split], v5.benchmark_models[split])


def test_the_train_footer_is_parsed_once(tiny_v5_dir, monkeypatch):
    """load_data opens train.parquet once (it opened it twice: its footer, 436 MiB parsed at
    2,376 features, was read two times)."""
    import nbutils.data.load as load_module

    opened: list[str] = []
    real = load_module.pq.ParquetFile

    def counting(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(load_module.pq, "ParquetFile", counting)
    load_data(tiny_v5_dir, era_step=2)
    assert opened.count("train.parquet") == 1
    assert opened.count("validation.parquet") == 1
