"""Loading a dataset of either layout (tutorial step 2A, ``pd.read_csv`` made lean): :func:`load_data`.

Both layouts go through the same steps, in this order:

1. find the dataset and its files (:func:`~nbutils.data.layout.locate_dataset`);
2. list its feature sets and targets (v5: ``features.json`` and the train file's schema; legacy:
   the training CSV's header) and resolve ``feature_set`` and ``targets``;
3. read train, validation and live: only the needed columns, features streamed into one
   preallocated array per split and converted to the loaded dtype (:func:`to_int8_bins`);
4. assemble the :class:`~nbutils.data.layout.NumeraiData` (:func:`_assemble`).

Every value is checked where it enters: integer features must be bins 0..4, float features on
the 0, 0.25, ..., 1 grid (int8), feature and target columns numeric, and ``target`` present unless
other targets were asked for; each failure is a :class:`~nbutils.errors.DataError` naming the file,
the column and the fix.

Size: about 600 lines, on purpose in one module: the two layouts' readers share steps 2 to 4
and their checks, and a split by layout would put the shared assembly in a third module that
both import back (the layouts' file names are already apart, in :mod:`nbutils.data.layout`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nbutils.checks import require_columns
from nbutils.data.layout import (
    BENCHMARK_SPLITS,
    GROUPS,
    LEGACY_FILES,
    MAIN_TARGET,
    META_MODEL_COL,
    PREDICTION_COL,
    V5_FILES,
    V5_GROUP_SETS,
    DatasetDir,
    NumeraiData,
    check_era_step,
    check_features_json,
    corrupt,
    legacy_feature_sets,
    locate_dataset,
    missing_file,
)
from nbutils.data.validate import check_loaded, fixed_width_bytes
from nbutils.data.values import empty_values, to_feature_values
from nbutils.errors import DataError
from nbutils.util import natural_sorted, read_json, release_memory, string_dtype

# --------------------------------------------------------------------------------------------
# Choosing features and targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What :func:`load_data` was asked for (``era_step`` and ``dtype`` checked)."""

    feature_set: str | Sequence[str] | None
    targets: str | Sequence[str] | None
    era_step: int
    dtype: np.dtype


def _check_dtype(dtype: object) -> np.dtype:
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.int8), np.dtype(np.float32)):
        raise DataError(f'dtype={dtype!r} is not supported: use "int8" (default) or "float32"')
    return resolved


def _require_columns(path: Path, names: Sequence[str], wanted: Sequence[str]) -> None:
    require_columns(
        names,
        wanted,
        "column(s)",
        source=str(path),
        hint="check feature_set and targets, or download or rebuild the file.",
        error=DataError,
    )


def read_features_json(path: Path) -> dict[str, Any]:
    """A v5 ``features.json``, parsed and checked (:func:`~nbutils.data.layout.check_features_json`)."""
    if not path.exists():
        raise missing_file(path, "feature metadata")
    try:
        meta = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise corrupt(path, err) from err
    return check_features_json(meta, path)


def _resolve_feature_set(
    feature_set: str | Sequence[str] | None, sets: dict[str, list[str]], source: Path
) -> list[str]:
    """The feature columns that ``feature_set`` names: a set name, a list of columns, or all."""
    if feature_set is None:
        return list(sets["all"])
    if isinstance(feature_set, str):
        if feature_set not in sets:
            raise DataError(
                f"unknown feature set {feature_set!r} in {source}: choose one of {sorted(sets)} "
                "or pass a list of feature columns"
            )
        return list(sets[feature_set])
    chosen = list(feature_set)
    if not chosen or not all(isinstance(c, str) for c in chosen):
        raise DataError(
            "feature_set must be a set name or a non-empty list of feature column names"
        )
    return chosen


