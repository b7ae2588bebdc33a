"""The two dataset layouts on disk: file names, :class:`NumeraiData`, finding a dataset, feature sets.

Shared by the loader, the writers, the downloader and the Dask engine (design.md, "Data model";
docs/data.md has the details):

- **v5**: ``<data_dir>/<version>/train.parquet, validation.parquet, live.parquet, features.json,
  validation_example_preds.parquet, live_example_preds.parquet, meta_model.parquet,
  {train,validation,live}_benchmark_models.parquet`` (the names of Numerai's v5.2 and v5.3
  releases; the synthetic data also writes the two example-prediction CSV copies Numerai lists);
- **legacy** (the tutorial's 2021 files): ``<data_dir>/numerai_dataset_<round>/
  numerai_training_data.csv, numerai_tournament_data.csv, example_predictions.csv``.

Feature sets: v5 reads them from ``features.json`` (checked by :func:`check_features_json`);
legacy derives them from the names ``feature_<group><n>`` (:func:`legacy_feature_sets`): small is
the first quarter of each group (rounded up), medium the first half.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nbutils.checks import check_int
from nbutils.errors import DataError
from nbutils.util import natural_key, natural_sorted, read_json


@dataclass
class NumeraiData:
    """Everything ``load_data`` returns (design.md, "Data model").

    ``train``, ``validation`` and ``live`` are indexed by ``id`` (str) and hold ``era`` (str),
    ``data_type`` (str), the feature columns (int8 0..4 by default), ``target`` (float 0..1,
    NaN where unknown) and any auxiliary targets.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    live: pd.DataFrame
    features: list[str]
    feature_groups: dict[str, list[str]]
    targets: list[str]
    example_predictions: pd.Series | None = None
    meta_model: pd.Series | None = None
    #: Numerai's benchmark models by split ("train", "validation", "live"): a DataFrame indexed by
    #: ``id`` with ``era`` and one float column per model (e.g. ``v53_lgbm_ender20``); only the
    #: splits whose ``<split>_benchmark_models.parquet`` exists (v5 only)
    benchmark_models: dict[str, pd.DataFrame] = field(default_factory=dict)
    layout: str = "v5"
    version: str = ""
    round: int | None = None
    data_dir: Path | None = None
    feature_sets: dict[str, list[str]] = field(default_factory=dict)
    #: the files the data came from, by role ("train", "validation", "live", "features", ...)
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# File names shared by the generator, the loader, the downloader and the Dask engine
# --------------------------------------------------------------------------------------------

#: The six feature groups of the 2021 data (and of the synthetic data, in both layouts).
GROUPS: tuple[str, ...] = (
    "intelligence",
    "wisdom",
    "charisma",
    "dexterity",
    "strength",
    "constitution",
)
#: Feature sets of a v5 ``features.json`` that are feature groups: the six of 2021 and the six
#: v5 added (docs/data.md, "Today's release").
V5_GROUP_SETS: tuple[str, ...] = (
    *GROUPS,
    "agility",
    "serenity",
    "sunshine",
    "rain",
    "midnight",
    "faith",
)
#: Feature sets of a v5 ``features.json`` that are neither sizes nor groups: the features
#: equivalent to older releases, and (v5.3) the "quantum" features new in v5.3.
V5_OTHER_SETS: tuple[str, ...] = (
    "v2_equivalent_features",
    "v3_equivalent_features",
    "fncv3_features",
)
V5_NEW_SETS: dict[str, tuple[str, ...]] = {"v5.3": ("quantum",)}

#: The v5 versions the synthetic data mirrors, newest first: Numerai's latest release and the one
#: before it (the default is the latest).
V5_VERSIONS: tuple[str, ...] = ("v5.3", "v5.2")

