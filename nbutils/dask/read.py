"""Tutorial step 2A on a Dask cluster: one split of a dataset as a Dask DataFrame.

The workers read the files themselves (column projection; features stay int8), so the dataset
must sit on a path every worker sees: a shared filesystem, or an object-store URL such as
``s3://bucket/v5.2``. The file names of both layouts are those of :mod:`nbutils.data`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from nbutils.checks import check_int, require_columns
from nbutils.dask.cluster import compute_step, optional
from nbutils.data import LEGACY_FILES, V5_FILES, find_dataset, legacy_feature_sets, to_int8_bins
from nbutils.errors import DataError
from nbutils.util import natural_sorted

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["SPLITS", "read_split"]

SPLITS = ("train", "validation", "live")
#: The legacy tournament file's ``data_type`` values that make each split.
_LEGACY_TYPES = {"train": ("train",), "validation": ("validation",), "live": ("test", "live")}


# -- locating --------------------------------------------------------------------------------------
def _is_url(path: str) -> bool:
    return "://" in path


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _locate(dataset_dir: str | Path, storage_options: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(layout, directory)`` of the dataset at ``dataset_dir`` (a path or a fsspec URL).

    ``dataset_dir`` is the version directory (``.../v5.2``) or the legacy round directory
    (``.../numerai_dataset_280``); a local parent directory also works (newest version wins,
    as in :func:`nbutils.data.find_dataset`).
    """
    text = str(dataset_dir)
    fs, root = fsspec.core.url_to_fs(text, **dict(storage_options or {}))

    def layout_of(directory: str) -> str | None:
        if fs.exists(_join(directory, V5_FILES["train"])) or fs.exists(
            _join(directory, V5_FILES["features"])
        ):
            return "v5"
        if fs.exists(_join(directory, LEGACY_FILES["train"])) or fs.exists(
            _join(directory, LEGACY_FILES["tournament"])
        ):
            return "legacy"
        return None

    found = layout_of(root)
    if found is not None:
        return found, text.rstrip("/")
    if not _is_url(text) and Path(text).is_dir():
        layout, path = find_dataset(text)
        return layout, str(path)
    raise DataError(
        f"no Numerai dataset at {text}: expected {V5_FILES['train']} and features.json (v5) or "
        f"{LEGACY_FILES['train']} (legacy) in that directory. Pass the version directory "
        "(e.g. .../v5.2) on a path every Dask worker can read."
    )


def _read_text(url: str, storage_options: Mapping[str, Any] | None) -> str:
    try:
        with fsspec.open(url, "r", encoding="utf-8", **dict(storage_options or {})) as fh:
            return fh.read()
    except FileNotFoundError as err:
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.") from err


def _feature_list(
    features: str | Sequence[str] | None,
    directory: str,
    layout: str,
    storage_options: Mapping[str, Any] | None,
    columns: Sequence[str],
) -> list[str]:
    """The feature columns asked for: None (all), a feature-set name, or a list of columns."""
    if features is not None and not isinstance(features, str):
        return list(features)  # may be empty: read no feature at all
    if layout == "v5":
        sets = json.loads(_read_text(_join(directory, V5_FILES["features"]), storage_options))[
            "feature_sets"
        ]
    else:
        sets = legacy_feature_sets(list(columns))
    name = features or "all"
    if name not in sets:
        raise DataError(
            f"unknown feature set {name!r}: choose one of {sorted(sets)} or pass columns."
        )
    return list(sets[name])


def _require(available: Sequence[str], wanted: Sequence[str], source: str) -> None:
    require_columns(
        available,
        wanted,
        "columns",
        source=source,
        hint="check features and targets.",
        error=DataError,
    )