def _resolve_targets(
    targets: str | Sequence[str] | None, available: Sequence[str], train: Path
) -> list[str]:
    """``None``: every target the dataset offers, which must include ``target`` (first); else
    the names asked for (``target`` first when among them)."""
    if targets is None:
        if MAIN_TARGET not in available:
            raise DataError(
                f"{train} has no column {MAIN_TARGET!r}, which training and scoring use: download "
                f"or rebuild the file, or pass targets=[...] naming the targets to load "
                f"(the file offers {list(available)[:10]})"
            )
        names = list(available)
    elif isinstance(targets, str):
        names = [targets]
    else:
        names = list(targets)
    if not names or not all(isinstance(t, str) and t for t in names):
        raise DataError(
            f"targets={targets!r} is invalid: give target column names, or None for every target"
        )
    if MAIN_TARGET in names:
        names.remove(MAIN_TARGET)
        names.insert(0, MAIN_TARGET)
    return names


def _groups_of(
    sets: dict[str, list[str]], features: list[str], group_names: Sequence[str]
) -> dict[str, list[str]]:
    """Each group's members among the loaded features (groups with none are left out)."""
    chosen = set(features)
    out = {}
    for group in group_names:
        if group in sets:
            members = [f for f in sets[group] if f in chosen]
            if members:
                out[group] = members
    return out


def kept_eras(eras: pa.ChunkedArray | pa.Array, era_step: int) -> np.ndarray:
    """Boolean mask of the rows whose era is one of every ``era_step``-th era in natural order.

    Computed on the Arrow column (its distinct values, then ``is_in``): no Python string per
    row. A null era is never kept with ``era_step > 1`` (with 1 every row is kept, and the
    whole-dataset checks refuse the null era).
    """
    if era_step == 1:
        return np.ones(len(eras), dtype=bool)
    if pa.types.is_dictionary(eras.type):
        eras = eras.cast(eras.type.value_type)
    labels = natural_sorted(v for v in pc.unique(eras).to_pylist() if v is not None)
    kept = pa.array(labels[::era_step], type=eras.type)
    return pc.is_in(eras, value_set=kept).to_numpy(zero_copy_only=False)


