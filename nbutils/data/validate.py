"""Whole-dataset checks after loading: what no single column's check can see (step 2A).

:func:`nbutils.data.load.load_data` reads every value through the per-column checks of
:mod:`nbutils.data.values` (feature bins, numeric types); :func:`check_loaded` then looks at the
loaded :class:`~nbutils.data.layout.NumeraiData` as a whole and raises a
:class:`~nbutils.errors.DataError` naming the file and the fix for:

- **no features**: the chosen feature set is empty (``features.json`` with ``"all": []``);
- **an empty split**: train, validation or live without a row (a training CSV holding only its
  header; a tournament CSV cut before its live rows);
- **a cut file** (legacy layout): the tournament file holds validation rows first, then test and
  live rows (the 2021 files, and ours). A file cut at a line boundary therefore loses its live
  rows first: no ``test``/``live`` row is refused as a cut file. (A cut inside the validation
  rows with the live rows still there cannot be told from a smaller era, so it is not guessed.)
- **targets outside [0, 1]**: Numerai's targets are 0, 0.25, ..., 1 (NaN where unknown);
  0..10 or -1 are another scale or damage;
- **duplicated ids**, within a split or between two splits;
- **null eras**: every row's era is known (per-era scores group by it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nbutils.data.layout import NumeraiData
from nbutils.errors import DataError

_FIX = "Download it again (download_numerai_data) or rebuild the dataset (make_synthetic_dataset)"
SPLITS = ("train", "validation", "live")


def split_file(files: dict[str, Path], split: str, data_dir: Path | None) -> str:
    """The file a split was read from (legacy validation and live: the tournament file)."""
    path = files.get(split) or files.get("tournament") or data_dir
    return str(path)


def _check_features(data: NumeraiData) -> None:
    if not data.features:
        source = data.files.get("features") or data.files.get("train") or data.data_dir
        raise DataError(
            f"{source}: the chosen feature set holds no feature (0 columns), so there is nothing "
            f"to train on. Choose another feature_set (e.g. 'all'), or download it again "
            "(download_numerai_data) or rebuild the dataset (make_synthetic_dataset)."
        )


def _check_rows(data: NumeraiData) -> None:
    for split in SPLITS:
        if len(getattr(data, split)) == 0:
            source = split_file(data.files, split, data.data_dir)
            what = "live" if split == "live" else split
            cut = (
                " (the file ends before its test/live rows: it was cut)"
                if data.layout == "legacy" and split == "live"
                else ""
            )
            raise DataError(f"{source} holds no {what} rows{cut}: the file is incomplete. {_FIX}.")


def _check_targets(data: NumeraiData) -> None:
    for split in ("train", "validation"):
        frame = getattr(data, split)
        for target in data.targets:
            if target not in frame.columns:
                continue
            values = frame[target].to_numpy(dtype=np.float64, na_value=np.nan)
            known = values[~np.isnan(values)]
            if known.size and (known.min() < 0.0 or known.max() > 1.0):
                raise DataError(
                    f"{split_file(data.files, split, data.data_dir)}, column {target!r}: targets "
                    f"from {known.min():g} to {known.max():g}, outside [0, 1] (Numerai's targets "
                    f"are 0, 0.25, ..., 1): the file is another scale or damaged. {_FIX}."
                )


def _check_ids_and_eras(data: NumeraiData) -> None:
    frames = {split: getattr(data, split) for split in SPLITS}
    for split, frame in frames.items():
        source = split_file(data.files, split, data.data_dir)
        if frame.index.hasnans:
            raise DataError(f"{source}: {split} rows without an id. {_FIX}.")
        nulls = int(frame["era"].isna().sum())
        if nulls:
            raise DataError(
                f"{source}: {nulls:,} {split} row(s) without an era (null): per-era scores need "
                f"every row's era. {_FIX}."
            )
    # the culprits are looked for only when there is a duplicate
    if _all_unique(list(frames.values())):
        return
    every = frames["train"].index.append([frames["validation"].index, frames["live"].index])
    owner = np.repeat(np.arange(len(SPLITS)), [len(f) for f in frames.values()])
    first = ~every.duplicated(keep="first")
    for position in np.flatnonzero(~first)[:1]:
        dup = every[position]
        splits = sorted({SPLITS[k] for k in owner[every == dup]}, key=SPLITS.index)
        split = SPLITS[owner[position]]
        source = split_file(data.files, split, data.data_dir)
        count = int((~first & (owner == owner[position])).sum())
        if len(splits) == 1:
            raise DataError(
                f"{source}: {count:,} duplicated {split} id(s), e.g. {dup!r}: each row must have "
                f"its own id. {_FIX}."
            )
        raise DataError(
            f"{source}: {count:,} {split} id(s) are also {splits[0]} ids, e.g. {dup!r}: the splits "
            f"overlap. {_FIX}."
        )


def fixed_width_bytes(strings: object) -> np.ndarray | None:
    """Arrow strings (an Arrow array, or a pandas array or Index over one) as a numpy
    ``S<width>`` view of their buffers, chunks concatenated, when every value has the same
    non-zero length and none is missing (Numerai's ids: 16 characters); else None."""
    try:
        arrow = pa.array(strings.array if isinstance(strings, pd.Index) else strings)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    parts, width = [], None
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return None
        if chunk.null_count:
            return None
        if len(chunk) == 0:
            continue
        kind = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=kind)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        lengths = np.diff(offsets)
        w = int(lengths[0])
        if w == 0 or (width is not None and w != width) or (lengths != w).any():
            return None
        width = w
        raw = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        parts.append(raw.view(f"S{w}"))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype="S1")


def _all_unique(frames: list) -> bool:
    """Whether no id appears twice in ``frames``' indexes taken together.

    Fixed-width ids (:func:`fixed_width_bytes`) are checked by sorting one bytes copy of them
    (16 bytes an id), not through pandas' hash table, which for Arrow-backed strings makes a
    Python string per id first (about 100 bytes an id, 300 MiB at v5's 2.9M rows).
    """
    views = [fixed_width_bytes(f.index) for f in frames]
    if any(v is None for v in views) or len({v.dtype for v in views if len(v)}) > 1:
        return bool(frames[0].index.append([f.index for f in frames[1:]]).is_unique)
    every = np.concatenate([v for v in views if len(v)] or [np.empty(0, dtype="S1")])
    every.sort()
    return not bool((every[1:] == every[:-1]).any())


def check_loaded(data: NumeraiData) -> None:
    """Raise :class:`DataError` naming the file and the fix when ``data`` (a freshly loaded
    :class:`~nbutils.data.layout.NumeraiData`) has no features, an empty split, targets outside
    [0, 1], duplicated ids or null eras (module docstring)."""
    _check_features(data)
    _check_rows(data)
    _check_targets(data)
    _check_ids_and_eras(data)