def read_split(
    dataset_dir: str | Path,
    split: str = "train",
    features: str | Sequence[str] | None = None,
    targets: str | Sequence[str] = ("target",),
    era_step: int = 1,
    blocksize: str | int | None = "32MiB",
    storage_options: Mapping[str, Any] | None = None,
) -> dd.DataFrame:
    """One split of a dataset as a Dask DataFrame, read by the workers (tutorial step 2A).

    The columns are ``era``, ``data_type``, the features (int8 bins 0..4) and ``targets``
    (float), indexed by ``id``: those of :func:`nbutils.data.load_data`'s frames. Only these
    columns are read (column projection).

    Parameters
    ----------
    dataset_dir : str or Path
        The dataset directory (``<data_dir>/v5.2``, or ``.../numerai_dataset_<round>``), a
        path every worker can read: a shared filesystem, or an object-store URL
        (``s3://``, ``gs://``, ``abfs://``; ``storage_options`` holds its credentials options).
    split : {"train", "validation", "live"}
        v5: the file of that name. Legacy: the training file, or the tournament file's
        ``validation`` rows, or its ``test`` and ``live`` rows (the tutorial's "test").
    features : None, str or list of str
        None: every feature; a feature-set name of ``features.json`` (``"small"``, ``"medium"``,
        a group); or the columns themselves.
    targets : str or sequence of str
        Target columns to read (``()`` for none).
    era_step : int
        Keep every ``era_step``-th era in natural order (as ``load_data``'s ``era_step``).
    blocksize : str, int or None
        Partition size: v5 row groups are combined up to about this much uncompressed data per
        partition; the CSV files are cut into blocks of this many bytes.

    Raises
    ------
    DataError
        No dataset there, an unknown split or feature set, or missing columns.

    Notes
    -----
    The legacy CSV values 0, 0.25, ..., 1 are mapped to the int8 bins 0..4 per partition
    (``round(4 x)``; a missing value becomes the middle bin 2, as ``load_data`` does).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {SPLITS}.")
    step = check_int(era_step, "era_step", 1, error=DataError)
    target_list = [targets] if isinstance(targets, str) else list(targets)
    layout, directory = _locate(dataset_dir, storage_options)
    if layout == "v5":
        ddf = _read_v5(directory, split, features, target_list, blocksize, storage_options)
    else:
        ddf = _read_legacy(directory, split, features, target_list, blocksize, storage_options)
    return _every_nth_era(ddf, step)


@dataclass(frozen=True)
class _ParquetPart:
    """One partition of a parquet file: a run of its row groups and the columns to read."""

    url: str
    row_groups: tuple[int, ...]
    columns: tuple[str, ...]
    storage_options: tuple[tuple[str, Any], ...] = ()


def _read_parquet_part(part: _ParquetPart) -> pd.DataFrame:
    """Read one partition: only its row groups and columns; index ``id`` from pandas metadata.

    ``self_destruct`` frees each Arrow column as soon as it is converted, so reading a partition
    needs about twice its size (``dask.dataframe.read_parquet`` needed some ten times as much
    on int8 files with hundreds of columns: see docs/dask.md).
    """
    with fsspec.open(part.url, "rb", **dict(part.storage_options)) as fh:
        table = pq.ParquetFile(fh).read_row_groups(
            list(part.row_groups), columns=list(part.columns), use_pandas_metadata=True
        )
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    return frame


def _plan_parts(
    meta: Any,
    url: str,
    columns: list[str],
    blocksize: int,
    storage_options: Mapping[str, Any] | None,
) -> list[_ParquetPart]:
    """Consecutive row groups per partition, up to ``blocksize`` uncompressed bytes of ``columns``."""
    wanted = set(columns) | {"id"}
    positions = [i for i in range(meta.num_columns) if meta.schema.column(i).name in wanted]
    parts, current, size = [], [], 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        group_size = sum(group.column(i).total_uncompressed_size for i in positions)
        if current and size + group_size > blocksize:
            parts.append(current)
            current, size = [], 0
        current.append(g)
        size += group_size
    if current:
        parts.append(current)
    options = tuple(sorted(dict(storage_options or {}).items()))
    return [_ParquetPart(url, tuple(p), tuple(columns), options) for p in parts]


def _read_v5(
    directory: str,
    split: str,
    features: str | Sequence[str] | None,
    targets: list[str],
    blocksize: str | int | None,
    storage_options: Mapping[str, Any] | None,
) -> dd.DataFrame:
    """One partition per run of row groups (:func:`_plan_parts`), read by :func:`_read_parquet_part`.

    The partitioning is fixed by the row groups: selecting columns later never changes it.
    """
    from dask.utils import parse_bytes

    _, dd_module, _ = optional()
    url = _join(directory, V5_FILES[split])
    fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    if not fs.exists(path):
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.")
    with fs.open(path, "rb") as fh:
        parquet = pq.ParquetFile(fh)
        available, meta = parquet.schema_arrow.names, parquet.metadata
        empty = parquet.schema_arrow.empty_table()
    feature_cols = _feature_list(features, directory, "v5", storage_options, available)
    columns = ["era", "data_type", *feature_cols, *targets]
    _require(available, columns, url)
    limit = parse_bytes(blocksize) if isinstance(blocksize, str) else int(blocksize or 2**62)
    parts = _plan_parts(meta, url, columns, max(limit, 1), storage_options)
    index_cols = [c for c in ("id", "__index_level_0__") if c in available]
    frame_meta = empty.select([*index_cols, *columns]).to_pandas()
    if frame_meta.index.name != "id":
        raise DataError(f"{url} has no 'id' index; write it with the ids as the frame's index.")
    ddf = dd_module.from_map(
        _read_parquet_part,
        parts,
        meta=frame_meta,
        label="read-numerai-parquet",
        enforce_metadata=False,
    )
    not_int8 = [c for c in feature_cols if frame_meta[c].dtype != np.int8]
    if not_int8:
        ddf = ddf.map_partitions(
            _features_to_int8, not_int8, 1.0, meta=_int8_meta(frame_meta, not_int8)
        )
    return ddf


# Deliberate repeat (the `duplicates` tool pairs it with _read_v5's parameter list): the two layouts'
# readers are called the same way, chosen by the dataset's layout.
def _read_legacy(
    directory: str,
    split: str,
    features: str | Sequence[str] | None,
    targets: list[str],
    blocksize: str | int | None,
    storage_options: Mapping[str, Any] | None,
) -> dd.DataFrame:
    _, dd_module, _ = optional()
    name = LEGACY_FILES["train"] if split == "train" else LEGACY_FILES["tournament"]
    url = _join(directory, name)
    try:
        with fsspec.open(url, "r", encoding="utf-8", **dict(storage_options or {})) as fh:
            header = fh.readline().strip().split(",")
    except FileNotFoundError as err:
        raise DataError(f"{url} is missing: download the dataset again or rebuild it.") from err
    feature_cols = _feature_list(features, directory, "legacy", storage_options, header)
    columns = ["id", "era", "data_type", *feature_cols, *targets]
    _require(header, columns, url)
    dtypes = {"id": "str", "era": "str", "data_type": "str"}
    dtypes.update(dict.fromkeys(feature_cols, "float32"))
    dtypes.update(dict.fromkeys(targets, "float32"))
    ddf = dd_module.read_csv(
        url,
        usecols=columns,
        dtype=dtypes,
        blocksize=blocksize,
        storage_options=dict(storage_options or {}),
    )
    ddf = ddf[ddf["data_type"].isin(list(_LEGACY_TYPES[split]))]
    meta = _int8_meta(ddf._meta.set_index("id"), feature_cols)[
        ["era", "data_type", *feature_cols, *targets]
    ]
    return ddf.map_partitions(_legacy_partition, feature_cols, targets, meta=meta)


def _int8_meta(meta: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = meta.copy()
    for c in columns:
        out[c] = out[c].astype(np.int8)
    return out


def _features_to_int8(part: pd.DataFrame, columns: Sequence[str], scale: float) -> pd.DataFrame:
    """Feature values to the int8 bins 0..4 (:func:`nbutils.data.to_int8_bins`)."""
    out = part.copy()
    for c in columns:
        values = out[c].to_numpy(dtype=np.float64, na_value=np.nan)
        out[c] = to_int8_bins(values, scale, f"column {c!r}")
    return out


def _legacy_partition(
    part: pd.DataFrame, features: Sequence[str], targets: Sequence[str]
) -> pd.DataFrame:
    """One block of a legacy CSV: id index, int8 features (``round(4 x)``)."""
    out = part.set_index("id")[["era", "data_type", *features, *targets]]
    return _features_to_int8(out, features, 4.0)


def _every_nth_era(ddf: dd.DataFrame, era_step: int) -> dd.DataFrame:
    if era_step == 1:
        return ddf
    dask, _, _ = optional()
    parts = [dask.delayed(unique_labels)(p, "era") for p in ddf[["era"]].to_delayed()]
    eras = natural_sorted(
        {e for labels in compute_step(None, parts, "listing the eras") for e in labels}
    )
    return ddf[ddf["era"].isin(eras[::era_step])]


def unique_labels(part: pd.DataFrame, era_col: str) -> list[Any]:
    """The distinct era labels of one partition, as they are (str or int: never converted)."""
    return list(pd.unique(part[era_col]))
