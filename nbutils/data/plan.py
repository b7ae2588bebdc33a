"""Memory planning before loading: will this choice of data fit on this machine? (step 2A)

Numerai's own tutorials shrank their feature sets because Colab ran out of memory; here notebook
01 predicts the peak memory of loading (notebook 01), of notebook 02's feature work and of training
(notebook 03) BEFORE it loads anything, next to the machine's available memory, and names the
notebook that would not fit and a smaller choice that fits (:func:`check_memory`, the one call of
notebook 01).

For a v5 dataset the plan reads only ``features.json`` and the parquet files' row counts from
their footers (no data page is read). The model (bytes, ``n`` rows kept, ``F`` features,
``s`` bytes per feature value: 1 for int8, 4 for float32):

- load (``load_data``, all three splits resident at the end)::

      load = baseline + LOAD_OVERHEAD[pandas major] + READ_BUFFER + n_all * (ROW_BYTES + 4 * n_targets)
             + n_all * F * s + benchmark files (BENCHMARK_ROW_BYTES + 8 per model, a row)
             + FOOTER_BYTES * train file's column chunks

  ``ROW_BYTES`` covers the id, era and data_type (Arrow-backed strings: an 8-byte offset plus
  the characters, about 50 bytes a row) and the one metadata column read at a time as Arrow
  data; ``READ_BUFFER`` the parquet read of one row group's column slice
  (``nbutils.data.load.PARQUET_READ_BUDGET``) and the parquet footers; a benchmark file's row
  holds its era, its models as float64 and, while read, one Arrow column (its ids are shared
  with its split's when they are the same; train's file: the kept eras' rows only); targets are
  float64 (``TARGET_BYTES``). Fitted at 2.9M rows x 705 features, 9 targets
  (``bench/bench_load.py``'s data): plan 1.03-1.06x the measured peak; at 2,376 features with
  ``era_step=4``, 1.02x.
- training (notebook 03 with notebook 02's default feature spec: 3 group statistics per feature
  group and the pairwise products of 3 features, ``E`` float64 columns; engine "local")::

      train = load + n_train * E * 8 + max(SAMPLE_BYTES * min(n_train, 200_000) * (F + E),
                                           binned + 4 * BATCH_ROWS * (F + E)) + 16 * n_train
      binned = n_train * (BIN_BYTES * (P + E) + COPIED_BYTES * (F - P)),
      P = min(F, 1 + TRAIN_BLOCK_BYTES // n_train)

  LightGBM first holds its row sample for the bin boundaries (``bin_construct_sample_cnt`` rows,
  float64 value plus int32 index per non-zero value, about 10 bytes a value for 0..4 bins), frees
  it, then holds the binned data while float32 batches are pushed
  (``nbutils.train.build_dataset``); 16 bytes a row are the gradients, hessians and scores.
  ``BIN_BYTES``: LightGBM's Dataset measured 1.04 bytes a value once allocated and 1.08-1.11
  after the push, for 4-bit bins (5 values) as for 8-bit ones (a 4-bit bin keeps its push
  buffer, ``buf_.clear()`` in LightGBM's ``dense_bin.hpp``). The Dataset is built in blocks of
  ``TRAIN_BLOCK_BYTES`` values whose features are copied into the first block's Dataset: a copied
  4-bit feature holds its data only (``COPIED_BYTES``); at the peak the first feature and the last
  raw block (``P`` features) still hold their push buffers; the engineered (float) features keep
  ``BIN_BYTES``. When every feature fits one block (the default sizes) ``binned`` is
  ``BIN_BYTES * n_train * (F + E)``.
- notebook 02 (it loads the data again; ``S`` float32 group statistics, ``q = min(n_train,
  QUICK_ROWS)`` rows of its group-statistics comparison, ``v`` validation rows)::

      features = load + 2 * 4 * n_train * E + max(SCORE_ROW_BYTES * n_train + 2 * block,
                                                  SAMPLE_BYTES * q * (F + S) + q * (2F + S)
                                                  + 4 * min(v, PREDICT_ROWS) * (F + S))

  the engineered columns are held twice (added, then scored); every feature is scored per era
  a ``block`` of float64 columns at a time (at most ``SCORE_BLOCK_BYTES``); the comparison holds
  its rows' copy, LightGBM's bin sample and binned data, then predicts the validation rows in
  float32 batches, one at a time in one buffer (``nbutils._lgb_dataset.iter_batches``). The sample and the batches are not held at once: their
  sum also covers what 02 still holds above its load and engineered columns when the comparison
  starts (its statistics and scored frames; figures below).
- notebook 03: the larger of training and its tutorial check, plus ``NOTEBOOK_03_EXTRA``::

      notebook03 = max(train, load + n_train * E * 8 + CHECK_VALUE_BYTES * c * (F + E))
                   + NOTEBOOK_03_EXTRA,   c = min(n_train, CHECK_ROWS)

  the check runs the tutorial's own LightGBM code on the first ``check_rows`` rows (float64
  frames, LightGBM's float64 conversion and its bin sample of every value); at Numerai's shape
  it is 03's peak, training in blocks adding less.
- every notebook's peak (01 load, 02 features, 03 as above) is checked before loading; notebook
  01's own peak is at least its kernel's peak so far (VmHWM: e.g. generating the synthetic data).

Against the notebooks' own kernels (VmHWM polled every 0.5 s, the dataset on disk, the baseline
notebook 01 measured; README, "The chain at Numerai's shape", 2026-12-05, 15:00 UTC): at 2.75M x 705
with ``era_step=4`` (687,500 training rows) the plan is 1.02x, 1.09x and 1.03x the peaks of 01, 02
and 03 (1,058, 1,703 and 1,657 MiB); at the synthetic default (the dataset generated in 01) 1.10x,
1.09x and 1.08x (333, 407 and 421 MiB). 02 and 03 delete their tutorial checks' frames and call
``release_memory()`` before their heaviest cells (02's comparison, 03's training): held, those
frames had put 02's and 03's peaks 216 and 257 MiB higher.
- engine "dask": the notebook's process holds no training data; the cluster's workers hold the
  binned data and one partition each. The plan counts the binned data plus one baseline per
  worker on this machine (a local cluster); this part is coarse and not measured in the tests.

The memory available (:func:`memory_headroom`) is the smaller of the host's ``MemAvailable`` and
the container's headroom: its cgroup limit minus its use, read from cgroup v2 (``memory.max``,
``memory.current``) or cgroup v1 (``memory.limit_in_bytes``, ``memory.usage_in_bytes``), as
Colab, Kaggle and Docker limit memory; the text printed by notebook 01 says which one was used.

``baseline`` is the process's memory before loading: by default this process's current resident
size (in notebook 01, the kernel as it is). tests/test_memory_plan.py measures the peaks (VmHWM of
a subprocess) on synthetic data of several shapes, dtypes, feature sets and era steps: each
prediction is within 25% of the measurement and never below it by more than 10%.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from nbutils.checks import check_int
from nbutils.data.layout import (
    BENCHMARK_SPLITS,
    V5_FILES,
    V5_GROUP_SETS,
    check_features_json,
    corrupt,
    find_dataset,
    missing_file,
)
from nbutils.errors import DataError
from nbutils.util import pandas_major, read_json

#: the libraries' pages first touched by a load, by pandas major version: pandas 2 touches most
#: of them at import already (its baseline measured 36 MiB higher, its load ~60 MiB lower above
#: it; tests/test_memory_plan.py on pandas 2.2.2 and 3.1.1)
LOAD_OVERHEAD = {2: 30 * 1024**2, 3: 60 * 1024**2}
#: the parquet read of one row group's column slice and the footers: fitted (36 MiB) so that the
#: plan stays within tests/test_memory_plan.py's bounds under pandas 2.2 (whose load adds less
#: above the baseline) and 3 alike; at 2.75M x 705 it is 1.03-1.06x the measured peaks
READ_BUFFER = 36 * 1024**2
ROW_BYTES = 64
#: per target and row: targets load as float64 (nbutils.data.load.target_values)
TARGET_BYTES = 8
#: per row of a benchmark-models file, besides 8 bytes per model (see the module docstring)
BENCHMARK_ROW_BYTES = 60
#: per column chunk of the train file: its parsed footer takes about 1,040 bytes a chunk while the
#: train split is read (439,392 chunks at 2,376 features: 436 MiB); about half of that is still
#: resident at the end of the load (allocator fragmentation), fitted at 2.9M rows x 2,376, era_step 4
FOOTER_BYTES = 512
#: LightGBM's binned Dataset, bytes per value (see the module docstring)
BIN_BYTES = 1.1
#: a 4-bit feature copied out of its block's Dataset (``LGBM_DatasetAddFeaturesFrom``): its data
#: only, half a byte a value, without the push buffer; bytes per value (see the module docstring)
COPIED_BYTES = 0.55
#: ``nbutils.train.BLOCK_BYTES``: the feature values of one block of the Dataset's build
TRAIN_BLOCK_BYTES = 64 * 1024**2
#: notebook 03's tutorial check (the tutorial's own LightGBM code) on its first ``check_rows``
#: training rows: their copy and ``fillna(0)`` copy, LightGBM's float64 conversion and bin sample
#: of every value, and the same for the validation rows it predicts; bytes per value, fitted at
#: Numerai's shape (50,000 rows x 726 columns: 474 MiB, 13.7 bytes a value)
CHECK_VALUE_BYTES = 14.5
#: notebook 03's ``check_rows``
CHECK_ROWS = 50_000
SAMPLE_BYTES = 10
BIN_SAMPLE_ROWS = 200_000  # LightGBM's bin_construct_sample_cnt default
BATCH_ROWS = 4_096  # nbutils.train's float32 batch
#: notebook 02's group-statistics comparison trains on at most this many rows (whole eras)
QUICK_ROWS = 60_000
#: notebook 02's per-feature scores: float64 columns a block at a time
#: (nbutils._score_inputs.PRED_BLOCK_BYTES) and float64 arrays per training row
SCORE_BLOCK_BYTES = 64 * 1024**2
SCORE_ROW_BYTES = 64
PREDICT_ROWS = 65_536  # nbutils.train.predict's float32 batch (one buffer, reused)
#: what notebook 03's kernel holds at its peak besides the larger of its training and its check
#: (its predictions, scores and figures; LightGBM's own allocations): fitted so that the plan is
#: at or above 03's kernel peak at the default size and at 2.75M x 705 (module docstring)
NOTEBOOK_03_EXTRA = 24 * 1024**2
DASK_WORKER_BASELINE = 250 * 1024**2
DEFAULT_DASK_WORKERS = 2
_ITEMSIZE = {"int8": 1, "float32": 4}
_MIB = 1024**2
NOTEBOOK_01 = "01_load_data.ipynb"
NOTEBOOK_02 = "02_feature_engineering.ipynb"
NOTEBOOK_03 = "03_training.ipynb"
_WHAT = {
    NOTEBOOK_01: "読み込み load",
    NOTEBOOK_02: "特徴量 features",
    NOTEBOOK_03: "学習 training",
}


@dataclass(frozen=True)
class MemoryPlan:
    """The predicted peaks (bytes) of loading and training one choice of data."""

    dataset_dir: Path
    feature_set: str | tuple[str, ...]
    era_step: int
    dtype: str
    engine: str
    rows: dict[str, int]
    n_features: int
    n_engineered: int
    baseline: int
    load_bytes: int
    train_bytes: int
    features_bytes: int = 0
    notebook03_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def peaks(self) -> dict[str, int]:
        """Notebook -> the predicted peak of its kernel (01 loads, 02 scores the features and
        compares the group statistics, 03 trains); each notebook loads the data again."""
        return {
            NOTEBOOK_01: self.load_bytes,
            NOTEBOOK_02: max(self.features_bytes, self.load_bytes),
            NOTEBOOK_03: max(self.notebook03_bytes, self.train_bytes + NOTEBOOK_03_EXTRA),
        }

    @property
    def peak_bytes(self) -> int:
        """The largest notebook peak."""
        return max(self.peaks.values())

    @property
    def largest(self) -> str:
        """The notebook with the largest peak."""
        return max(self.peaks, key=self.peaks.__getitem__)

    def fits(self, available: int) -> bool:
        """Whether the peak stays below ``available`` bytes."""
        return self.peak_bytes <= available

    def describe(self, available: int | None = None, source: str = "") -> str:
        """A few lines for notebook 01: the choice, both peaks, and the memory available (and
        where that number comes from, ``source``)."""
        rows = ", ".join(f"{k} {v:,}" for k, v in self.rows.items())
        lines = [
            f"feature_set={self.feature_set!r} era_step={self.era_step} dtype={self.dtype} "
            f"engine={self.engine!r}: {self.n_features} features, rows {rows}",
            "予測されるメモリのピーク / predicted peak: "
            + ", ".join(
                f"{nb[:2]} {_WHAT[nb]} {peak / _MIB:,.0f} MiB" for nb, peak in self.peaks.items()
            ),
        ]
        if available is not None:
            lines.append(
                f"使えるメモリ / available: {available / _MIB:,.0f} MiB"
                + (f" ({source})" if source else "")
            )
        return "\n".join(lines + self.notes)


#: where the memory the machine has left is read (injectable: tests point them at fake files)
MEMINFO = Path("/proc/meminfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
#: a cgroup v1 limit at or above this is "no limit" (the kernel writes about 2**63)
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class Headroom:
    """The bytes this process may still use, and where that number comes from.

    ``source`` is ``"cgroup v2"``, ``"cgroup v1"`` (the container's limit minus its use: Colab,
    Kaggle, Docker) or ``"host"`` (``MemAvailable`` of ``/proc/meminfo``): whichever is smaller.
    ``detail`` says it in one line, with both numbers.
    """

    available: int
    source: str
    detail: str


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat(path: Path, key: str) -> int:
    """``key``'s value in a cgroup ``memory.stat`` file (0 when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _own_cgroup_dirs(root: Path, proc_cgroup: Path, v1: bool) -> list[Path]:
    """Candidate directories of this process's memory cgroup, most specific first: the path in
    ``/proc/self/cgroup`` under ``root`` (a host), then ``root`` itself (a container sees its own
    cgroup at the root)."""
    base = root / "memory" if v1 else root
    found: list[Path] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers = parts[1].split(",")
        if (v1 and "memory" in controllers) or (not v1 and parts[0] == "0" and parts[1] == ""):
            found.append(base / parts[2].lstrip("/"))
    return [*found, base]