V5_FILES: dict[str, str] = {
    "train": "train.parquet",
    "validation": "validation.parquet",
    "live": "live.parquet",
    "features": "features.json",
    "validation_example_preds": "validation_example_preds.parquet",
    "live_example_preds": "live_example_preds.parquet",
    "meta_model": "meta_model.parquet",
    "train_benchmark_models": "train_benchmark_models.parquet",
    "validation_benchmark_models": "validation_benchmark_models.parquet",
    "live_benchmark_models": "live_benchmark_models.parquet",
}
#: CSV copies of the example predictions that Numerai also lists (written by the synthetic
#: generator and served by the test stand-in; nbutils reads and downloads the parquet files).
V5_CSV_FILES: dict[str, str] = {
    "validation_example_preds_csv": "validation_example_preds.csv",
    "live_example_preds_csv": "live_example_preds.csv",
}
#: The splits that have a ``<split>_benchmark_models.parquet``.
BENCHMARK_SPLITS: tuple[str, ...] = ("train", "validation", "live")
LEGACY_FILES: dict[str, str] = {
    "train": "numerai_training_data.csv",
    "tournament": "numerai_tournament_data.csv",
    "example_predictions": "example_predictions.csv",
}
#: The ``data_type`` values of each split in the legacy files (``live`` is the tutorial's "test").
LEGACY_DATA_TYPES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "validation": ("validation",),
    "live": ("test", "live"),
}
LEGACY_DIR_PREFIX = "numerai_dataset_"
MAIN_TARGET = "target"
#: The named target that ``target`` is an alias of in v5.2 and v5.3 (same values).
MAIN_TARGET_ALIAS = "target_ender_20"
#: The target names of the synthetic v5 data (real v5 has twenty); ``ender`` is the main one.
TARGET_NAMES: tuple[str, ...] = ("agnes", "cyrusd", "ender", "teager2b")
#: Every named target of the synthetic v5 data, 20- and 60-day, in features.json's order.
NAMED_TARGETS: tuple[str, ...] = tuple(
    f"target_{name}_{days}" for name in TARGET_NAMES for days in (20, 60)
)
#: The auxiliary targets: every named target but the one ``target`` is an alias of.
AUX_TARGETS: tuple[str, ...] = tuple(t for t in NAMED_TARGETS if t != MAIN_TARGET_ALIAS)
META_MODEL_COL = "numerai_meta_model"
PREDICTION_COL = "prediction"
DEFAULT_V5_VERSION = V5_VERSIONS[0]
#: The benchmark model the example predictions come from (Numerai's INTEGRATION_TEST model,
#: "now v5_lgbm_ct_blend": a 50/50 blend of the cyrusd and teager2b 20-day models).
EXAMPLE_BENCHMARK = "v5_lgbm_ct_blend"
DEFAULT_LEGACY_ROUND = 280
#: Hidden file in a downloaded version directory: the round each file was fetched in.
MANIFEST_NAME = ".nbutils_manifest.json"

V5_DIR = re.compile(r"^v\d+(\.\d+)*$")
LEGACY_DIR = re.compile(rf"^{LEGACY_DIR_PREFIX}(\d+)$")
_LEGACY_FEATURE = re.compile(r"^feature_([a-z]+?)(\d+)$")


def benchmark_prefix(version: str) -> str:
    """The prefix of a version's benchmark columns: ``v5.3`` -> ``v53``, ``v5.0`` -> ``v5``."""
    major, _, minor = version.lstrip("v").partition(".")
    return f"v{major}" if minor in ("", "0") else f"v{major}{minor.replace('.', '')}"


def benchmark_columns(version: str) -> tuple[str, ...]:
    """The benchmark model columns of the synthetic ``<split>_benchmark_models.parquet``.

    LightGBM models of the version's data named ``<prefix>_lgbm_<target><days>`` (v5.3:
    ``v53_lgbm_ender20``...) and :data:`EXAMPLE_BENCHMARK`, the model the example predictions
    come from (the same values as ``*_example_preds.parquet``).
    """
    prefix = benchmark_prefix(version)
    return (
        f"{prefix}_lgbm_cyrusd20",
        f"{prefix}_lgbm_ender20",
        f"{prefix}_lgbm_teager2b20",
        f"{prefix}_lgbm_ender60",
        EXAMPLE_BENCHMARK,
    )


# --------------------------------------------------------------------------------------------
# Errors about files, shared by the loader and the downloader
# --------------------------------------------------------------------------------------------


def missing_file(path: Path, what: str) -> DataError:
    """The error for a file of the dataset that is not there."""
    return DataError(
        f"{what} file {path} is missing: download the dataset again (download_numerai_data) or "
        "rebuild it (make_synthetic_dataset)"
    )


def corrupt(path: Path, err: BaseException) -> DataError:
    """The error for a file that cannot be read (truncated, corrupt, wrong format)."""
    kind = "parquet" if path.suffix == ".parquet" else path.suffix.lstrip(".")
    return DataError(
        f"{path} is not a readable {kind} file ({type(err).__name__}: {err}); it may be truncated "
        "or corrupt: delete it and download it again (download_numerai_data) or rebuild the "
        "dataset (make_synthetic_dataset)"
    )


def check_era_step(era_step: object) -> int:
    """``era_step`` (keep every n-th training era) as an int after checking it is >= 1."""
    return check_int(era_step, "era_step", 1, error=DataError)


# --------------------------------------------------------------------------------------------
# Feature sets shared by both layouts
# --------------------------------------------------------------------------------------------