def _column_numpy(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def _strings(column: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
    """A string column in pandas' Arrow-backed string dtype (:func:`~nbutils.util.string_dtype`):
    a few bytes a row in Arrow buffers, no Python string per row."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pd.array(column.cast(pa.large_string()), dtype=string_dtype())


#: Reads one metadata column (id, era, data_type or a target) of a split's kept rows; None when
#: the file has no such column.
ColumnReader = Callable[[str], "pa.ChunkedArray | None"]


def _table_columns(table: pa.Table) -> ColumnReader:
    """A :data:`ColumnReader` over a table already in memory."""
    return lambda name: table.column(name) if name in table.column_names else None


def target_values(values: np.ndarray) -> np.ndarray:
    """One target column as loaded: float64, NaN kept, the loader's own (writable) array.

    Numerai's files store the targets as float32 (0, 0.25, ..., 1 and NaN). They are loaded as
    float64 although float32 holds them exactly: a learner's plain pandas on float32 targets
    (``target - target.mean()``, powers) runs in float32 and drifts from numerai-tools' float64
    by about 4e-9 relative on 5,000-row eras, which notebook 04's hand computation of the
    numerai corr refused at Numerai's shape (docs/design-decisions.md). 100 MiB more at
    2.9M rows x 9 targets.
    """
    return values.astype(np.float64)  # a copy: Arrow's zero-copy view is read-only


def _frame(
    column: ColumnReader,
    values: np.ndarray,
    features: list[str],
    targets: list[str],
    data_type: str,
) -> pd.DataFrame:
    """id index, era and data_type (Arrow-backed strings, :func:`_strings`), features (one block,
    no copy), targets (:func:`target_values`: float64; NaN for a target the file does not
    have).

    Columns are read one at a time from ``column``, so that at most one of them is held as Arrow
    data next to the frame. ``data_type`` fills that column when the file has none.
    """
    frame = pd.DataFrame(
        values, index=pd.Index(_strings(column("id")), name="id"), columns=features, copy=False
    )
    kinds = column("data_type")
    if kinds is None:
        kinds = pa.repeat(pa.scalar(data_type, pa.large_string()), len(frame))
    frame.insert(0, "data_type", _strings(kinds))
    frame.insert(0, "era", _strings(column("era")))
    for name in targets:
        values_t = column(name)
        frame[name] = (
            np.full(len(frame), np.nan, dtype=np.float64)
            if values_t is None
            else target_values(values_t.to_numpy())
        )
    return frame


# --------------------------------------------------------------------------------------------
# parquet (v5)
# --------------------------------------------------------------------------------------------


def _open_parquet(path: Path, what: str) -> pq.ParquetFile:
    if not path.exists():
        raise missing_file(path, what)
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err


def _check_numeric(path: Path, schema: pa.Schema, columns: Sequence[str], what: str) -> None:
    """Raise :class:`DataError` naming the columns of ``columns`` that are not numbers."""
    bad = [
        f"{c} ({schema.field(c).type})"
        for c in columns
        if not (
            pa.types.is_integer(schema.field(c).type) or pa.types.is_floating(schema.field(c).type)
        )
    ]
    if bad:
        raise DataError(
            f"{path}: {what} column(s) {bad[:5]} are not numbers. Features must be integer bins "
            "0..4 or floats, targets floats: the file is damaged or not Numerai data; download "
            "it again or rebuild the dataset"
        )


#: Bytes of decoded feature values one parquet read may hold (columns of one row group).
PARQUET_READ_BUDGET = 64 << 20


def columns_per_read(rows: int) -> int:
    """Columns of a ``rows``-row group that fit :data:`PARQUET_READ_BUDGET` at 8 bytes a value."""
    return max(1, PARQUET_READ_BUDGET // max(8 * rows, 1))


def _fill_from_parquet(
    pf: pq.ParquetFile, features: list[str], keep: np.ndarray, values: np.ndarray, path: Path
) -> None:
    """Copy the kept rows of ``features`` into ``values``, one row group and column slice at a time.

    Each read holds at most about :data:`PARQUET_READ_BUDGET` bytes (8 bytes a value assumed), so
    peak memory stays near ``values`` itself whatever the file's row-group size; row groups
    without a kept row are not read at all.
    """
    file_row = out_row = 0
    for group in range(pf.num_row_groups):
        k = pf.metadata.row_group(group).num_rows
        sel = keep[file_row : file_row + k]
        m = int(sel.sum())
        step = columns_per_read(k)
        for start in range(0, len(features) if m else 0, step):
            names = features[start : start + step]
            table = pf.read_row_group(group, columns=names, use_threads=True)
            for j, name in enumerate(names):
                column = table.column(j).to_numpy()
                part = column if m == k else column[sel]
                values[out_row : out_row + m, start + j] = to_feature_values(
                    part, values.dtype, False, f"{path}, column {name!r},"
                )
            del table
        file_row += k
        out_row += m
    if file_row != len(keep):
        raise DataError(
            f"{path} has {file_row} rows of features but {len(keep)} ids: download or rebuild it"
        )


def _read_parquet_split(
    path: Path,
    what: str,
    features: list[str],
    targets: list[str],
    dtype: np.dtype,
    era_step: int = 1,
    targets_optional: bool = False,
    pf: pq.ParquetFile | None = None,
) -> pd.DataFrame:
    """One v5 split: only the columns asked for (column projection), rows of the kept eras;
    targets float64 (:func:`target_values`).

    Features stream row group by row group into one preallocated array, so peak memory is about
    the feature array itself plus one decoded slice. ``pf``: the file already opened (its footer
    is parsed once: at 2,376 features train's takes about 436 MiB).
    """
    if pf is None:
        pf = _open_parquet(path, what)
    schema = pf.schema_arrow
    names = set(schema.names)
    wanted = ["id", "era", *features]
    _require_columns(path, schema.names, wanted if targets_optional else [*wanted, *targets])
    present_targets = [t for t in targets if t in names]
    _check_numeric(path, schema, features, "feature")
    _check_numeric(path, schema, present_targets, "target")
    present = {"id", "era", *present_targets, *(["data_type"] if "data_type" in names else [])}
    try:
        keep = (
            np.ones(pf.metadata.num_rows, dtype=bool)
            if era_step == 1
            else kept_eras(pf.read(columns=["era"], use_threads=True).column("era"), era_step)
        )
        values = empty_values(int(keep.sum()), len(features), dtype)
        _fill_from_parquet(pf, features, keep, values, path)
        release_memory()
        mask = pa.array(keep) if era_step > 1 else None

        def column(name: str) -> pa.ChunkedArray | None:
            if name not in present:
                return None
            read = pf.read(columns=[name], use_threads=True).column(name)
            return read if mask is None else read.filter(mask)

        frame = _frame(column, values, features, targets, what)
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    release_memory()
    return frame


def _read_parquet_series(path: Path, what: str, column: str) -> pd.Series | None:
    """``column`` of a small parquet file as a Series by id; None when the file is absent."""
    if not path.exists():
        return None
    pf = _open_parquet(path, what)
    _require_columns(path, pf.schema_arrow.names, ["id", column])
    _check_numeric(path, pf.schema_arrow, [column], what)
    try:
        table = pf.read(columns=["id", column])
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    index = pd.Index(_strings(table.column("id")), name="id")
    return pd.Series(_column_numpy(table, column).astype(np.float64), index=index, name=column)


def _read_benchmarks(
    path: Path, split_ids: pd.Index | None = None, eras: pa.Array | None = None
) -> pd.DataFrame | None:
    """A ``<split>_benchmark_models.parquet`` by id: ``era`` (as in the splits' frames) and every
    model column (float64); None when the file is absent.

    Columns are read one at a time; with ``eras`` (train's kept eras when ``era_step`` > 1) only
    the rows of those eras are kept, each column filtered as it is read. When the kept ids are
    ``split_ids`` (its split's index) or one run of them, in the same order, the frame shares
    that index (an Index is immutable) instead of holding a second copy of the ids
    (:func:`_same_index`).
    """
    if not path.exists():
        return None
    pf = _open_parquet(path, "benchmark models")
    names = pf.schema_arrow.names
    _require_columns(path, names, ["id", "era"])
    models = [n for n in names if n not in ("id", "era", "data_type", "__index_level_0__")]
    if not models:
        raise DataError(
            f"{path} has no benchmark model column (only {names}): download the file again or "
            "rebuild the dataset"
        )
    _check_numeric(path, pf.schema_arrow, models, "benchmark model")
    try:
        era = pf.read(columns=["era"]).column("era")
        if pa.types.is_dictionary(era.type):
            era = era.cast(era.type.value_type)
        mask = None if eras is None else pc.is_in(era, value_set=eras.cast(era.type))

        def read(name: str) -> pa.ChunkedArray:
            column = pf.read(columns=[name]).column(name)
            return column if mask is None else column.filter(mask)

        ids = read("id")
        index = _same_index(ids, split_ids)
        if index is None:
            index = pd.Index(_strings(ids), name="id")
        del ids
        frame = pd.DataFrame(index=index)
        frame["era"] = _strings(era if mask is None else era.filter(mask))
        del era
        for m in models:
            frame[m] = read(m).to_numpy().astype(np.float64)
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    return frame


def _same_index(ids: pa.ChunkedArray, index: pd.Index | None) -> pd.Index | None:
    """The part of ``index`` that holds exactly ``ids``, in the same order and in one run (a train
    benchmark file covers train's later eras), else None. Compared as fixed-width bytes
    (:func:`~nbutils.data.validate.fixed_width_bytes`, no copy); a slice of an Arrow-backed
    Index shares its buffers."""
    if index is None or not 0 < len(ids) <= len(index):
        return None
    mine, theirs = fixed_width_bytes(ids), fixed_width_bytes(index)
    if mine is None or theirs is None or mine.dtype != theirs.dtype:
        return None
    starts = np.flatnonzero(theirs == mine[0])
    if len(starts) != 1 or starts[0] + len(mine) > len(theirs):
        return None
    start = int(starts[0])
    if not np.array_equal(theirs[start : start + len(mine)], mine):
        return None
    return index if len(mine) == len(index) else index[start : start + len(mine)]


def _add_benchmarks(data: NumeraiData, files: dict[str, Path], era_step: int = 1) -> None:
    """Each split's benchmark models (:func:`_read_benchmarks`) into ``data.benchmark_models``;
    with ``era_step`` > 1, train's only for the training eras kept."""
    for split in BENCHMARK_SPLITS:
        eras = None
        if split == "train" and era_step > 1:
            eras = pc.unique(pa.array(data.train["era"].array, type=pa.large_string()))
        frame = _read_benchmarks(
            files[f"{split}_benchmark_models"], getattr(data, split).index, eras
        )
        if frame is not None:
            data.benchmark_models[split] = frame
    release_memory()


def _load_v5(ds: DatasetDir, ask: Request) -> NumeraiData:
    files = {role: ds.path / name for role, name in V5_FILES.items()}
    meta = read_features_json(files["features"])
    train_file = _open_parquet(files["train"], "train")
    train_names = train_file.schema_arrow.names
    sets = {str(k): list(v) for k, v in meta["feature_sets"].items()}
    sets.setdefault("all", [c for c in train_names if c.startswith("feature_")])
    offered = [t for t in meta.get("targets", []) if t in train_names] or [
        c for c in train_names if c.startswith("target")
    ]
    features = _resolve_feature_set(ask.feature_set, sets, files["features"])
    target_list = _resolve_targets(ask.targets, offered, files["train"])
    train = _read_parquet_split(
        files["train"], "train", features, target_list, ask.dtype, ask.era_step, pf=train_file
    )
    del train_file  # its parsed footer is not kept while the other files are read
    frames = (
        train,
        _read_parquet_split(files["validation"], "validation", features, target_list, ask.dtype),
        _read_parquet_split(
            files["live"], "live", features, target_list, ask.dtype, targets_optional=True
        ),
    )
    examples = [
        _read_parquet_series(files[role], "example predictions", PREDICTION_COL)
        for role in ("validation_example_preds", "live_example_preds")
    ]
    found = [s for s in examples if s is not None]
    data = _assemble(
        ds,
        files,
        sets,
        features,
        target_list,
        frames,
        pd.concat(found) if found else None,
        _read_parquet_series(files["meta_model"], "meta model", META_MODEL_COL),
    )
    return data


# --------------------------------------------------------------------------------------------
# CSV (legacy)
# --------------------------------------------------------------------------------------------

#: CSV bytes parsed per block: small blocks bound the parser's memory (fewer in flight).
CSV_BLOCK = 4 << 20


def _csv_header(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise missing_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError) as err:
        raise corrupt(path, err) from err
    if not header or header == [""]:
        raise corrupt(path, ValueError("empty file, no header line"))
    return header


def _csv_options(columns: list[str], types: dict[str, pa.DataType]) -> dict[str, Any]:
    return {
        "read_options": pacsv.ReadOptions(block_size=CSV_BLOCK),
        "convert_options": pacsv.ConvertOptions(include_columns=columns, column_types=types),
    }


def _read_csv_meta(
    path: Path, header: list[str], targets: list[str], optional_targets: bool
) -> pa.Table:
    """Pass 1 over a legacy CSV: id, era, data_type and the targets (features are skipped)."""
    wanted = ["id", "era", "data_type"]
    _require_columns(path, header, wanted if optional_targets else [*wanted, *targets])
    columns = [*wanted, *[t for t in targets if t in header]]
    types = {"id": pa.string(), "era": pa.string(), "data_type": pa.string()}
    types.update({t: pa.float64() for t in targets})
    try:
        with pacsv.open_csv(path, **_csv_options(columns, types)) as reader:
            table = reader.read_all()
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    release_memory()
    return table


def _fill_features(
    batches: Iterator[pa.RecordBatch],
    targets: list[tuple[np.ndarray, np.ndarray]],
    n_rows: int,
    dtype: np.dtype,
    path: Path,
) -> None:
    """Copy streamed feature batches into preallocated arrays, one column at a time.

    ``targets`` pairs a boolean row mask over the file with the (rows, features) array that
    receives the masked rows, in file order. Only one batch is decoded at a time.
    """
    file_row = 0
    out_rows = [0] * len(targets)
    for batch in batches:
        k = batch.num_rows
        selections = [mask[file_row : file_row + k] for mask, _ in targets]
        counts = [int(sel.sum()) for sel in selections]
        for j, name in enumerate(batch.schema.names):
            column = batch.column(j).to_numpy(zero_copy_only=False)
            for t, ((_, out), sel, m) in enumerate(zip(targets, selections, counts, strict=True)):
                if m:
                    part = column if m == k else column[sel]
                    out[out_rows[t] : out_rows[t] + m, j] = to_feature_values(
                        part, dtype, True, f"{path}, column {name!r},"
                    )
        out_rows = [o + m for o, m in zip(out_rows, counts, strict=True)]
        file_row += k
    if file_row != n_rows:
        raise DataError(
            f"{path} changed while it was read ({file_row} rows of features, {n_rows} ids): read it again, "
            "or download or rebuild it"
        )


def _read_csv_features(
    path: Path,
    header: list[str],
    features: list[str],
    n_rows: int,
    dtype: np.dtype,
    masks: list[np.ndarray],
) -> list[np.ndarray]:
    """Pass 2: stream only the feature columns (float32, never a float64 frame) into arrays."""
    _require_columns(path, header, features)
    outputs = [empty_values(int(mask.sum()), len(features), dtype) for mask in masks]
    types = dict.fromkeys(features, pa.float32())
    try:
        with pacsv.open_csv(path, **_csv_options(features, types)) as reader:
            pairs = list(zip(masks, outputs, strict=True))
            _fill_features(iter(reader), pairs, n_rows, dtype, path)
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    release_memory()
    return outputs


def _legacy_frame(
    meta: pa.Table, mask: np.ndarray, values: np.ndarray, features: list[str], targets: list[str]
) -> pd.DataFrame:
    part = meta.filter(pa.array(mask))
    return _frame(_table_columns(part), values, features, targets, "")


def _read_legacy_examples(path: Path) -> pd.Series | None:
    if not path.exists():
        return None
    header = _csv_header(path, "example predictions")
    _require_columns(path, header, ["id", PREDICTION_COL])
    try:
        table = pacsv.read_csv(
            path,
            **_csv_options(
                ["id", PREDICTION_COL], {"id": pa.string(), PREDICTION_COL: pa.float64()}
            ),
        )
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from err
    index = pd.Index(_strings(table.column("id")), name="id")
    return pd.Series(_column_numpy(table, PREDICTION_COL), index=index, name=PREDICTION_COL)


def _load_legacy(ds: DatasetDir, ask: Request) -> NumeraiData:
    files = {role: ds.path / name for role, name in LEGACY_FILES.items()}
    header = _csv_header(files["train"], "training data")
    sets = legacy_feature_sets(header)
    offered = [c for c in header if c.startswith("target")]
    features = _resolve_feature_set(ask.feature_set, sets, files["train"])
    target_list = _resolve_targets(ask.targets, offered, files["train"])
    meta = _read_csv_meta(files["train"], header, target_list, optional_targets=False)
    keep = kept_eras(meta.column("era"), ask.era_step)
    (train_values,) = _read_csv_features(
        files["train"], header, features, meta.num_rows, ask.dtype, [keep]
    )
    train = _legacy_frame(meta, keep, train_values, features, target_list)
    del meta, train_values
    t_header = _csv_header(files["tournament"], "tournament data")
    t_meta = _read_csv_meta(files["tournament"], t_header, target_list, optional_targets=True)
    is_validation = pc.equal(t_meta.column("data_type"), "validation")
    is_validation = pc.fill_null(is_validation, False).to_numpy(zero_copy_only=False)
    masks = [is_validation, ~is_validation]
    values = _read_csv_features(
        files["tournament"], t_header, features, t_meta.num_rows, ask.dtype, masks
    )
    validation, live = (
        _legacy_frame(t_meta, m, v, features, target_list)
        for m, v in zip(masks, values, strict=True)
    )
    examples = _read_legacy_examples(files["example_predictions"])
    return _assemble(
        ds, files, sets, features, target_list, (train, validation, live), examples, None
    )


# --------------------------------------------------------------------------------------------
# The shared assembly step and load_data
# --------------------------------------------------------------------------------------------


def _assemble(
    ds: DatasetDir,
    files: dict[str, Path],
    sets: dict[str, list[str]],
    features: list[str],
    targets: list[str],
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    example_predictions: pd.Series | None,
    meta_model: pd.Series | None,
) -> NumeraiData:
    """The :class:`NumeraiData` of either layout (step 4 of the module docstring)."""
    train, validation, live = frames
    return NumeraiData(
        train=train,
        validation=validation,
        live=live,
        features=features,
        feature_groups=_groups_of(sets, features, V5_GROUP_SETS if ds.layout == "v5" else GROUPS),
        targets=targets,
        example_predictions=example_predictions,
        meta_model=meta_model,
        layout=ds.layout,
        version=ds.version,
        round=ds.round,
        data_dir=ds.path,
        feature_sets=sets,
        files={role: p for role, p in files.items() if p.exists()},
    )


def load_data(
    data_dir: str | os.PathLike,
    feature_set: str | Sequence[str] | None = None,
    era_step: int = 1,
    dtype: str | np.dtype | type = "int8",
    targets: str | Sequence[str] | None = None,
) -> NumeraiData:
    """Load a Numerai dataset of either layout (tutorial step 2A, ``pd.read_csv`` made lean).

    Parameters
    ----------
    data_dir : path
        The dataset directory (``.../v5.2``, ``.../numerai_dataset_280``) or its parent; under a
        parent the newest v5 version wins, else the highest legacy round.
    feature_set : str or list of str, optional
        ``"small"``, ``"medium"``, ``"all"`` (default) or a group name (``"intelligence"``...), or
        a list of feature columns. v5 sets come from ``features.json``; legacy sets from the
        names (small: first quarter of each group, medium: first half; see docs/data.md).
    era_step : int
        Keep every ``era_step``-th training era (natural era order, starting with the first);
        validation and live are always whole.
    dtype : {"int8", "float32"}
        int8 bins 0..4 (legacy 0, 0.25, ..., 1 become ``4 * x``), or float32 with the values as
        the files store them (the tutorial's ``reduce_memory``).
    targets : str or list of str, optional
        Target columns to read; default every target the dataset lists (``target`` first, and
        the train file must have it).

    Returns
    -------
    NumeraiData
        ``train``, ``validation``, ``live`` indexed by ``id``; legacy ``live`` is the tournament
        file's test and live rows in file order. Only the needed columns are read: parquet by
        column projection, CSV by ``include_columns`` with float32 feature types, streamed into
        one preallocated array per split.

    Raises
    ------
    DataError
        A file is missing, unreadable or malformed: a column is missing or not numeric, an
        integer feature is outside 0..4, a float feature is off the 0..1 grid (int8),
        ``features.json`` has the wrong shape, or ``target`` is missing when ``targets`` is None;
        or the data as a whole is wrong (:mod:`nbutils.data.validate`): no feature, an empty
        split (a cut file), targets outside [0, 1], duplicated ids, null eras.
    """
    ask = Request(feature_set, targets, check_era_step(era_step), _check_dtype(dtype))
    ds = locate_dataset(Path(data_dir))
    data = (_load_v5 if ds.layout == "v5" else _load_legacy)(ds, ask)
    check_loaded(data)  # the whole-dataset checks (nbutils.data.validate)
    if ds.layout == "v5":  # after the checks: their transient memory is not added to these
        _add_benchmarks(data, {r: ds.path / n for r, n in V5_FILES.items()}, ask.era_step)
    return data