def cgroup_headroom(
    root: Path | None = None, proc_cgroup: Path | None = None
) -> tuple[int, str, int, int] | None:
    """``(headroom, version, limit, used)`` of this process's memory cgroup, or None without a
    limit. cgroup v2: ``memory.max`` and ``memory.current``; cgroup v1: ``memory.limit_in_bytes``
    and ``memory.usage_in_bytes``. The page cache the kernel can drop (``inactive_file`` of
    ``memory.stat``) is not counted as used, as ``docker stats`` does."""
    root = CGROUP_ROOT if root is None else root
    proc_cgroup = PROC_CGROUP if proc_cgroup is None else proc_cgroup
    versions = (
        ("cgroup v2", False, "memory.max", "memory.current", "inactive_file"),
        (
            "cgroup v1",
            True,
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    )
    for version, v1, limit_name, used_name, cache_key in versions:
        for directory in _own_cgroup_dirs(root, proc_cgroup, v1):
            limit = _read_int(directory / limit_name)  # v2's "max" (no limit) reads as None
            used = _read_int(directory / used_name)
            if limit is None or used is None or limit >= _UNLIMITED:
                continue
            used = max(used - _stat(directory / "memory.stat", cache_key), 0)
            return max(limit - used, 0), version, limit, used
    return None


def host_available(meminfo: Path | None = None) -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; elsewhere the total physical memory."""
    meminfo = MEMINFO if meminfo is None else meminfo
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_headroom(
    meminfo: Path | None = None, cgroup_root: Path | None = None, proc_cgroup: Path | None = None
) -> Headroom:
    """The smaller of the host's available memory and the container's headroom (cgroup v2 or
    v1 limit minus use), saying which one it is (:class:`Headroom`)."""
    host = host_available(meminfo)
    host_text = f"host MemAvailable {host / _MIB:,.0f} MiB"
    group = cgroup_headroom(cgroup_root, proc_cgroup)
    if group is None:
        return Headroom(host, "host", f"{host_text}（コンテナのメモリ上限なし）")
    headroom, version, limit, used = group
    group_text = (
        f"{version} limit {limit / _MIB:,.0f} MiB - used {used / _MIB:,.0f} MiB "
        f"= {headroom / _MIB:,.0f} MiB"
    )
    if headroom < host:
        return Headroom(headroom, version, f"{group_text}（{host_text} より小さい）")
    return Headroom(host, "host", f"{host_text}（{group_text} より小さい）")


def available_memory() -> int:
    """Bytes this process may still use: :func:`memory_headroom`'s number."""
    return memory_headroom().available


def _status_bytes(key: str) -> int:
    """A size line of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes, 0 where it is missing."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    return 0


def current_rss() -> int:
    """This process's resident size in bytes (VmRSS), 0 where /proc is missing."""
    return _status_bytes("VmRSS")


def current_hwm() -> int:
    """This process's peak resident size so far in bytes (VmHWM), 0 where /proc is missing."""
    return _status_bytes("VmHWM")


def _dataset_bytes(n: int, f: int, e: int) -> int:
    """LightGBM's Dataset at its peak while :func:`nbutils.train.build_dataset` builds it from
    ``n`` rows of ``f`` 4-bit and ``e`` engineered features (module docstring): with one block,
    the larger of the bin sample and the pushed data; with several, every feature copied
    (``COPIED_BYTES`` a 4-bit value, ``BIN_BYTES`` an engineered one) plus one block being
    built (its sample, or its pushed data)."""
    total, width = f + e, max(1, TRAIN_BLOCK_BYTES // n)
    batch = 4 * BATCH_ROWS * total
    sample = SAMPLE_BYTES * min(n, BIN_SAMPLE_ROWS)
    if 1 + width >= total:
        return int(max(sample * total, BIN_BYTES * n * total)) + batch
    held = n * (COPIED_BYTES * f + BIN_BYTES * e)
    return int(held + max(sample * width, BIN_BYTES * n * width)) + batch


def _notebook_02_bytes(n_train: int, n_valid: int, f: int, s: int, e: int) -> int:
    """Notebook 02's bytes above its loaded data (module docstring): the engineered float32
    columns twice (added, then scored), then the larger of the per-feature scores and the
    group-statistics comparison on ``q = min(n_train, QUICK_ROWS)`` rows."""
    q = min(n_train, QUICK_ROWS)
    scores = SCORE_ROW_BYTES * n_train + 2 * min(SCORE_BLOCK_BYTES, 8 * n_train * f)
    quick = (
        SAMPLE_BYTES * min(q, BIN_SAMPLE_ROWS) * (f + s)
        + q * (2 * f + s)
        + 4 * min(n_valid, PREDICT_ROWS) * (f + s)
    )
    return 2 * 4 * n_train * e + max(scores, quick)


def _dataset_dir(data_dir_or_version: str | os.PathLike, data_root: str | os.PathLike) -> Path:
    """A dataset directory, or a version such as ``"v5.2"`` looked up where
    ``download_numerai_data`` puts it (``<data_root>/numerai/<version>``)."""
    text = str(data_dir_or_version)
    path = Path(text).expanduser()
    if not path.exists() and text.startswith("v") and os.sep not in text:
        path = Path(data_root).expanduser() / "numerai" / text
        if not path.exists():
            raise DataError(
                f"dataset version {text!r} is not downloaded in {path}: download it first "
                f"(download_numerai_data({str(Path(data_root) / 'numerai')!r}, version={text!r})) "
                "or pass the dataset directory"
            )
    layout, found = find_dataset(path)
    if layout != "v5":
        raise DataError(
            f"{found} holds the 2021 CSV layout: memory planning reads parquet footers and covers "
            "the v5 layout only (the 2021 files are small enough to load)"
        )
    return found


def _features_json(path: Path) -> dict:
    """``features.json``, parsed and checked; a missing or damaged file is a DataError naming it."""
    if not path.is_file():
        raise missing_file(path, "feature metadata")
    try:
        meta = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise corrupt(path, err) from None
    return check_features_json(meta, path)


def _footer_rows(path: Path, what: str) -> tuple[int, int]:
    """The row count and the number of column chunks (row groups x columns) in a parquet file's
    footer; a missing, empty or non-parquet file is a DataError naming it (pyarrow's
    ArrowInvalid names no file)."""
    if not path.is_file():
        raise missing_file(path, what)
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as err:
        raise corrupt(path, err) from None
    return meta.num_rows, meta.num_row_groups * meta.num_columns


def _benchmark_bytes(path: Path, era_step: int = 1) -> int:
    """Bytes ``load_data`` holds for the benchmark files present (float64 columns plus id and era;
    validation's and live's whole, train's for every ``era_step``-th era): from their footers
    only."""
    total = 0
    for split in BENCHMARK_SPLITS:
        file = path / V5_FILES[f"{split}_benchmark_models"]
        if not file.is_file():
            continue
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowException, OSError) as err:
            raise corrupt(file, err) from None
        rows = math.ceil(meta.num_rows / era_step) if split == "train" else meta.num_rows
        total += rows * (BENCHMARK_ROW_BYTES + 8 * max(meta.num_columns - 2, 0))
    return total


def _features(meta: dict, feature_set: str | Sequence[str], source: Path) -> list[str]:
    sets = meta["feature_sets"]
    if isinstance(feature_set, str):
        if feature_set not in sets:
            raise DataError(
                f"unknown feature_set {feature_set!r} in {source}: choose one of {sorted(sets)}"
            )
        return list(sets[feature_set])
    chosen = list(feature_set)
    if not chosen or not all(isinstance(c, str) for c in chosen):
        raise DataError("feature_set must be a set name or a non-empty list of feature names")
    return chosen


def plan_memory(
    data_dir_or_version: str | os.PathLike,
    feature_set: str | Sequence[str] = "all",
    era_step: int = 1,
    dtype: str = "int8",
    engine: str = "local",
    *,
    baseline: int | None = None,
    data_root: str | os.PathLike = "data",
    interaction_count: int = 3,
    dask_workers: int = DEFAULT_DASK_WORKERS,
) -> MemoryPlan:
    """Predict the peak memory of loading and of training one choice of data (see the module
    docstring for the formulas). Reads only ``features.json`` and the parquet footers.

    Parameters
    ----------
    data_dir_or_version : path or str
        A v5 dataset directory (or its parent), or a downloaded version such as ``"v5.2"``.
    feature_set, era_step, dtype
        As for ``load_data``.
    engine : {"local", "dask"}
        Where notebook 03 trains.
    baseline : int, optional
        Bytes in use before loading; default: this process's resident size now.
    """
    era_step = check_int(era_step, "era_step", minimum=1, error=DataError)
    if dtype not in _ITEMSIZE:
        raise DataError(f"dtype={dtype!r} is not one of {sorted(_ITEMSIZE)}")
    if engine not in ("local", "dask"):
        raise DataError(f'engine={engine!r}: use "local" or "dask"')
    path = _dataset_dir(data_dir_or_version, data_root)
    meta = _features_json(path / V5_FILES["features"])
    features = _features(meta, feature_set, path / V5_FILES["features"])
    chosen = set(features)
    groups = [
        g
        for g in V5_GROUP_SETS
        if g in meta["feature_sets"] and chosen & set(meta["feature_sets"][g])
    ]
    engineered = 3 * len(groups) + math.comb(min(interaction_count, len(features)), 2)
    rows, chunks = {}, {}
    for split in ("train", "validation", "live"):
        rows[split], chunks[split] = _footer_rows(path / V5_FILES[split], split)
    rows["train"] = math.ceil(rows["train"] / era_step)
    n_targets = max(1, len(meta.get("targets", [])))
    f, e, n_all, n_train = len(features), engineered, sum(rows.values()), rows["train"]
    base = current_rss() if baseline is None else int(baseline)
    # notebook 01's kernel has already reached this (e.g. generating the synthetic data)
    already = current_hwm() if baseline is None else 0

    load = (
        base
        + LOAD_OVERHEAD[min(pandas_major(), 3)]
        + READ_BUFFER
        + n_all * (ROW_BYTES + TARGET_BYTES * n_targets)
    )
    load += (
        _benchmark_bytes(path, era_step)
        + n_all * f * _ITEMSIZE[dtype]
        + FOOTER_BYTES * chunks["train"]
    )
    features02 = load + _notebook_02_bytes(n_train, rows["validation"], f, 3 * len(groups), e)
    notes = []
    binned = int(BIN_BYTES * n_train * (f + e)) + 4 * BATCH_ROWS * (f + e)
    if engine == "local":
        trained = load + n_train * e * 8  # 03's frame: the data and its engineered columns
        train = trained + _dataset_bytes(n_train, f, e) + 16 * n_train
        check = trained + CHECK_VALUE_BYTES * min(n_train, CHECK_ROWS) * (f + e)
        notebook03 = max(train, check) + NOTEBOOK_03_EXTRA
    else:
        train = base + dask_workers * DASK_WORKER_BASELINE + binned
        notebook03 = train + NOTEBOOK_03_EXTRA
        notes.append(
            "engine='dask': 学習のピークは目安です / the dask training peak is a coarse estimate"
        )
    return MemoryPlan(
        dataset_dir=path,
        feature_set=feature_set if isinstance(feature_set, str) else tuple(feature_set),
        era_step=era_step,
        dtype=dtype,
        engine=engine,
        rows=rows,
        n_features=f,
        n_engineered=e,
        baseline=base,
        load_bytes=int(max(load, already)),
        train_bytes=int(train),
        features_bytes=int(features02),
        notebook03_bytes=int(notebook03),
        notes=notes,
    )


def smaller_choices(plan: MemoryPlan, available: int) -> list[MemoryPlan]:
    """Plans that fit in ``available`` bytes, smallest change first: a smaller feature set
    (medium, small), a larger era_step (2, 4, 8), both, then engine="dask"."""
    sets = ["all", "medium", "small"]
    current = plan.feature_set if plan.feature_set in sets else None
    smaller_sets = sets[sets.index(current) + 1 :] if current else []
    steps = [s for s in (2, 4, 8) if s > plan.era_step]
    tries = [(fs, plan.era_step, plan.engine) for fs in smaller_sets]
    tries += [(plan.feature_set, st, plan.engine) for st in steps]
    tries += [(fs, st, plan.engine) for fs in smaller_sets for st in steps]
    if plan.engine == "local":
        tries.append((plan.feature_set, plan.era_step, "dask"))
    fitting = []
    for fs, st, eng in tries:
        try:
            other = plan_memory(plan.dataset_dir, fs, st, plan.dtype, eng, baseline=plan.baseline)
        except DataError:  # e.g. no "medium" set in this features.json
            continue
        if other.fits(available):
            fitting.append(other)
    return fitting


def check_fits(plan: MemoryPlan, available: int | None = None) -> str:
    """The plan's description when it fits; else a DataError naming choices that fit.

    ``available`` defaults to :func:`memory_headroom` (the container's limit or the host's
    memory, whichever is smaller, named in the text) plus the plan's baseline."""
    source = ""
    if available is None:
        headroom = memory_headroom()
        available = headroom.available + plan.baseline
        source = f"this process's {plan.baseline / _MIB:,.0f} MiB + {headroom.detail}"
    text = plan.describe(available, source)
    if plan.fits(available):
        return text
    options = smaller_choices(plan, available)
    if options:
        hint = "; ".join(
            f"feature_set={o.feature_set!r}, era_step={o.era_step}, engine={o.engine!r} "
            f"({o.peak_bytes / _MIB:,.0f} MiB)"
            for o in options[:3]
        )
    else:
        hint = "none of the smaller choices fits: use a machine with more memory"
    short = ", ".join(
        f"{nb} ({peak / _MIB:,.0f} MiB)" for nb, peak in plan.peaks.items() if peak > available
    )
    raise DataError(
        f"{text}\nこの設定ではメモリが足りません / this choice does not fit in memory: "
        f"{short} would need more than the {available / _MIB:,.0f} MiB available, so nothing "
        f"is loaded. Choices that fit: {hint}. Set them in the parameters cell and run again."
    )


LEGACY_SKIP = (
    "2021 年の CSV のレイアウトなので、メモリの見積もりは省きます（ファイルが小さく、見積もりは "
    "parquet の情報を使うため） / the 2021 CSV layout: memory planning skipped"
)


def check_memory(
    dataset_dir: str | os.PathLike,
    feature_set: str | Sequence[str] = "all",
    era_step: int = 1,
    dtype: str = "int8",
    engine: str = "local",
    *,
    available: int | None = None,
) -> str:
    """Notebook 01's memory check, before anything is loaded: the plan beside the available
    memory (:func:`plan_memory`, :func:`check_fits`).

    Returns the lines to print when the choice fits, and one line saying the plan is skipped for
    the 2021 CSV layout (the plan reads parquet footers). Raises :class:`DataError` naming
    smaller choices that fit (``feature_set``, ``era_step``, ``engine="dask"``) when it does not.
    """
    layout, found = find_dataset(dataset_dir)
    if layout != "v5":
        return LEGACY_SKIP
    return check_fits(plan_memory(found, feature_set, era_step, dtype, engine), available)