def feature_sets_by_rule(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """small = the first quarter of each group (rounded up), medium = the first half, all, groups.

    ``groups`` maps each group to its features in their own order (legacy: by number).
    """
    sets: dict[str, list[str]] = {"small": [], "medium": [], "all": []}
    for group, members in groups.items():
        sets["small"].extend(members[: math.ceil(len(members) / 4)])
        sets["medium"].extend(members[: math.ceil(len(members) / 2)])
        sets["all"].extend(members)
        sets[group] = list(members)
    return sets


def legacy_feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """Feature sets of the legacy layout, from the column names ``feature_<group><n>``.

    Groups come from the names; within a group features are ordered by ``n``. ``small`` is the
    first quarter (rounded up) of each group, ``medium`` the first half, ``all`` every feature in
    file order, plus one set per group.
    """
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in columns:
        match = _LEGACY_FEATURE.match(name)
        if match:
            groups.setdefault(match.group(1), []).append((int(match.group(2)), name))
    ordered = {g: [name for _, name in sorted(members)] for g, members in groups.items()}
    sets = feature_sets_by_rule(ordered)
    sets["all"] = [c for c in columns if c.startswith("feature_")]
    return sets


def _is_name_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_features_json(meta: object, source: str | os.PathLike) -> dict[str, Any]:
    """``meta`` (the parsed ``features.json``) after checking its shape.

    ``feature_sets`` must map set names to lists of column names, and ``targets`` (optional) must
    be a list of column names; anything else raises :class:`DataError` naming ``source`` and the key.
    """
    hint = "download the file again (download_numerai_data) or rebuild the dataset"
    if not isinstance(meta, dict) or not isinstance(meta.get("feature_sets"), dict):
        raise DataError(f"{source} has no 'feature_sets' object: {hint}")
    bad = [str(k) for k, v in meta["feature_sets"].items() if not _is_name_list(v)]
    if bad:
        raise DataError(
            f"{source}: feature set(s) {bad[:5]} are not lists of column names "
            f'(e.g. "all": ["feature_a", ...]): {hint}'
        )
    if "targets" in meta and not _is_name_list(meta["targets"]):
        raise DataError(
            f'{source}: "targets" is not a list of column names (e.g. ["target", ...]): {hint}'
        )
    return meta


# --------------------------------------------------------------------------------------------
# Finding a dataset
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetDir:
    """A dataset directory found on disk: its layout, path, version name and round."""

    layout: str
    path: Path
    version: str
    round: int | None


def _is_v5_dir(path: Path) -> bool:
    return (path / V5_FILES["train"]).exists() or (path / V5_FILES["features"]).exists()


def _is_legacy_dir(path: Path) -> bool:
    return (path / LEGACY_FILES["train"]).exists() or (path / LEGACY_FILES["tournament"]).exists()


def _manifest_round(path: Path) -> int | None:
    try:
        value = read_json(path / MANIFEST_NAME).get("round")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) else None


def _describe(path: Path, layout: str) -> DatasetDir:
    if layout == "v5":
        return DatasetDir("v5", path, path.name, _manifest_round(path))
    match = LEGACY_DIR.match(path.name)
    return DatasetDir("legacy", path, path.name, int(match.group(1)) if match else None)


def find_dataset(data_dir: str | os.PathLike) -> tuple[str, Path]:
    """The layout ("v5" or "legacy") and directory of the dataset at or under ``data_dir``.

    ``data_dir`` may be the version/round directory itself or its parent. Under a parent, the
    newest v5 version (natural order: v5.10 after v5.2) wins; without one, the highest legacy round.
    """
    found = locate_dataset(Path(data_dir))
    return found.layout, found.path


def locate_dataset(root: Path) -> DatasetDir:
    """:func:`find_dataset` with the version and round as well."""
    if not root.is_dir():
        raise DataError(
            f"data directory {root} does not exist: build one with make_synthetic_dataset({str(root)!r}) "
            "or download one with download_numerai_data"
        )
    if _is_v5_dir(root):
        return _describe(root, "v5")
    if _is_legacy_dir(root):
        return _describe(root, "legacy")
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    v5 = natural_sorted(p.name for p in subdirs if V5_DIR.match(p.name) and _is_v5_dir(p))
    if v5:
        return _describe(root / v5[-1], "v5")
    legacy = [p for p in subdirs if LEGACY_DIR.match(p.name) and _is_legacy_dir(p)]
    if legacy:
        newest = max(legacy, key=lambda p: natural_key(p.name))
        return _describe(newest, "legacy")
    raise DataError(
        f"no Numerai dataset in {root}: expected {V5_FILES['train']} and {V5_FILES['features']} in "
        f"{root} or in a version directory such as {root / DEFAULT_V5_VERSION}, or "
        f"{LEGACY_FILES['train']} in {root / (LEGACY_DIR_PREFIX + '<round>')}. Build one with "
        "make_synthetic_dataset or download one with download_numerai_data."
    )
