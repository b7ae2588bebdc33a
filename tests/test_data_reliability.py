"""nbutils.data, issue 13: synthetic directories that never mix (item 3) and load_data refusing
malformed files with a DataError that names the file, the column and the fix (item 6).

References are independent of nbutils: pyarrow and pandas read and damage the files, hashlib
compares their bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nbutils.data.write as write_module
from nbutils.data import (
    AUX_TARGETS,
    SYNTHETIC_MARKER,
    TINY_SIZES,
    SyntheticModel,
    load_data,
    make_synthetic_dataset,
)
from nbutils.errors import DataError


def _files(directory) -> dict[str, tuple[str, int, int]]:
    """Each file's SHA-256, inode and modification time (ns)."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


# --------------------------------------------------------------------------------------------
# the synthetic data directory depends on seed, sizes, layout (and the model's knobs)
# --------------------------------------------------------------------------------------------


def test_directory_depends_on_every_input(tmp_path):
    root = tmp_path / "data"
    small = {**TINY_SIZES, "n_train_eras": 10}
    made = {
        "seed 0": make_synthetic_dataset(root, seed=0, **TINY_SIZES),
        "seed 1": make_synthetic_dataset(root, seed=1, **TINY_SIZES),
        "sizes": make_synthetic_dataset(root, seed=0, **small),
        "legacy": make_synthetic_dataset(root, layout="legacy", seed=0, **TINY_SIZES),
        "model": make_synthetic_dataset(
            root, seed=0, model=SyntheticModel(noise=4.0), **TINY_SIZES
        ),
    }
    assert len({p.parent for p in made.values()}) == len(made)
    assert made["seed 0"].name == made["seed 1"].name == "v5.3"
    # the same inputs give the same path
    assert make_synthetic_dataset(root, seed=1, **TINY_SIZES) == made["seed 1"]
    assert make_synthetic_dataset(tmp_path / "data", seed=0, **small) == made["sizes"]


def test_a_second_seed_does_not_change_what_the_first_run_reads(tmp_path):
    """Issue 13 item 3: a seed-1 chain beside a seed-0 chain must not change the seed-0 data."""
    root = tmp_path / "data"
    first = make_synthetic_dataset(root, seed=0, **TINY_SIZES)
    before = load_data(first)
    make_synthetic_dataset(root, seed=1, **TINY_SIZES)
    make_synthetic_dataset(root, seed=0, **{**TINY_SIZES, "rows_per_era": 80})
    after = load_data(first)
    pd.testing.assert_frame_equal(after.train, before.train)
    pd.testing.assert_frame_equal(after.validation, before.validation)


def test_a_complete_directory_is_not_written_again(tmp_path, monkeypatch):
    out = make_synthetic_dataset(tmp_path, seed=3, **TINY_SIZES)
    first = _files(out)
    marker = json.loads((out / SYNTHETIC_MARKER).read_text())
    assert marker["inputs"]["seed"] == 3 and marker["inputs"]["sizes"]["rows_per_era"] == 60
    for name, (sha, _, _) in first.items():
        if name != SYNTHETIC_MARKER:
            assert marker["files"][name]["sha256"] == sha

    def no_write(*args, **kwargs):
        raise AssertionError("a complete dataset was written again")

    monkeypatch.setattr(write_module, "_write_v5", no_write)
    assert make_synthetic_dataset(tmp_path, seed=3, **TINY_SIZES) == out
    assert _files(out) == first  # same bytes, same inodes, same times


@pytest.mark.parametrize(
    "damage",
    [
        lambda out: (out / "train.parquet").unlink(),
        lambda out: (out / "live.parquet").write_bytes(b"PAR1 cut"),
        lambda out: (out / SYNTHETIC_MARKER).unlink(),  # a build that died before its marker
        lambda out: (out / SYNTHETIC_MARKER).write_text('{"inputs": {"seed": 9}, "files": {}}'),
        lambda out: (out / SYNTHETIC_MARKER).write_text("{not json"),
    ],
)
def test_an_incomplete_directory_is_rebuilt_byte_identical(tmp_path, damage):
    out = make_synthetic_dataset(tmp_path, seed=0, **TINY_SIZES)
    reference = {name: sha for name, (sha, _, _) in _files(out).items()}
    damage(out)
    assert make_synthetic_dataset(tmp_path, seed=0, **TINY_SIZES) == out
    assert {name: sha for name, (sha, _, _) in _files(out).items()} == reference


def test_legacy_round_is_part_of_the_directory(tmp_path):
    a = make_synthetic_dataset(tmp_path, layout="legacy", round=280, **TINY_SIZES)
    b = make_synthetic_dataset(tmp_path, layout="legacy", round=281, **TINY_SIZES)
    assert (a.name, b.name) == ("numerai_dataset_280", "numerai_dataset_281")
    assert a.parent != b.parent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "noisy"}, "model='noisy' is invalid.*SyntheticModel"),
        ({"layout": "legacy", "round": -1}, "round=-1 is invalid"),
        ({"layout": "legacy", "round": "280"}, "round='280' is invalid"),
        ({"version": 5}, "version=5 is not a v5 release"),
    ],
)
def test_bad_directory_inputs(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        make_synthetic_dataset(tmp_path, **{**TINY_SIZES, **kwargs})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# load_data refuses malformed values, types and metadata
# --------------------------------------------------------------------------------------------


@pytest.fixture
def v5_copy(tiny_v5_dir, tmp_path):
    """A copy of the tiny v5 dataset that a test may damage."""
    return shutil.copytree(tiny_v5_dir, tmp_path / tiny_v5_dir.name)


def _first_feature(directory) -> str:
    return json.loads((directory / "features.json").read_text())["feature_sets"]["all"][0]


def _replace_column(path, name: str, values: pa.Array) -> None:
    """Rewrite one column of a parquet file with pyarrow (pandas metadata kept)."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(name)
    table = table.set_column(index, pa.field(name, values.type), values)
    pq.write_table(table, path)


def _column_with(path, name: str, row: int, value, type_: pa.DataType) -> pa.Array:
    values = pq.read_table(path, columns=[name]).column(0).to_pylist()
    values[row] = value
    return pa.array(values, type_)


@pytest.mark.parametrize(
    ("value", "type_", "shown"),
    [
        (9, pa.int8(), "9"),
        (-1, pa.int8(), "-1"),
        (300, pa.int64(), "300"),  # int8 would wrap it to 44
        (5, pa.uint16(), "5"),
    ],
)
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_integer_features_outside_0_to_4(v5_copy, value, type_, shown, dtype):
    name = _first_feature(v5_copy)
    path = v5_copy / "validation.parquet"
    _replace_column(path, name, _column_with(path, name, 3, value, type_))
    with pytest.raises(DataError, match=rf"validation.parquet, column '{name}'.*0\.\.4.*{shown}"):
        load_data(v5_copy, dtype=dtype)


def test_wider_integers_inside_0_to_4_load(v5_copy):
    name = _first_feature(v5_copy)
    path = v5_copy / "train.parquet"
    original = pq.read_table(path, columns=[name]).column(0).to_numpy()
    _replace_column(path, name, pa.array(original.astype(np.int64)))
    data = load_data(v5_copy)
    assert data.train[name].dtype == np.int8
    np.testing.assert_array_equal(data.train[name].to_numpy(), original)


@pytest.mark.parametrize("column", ["feature", "target"])
def test_string_columns_are_refused(v5_copy, column):
    name = _first_feature(v5_copy) if column == "feature" else AUX_TARGETS[0]
    path = v5_copy / "train.parquet"
    values = pq.read_table(path, columns=[name]).column(0).to_pylist()
    _replace_column(path, name, pa.array([str(v) for v in values], pa.string()))
    with pytest.raises(
        DataError, match=rf"train.parquet: {column} column.*{name} \(string\).*not numbers"
    ):
        load_data(v5_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: meta["feature_sets"].update(all=5), r"feature set\(s\) \['all'\].*not lists"),
        (lambda meta: meta["feature_sets"].update(small=[1, 2]), r"\['small'\].*not lists"),
        (lambda meta: meta.update(feature_sets=["a"]), "no 'feature_sets'"),
        (lambda meta: meta.update(targets="target"), '"targets" is not a list'),
    ],
)
def test_features_json_with_wrong_types(v5_copy, change, message):
    path = v5_copy / "features.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"features.json.*{message}.*download"):
        load_data(v5_copy)


def test_train_without_target_is_refused_unless_other_targets_are_asked(v5_copy):
    path = v5_copy / "train.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["target"]), path)
    with pytest.raises(DataError, match="train.parquet has no column 'target'.*targets="):
        load_data(v5_copy)
    data = load_data(v5_copy, targets=list(AUX_TARGETS))
    assert data.targets == list(AUX_TARGETS)
    assert "target" not in data.train.columns


def test_legacy_train_without_target_is_refused(tiny_legacy_dir, tmp_path):
    legacy_copy = shutil.copytree(tiny_legacy_dir, tmp_path / tiny_legacy_dir.name)
    path = legacy_copy / "numerai_training_data.csv"
    pd.read_csv(path).drop(columns=["target"]).to_csv(path, index=False)
    with pytest.raises(DataError, match="numerai_training_data.csv has no column 'target'"):
        load_data(legacy_copy)


@pytest.mark.parametrize("targets", [[], [""], [3]])
def test_bad_targets(tiny_v5_dir, targets):
    with pytest.raises(DataError, match="targets=.* is invalid"):
        load_data(tiny_v5_dir, targets=targets)


# --------------------------------------------------------------------------------------------
# issue 21: data accepted without a word is refused as a whole (nbutils.data.validate)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def legacy_copy(tiny_legacy_dir, tmp_path):
    return shutil.copytree(tiny_legacy_dir, tmp_path / tiny_legacy_dir.name)


def test_a_tournament_csv_cut_at_a_line_boundary_is_refused(legacy_copy):
    """259 of 360 validation rows and none of the test/live rows, as a cut download leaves it."""
    path = legacy_copy / "numerai_tournament_data.csv"
    lines = path.read_text().splitlines(keepends=True)
    types = [line.split(",")[2] for line in lines[1:]]
    assert types.count("validation") == 360 and types.index("test") == 360  # validation first
    path.write_text("".join(lines[: 1 + 259]))
    with pytest.raises(
        DataError, match=r"numerai_tournament_data.csv holds no live rows \(.*cut\).*Download"
    ):
        load_data(legacy_copy)


def test_a_training_csv_with_only_its_header_is_refused(legacy_copy):
    path = legacy_copy / "numerai_training_data.csv"
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    with pytest.raises(DataError, match="numerai_training_data.csv holds no train rows"):
        load_data(legacy_copy)


def test_an_empty_live_parquet_is_refused(v5_copy):
    path = v5_copy / "live.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(DataError, match="live.parquet holds no live rows"):
        load_data(v5_copy)


@pytest.mark.parametrize("scale", [10.0, -1.0])
def test_targets_outside_0_1_are_refused(v5_copy, scale):
    path = v5_copy / "train.parquet"
    values = pq.read_table(path, columns=["target"]).column(0).to_numpy(zero_copy_only=False)
    _replace_column(path, "target", pa.array(values * scale))
    with pytest.raises(DataError, match=r"train.parquet, column 'target'.*outside \[0, 1\]"):
        load_data(v5_copy)


def test_targets_in_0_1_with_nan_load(v5_copy):
    path = v5_copy / "validation.parquet"
    values = pq.read_table(path, columns=["target"]).column(0).to_pylist()
    unknown = sum(v is None for v in values)  # the test eras at the end have no target yet
    assert unknown > 0 and all(v is not None for v in values[:10])
    values[:10] = [None] * 10  # ten more unknown targets
    _replace_column(path, "target", pa.array(values, pa.float64()))
    assert load_data(v5_copy).validation["target"].isna().sum() == unknown + 10


def test_an_empty_feature_set_is_refused(v5_copy):
    path = v5_copy / "features.json"
    meta = json.loads(path.read_text())
    meta["feature_sets"]["all"] = []
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="features.json: the chosen feature set holds no feature"):
        load_data(v5_copy)


def test_duplicated_ids_are_refused(v5_copy):
    path = v5_copy / "validation.parquet"
    ids = pq.read_table(path, columns=["id"]).column(0).to_pylist()
    _replace_column(path, "id", pa.array([ids[0], ids[0], *ids[2:]], pa.string()))
    with pytest.raises(
        DataError, match=rf"validation.parquet: 1 duplicated validation id\(s\), e.g. '{ids[0]}'"
    ):
        load_data(v5_copy)


def test_ids_shared_by_two_splits_are_refused(v5_copy):
    validation_id = pq.read_table(v5_copy / "validation.parquet", columns=["id"])[0][0].as_py()
    path = v5_copy / "live.parquet"
    ids = pq.read_table(path, columns=["id"]).column(0).to_pylist()
    _replace_column(path, "id", pa.array([validation_id, *ids[1:]], pa.string()))
    with pytest.raises(DataError, match=r"live.parquet: 1 live id\(s\) are also validation ids"):
        load_data(v5_copy)


def test_id_uniqueness_check_equals_pandas():
    """The bytes-sort check of check_loaded says what pandas' Index.is_unique says: unique ids,
    a duplicate within a split or across two (also in a later chunk), and the cases it hands to
    pandas (ids of different lengths, a missing id, object or empty indexes)."""
    from nbutils.data.validate import _all_unique, fixed_width_bytes
    from nbutils.util import string_dtype

    def frame(ids, dtype=None):
        array = pa.chunked_array([ids[: len(ids) // 2], ids[len(ids) // 2 :]], pa.large_string())
        values = pd.array(array, dtype=string_dtype()) if dtype is None else pd.array(ids, dtype)
        return pd.DataFrame(index=pd.Index(values, name="id"))

    rng = np.random.default_rng(0)
    ids = [f"n{x:015x}" for x in rng.choice(2**40, 300, replace=False)]
    cases = [
        [ids[:100], ids[100:200], ids[200:]],
        [ids[:100], [*ids[100:199], ids[150]], ids[200:]],  # twice in validation's 2nd chunk
        [ids[:100], ids[100:200], [ids[5], *ids[201:]]],  # a train id again in live
        [ids[:100], ids[100:200], ["short", *ids[201:]]],  # another length: pandas decides
        [ids[:100], ids[100:200], ["short", "short"]],
        [ids[:100], [], ids[200:]],
    ]
    for case in cases:
        frames = [frame(c) for c in case]
        expected = frames[0].index.append([f.index for f in frames[1:]]).is_unique
        assert _all_unique(frames) == expected
        assert _all_unique([frame(c, object) for c in case]) == expected
    assert [_all_unique([frame(c) for c in case]) for case in cases] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    with_null = pd.DataFrame(index=pd.Index(pd.array([ids[0], None], dtype=string_dtype())))
    assert fixed_width_bytes(with_null.index) is None
    assert fixed_width_bytes(frame(ids[:4]).index).tolist() == [i.encode() for i in ids[:4]]
    empty_first = pa.chunked_array([[], ids[:3]], pa.large_string())
    index = pd.Index(pd.array(empty_first, dtype=string_dtype()))
    assert fixed_width_bytes(index).tolist() == [i.encode() for i in ids[:3]]


def test_a_split_file_without_data_type_gets_its_split_name(v5_copy):
    """A v5 file with no data_type column: the split's name fills it, in the same Arrow-backed
    string dtype as a column read from the file."""
    from nbutils.util import string_dtype

    path = v5_copy / "live.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["data_type"]), path)
    data = load_data(v5_copy)
    assert data.live["data_type"].dtype == data.train["data_type"].dtype == string_dtype()
    assert data.live["data_type"].tolist() == ["live"] * table.num_rows
    assert data.live.index.tolist() == table.column("id").to_pylist()


def test_null_eras_are_refused(v5_copy):
    path = v5_copy / "train.parquet"
    _replace_column(path, "era", _column_with(path, "era", 5, None, pa.string()))
    with pytest.raises(DataError, match=r"train.parquet: 1 train row\(s\) without an era"):
        load_data(v5_copy)


def test_example_predictions_are_read_by_their_column_name(v5_copy, legacy_copy):
    """Another column first (an older benchmark, say) never becomes the example predictions."""
    path = v5_copy / "validation_example_preds.parquet"
    frame = pd.read_parquet(path)
    expected = frame["prediction"].copy()
    frame.insert(0, "other", 1.0 - frame["prediction"])
    frame.to_parquet(path)
    got = load_data(v5_copy).example_predictions.reindex(expected.index)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    csv = legacy_copy / "example_predictions.csv"
    table = pd.read_csv(csv)
    table.insert(1, "other", 0.5)
    table.to_csv(csv, index=False)
    loaded = load_data(legacy_copy).example_predictions
    np.testing.assert_array_equal(loaded.to_numpy(), table["prediction"].to_numpy())


def test_the_daily_round_reads_example_predictions_by_name(tmp_path):
    from nbutils.daily.errors import DailyError
    from nbutils.daily.submit import read_example_predictions

    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "other": [0.9, 0.1, 0.5], "prediction": [0.25, 0.5, 0.75]}
    )
    frame.to_parquet(tmp_path / "live_example_preds.parquet", index=False)
    got = read_example_predictions(tmp_path / "live_example_preds.parquet")
    assert got.name == "prediction" and got.to_dict() == {"a": 0.25, "b": 0.5, "c": 0.75}
    frame.drop(columns="prediction").to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DailyError, match=r"bad.parquet has no column 'prediction'"):
        read_example_predictions(tmp_path / "bad.parquet")


def test_targets_load_as_float64_whatever_the_file_stores(v5_copy):
    """float32 and float64 target columns both load as float64 with their values: a learner's
    plain pandas on float32 targets ran in float32 and drifted 4e-9 from numerai-tools (notebook
    04's hand-computed numerai corr failed at Numerai's shape)."""
    path = v5_copy / "train.parquet"
    stored = pq.read_table(path, columns=["target"]).column(0)
    assert stored.type == pa.float32()  # as Numerai stores them
    other = pq.read_table(path, columns=[AUX_TARGETS[0]]).column(0).to_pylist()
    other[5] = 0.1  # not a float32: float32(0.1) != 0.1
    _replace_column(path, AUX_TARGETS[0], pa.array(other, pa.float64()))
    train = load_data(v5_copy).train
    for name in ("target", AUX_TARGETS[0], AUX_TARGETS[1]):
        assert train[name].dtype == np.float64, name
    np.testing.assert_array_equal(train["target"].to_numpy(), stored.to_numpy().astype(np.float64))
    assert train[AUX_TARGETS[0]].iloc[5] == 0.1
    np.testing.assert_array_equal(train[AUX_TARGETS[0]].to_numpy(), np.array(other, dtype=float))


def test_target_values_keeps_nan_and_values():
    from nbutils.data.load import target_values

    quarters = np.array([0, 0.25, 0.5, np.nan, 1.0], dtype=np.float32)
    widened = target_values(quarters)
    assert widened.dtype == np.float64
    np.testing.assert_array_equal(widened, quarters.astype(np.float64))
    assert target_values(np.array([0, 1, 4], dtype=np.int64)).dtype == np.float64


def test_loaded_targets_are_writable(v5_copy):
    """The targets are the loader's own arrays, not Arrow's read-only views (pandas 2, without
    copy-on-write, refuses to write into a read-only column): a value can be changed."""
    from nbutils.data.load import target_values

    view = pa.chunked_array([pa.array(np.array([0.25, 0.5], dtype=np.float32))]).to_numpy()
    assert not view.flags.writeable
    assert target_values(view).flags.writeable
    train = load_data(v5_copy).train
    train.iloc[0, train.columns.get_loc("target")] = 0.5
    assert train["target"].iloc[0] == 0.5
