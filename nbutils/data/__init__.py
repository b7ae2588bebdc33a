"""Step 2A: the data. Dataset layouts, the synthetic generator, download through numerapi, loading.

The package is at the bottom of nbutils: it imports only ``nbutils.errors``, ``nbutils.util`` and
``nbutils.checks``. Its modules, in the order data flows:

- :mod:`~nbutils.data.layout`: file names of both layouts, :class:`NumeraiData`,
  :func:`find_dataset`, feature sets, the ``era_step`` check;
- :mod:`~nbutils.data.synthetic`: sizes, the statistical model, the plan, era generation;
- :mod:`~nbutils.data.write`: the v5 and legacy writers and :func:`make_synthetic_dataset`;
- :mod:`~nbutils.data.download`: :func:`download_numerai_data` (numerapi, timeouts, verification);
- :mod:`~nbutils.data.values`: feature values, checked and converted to int8 bins;
- :mod:`~nbutils.data.validate`: the whole-dataset checks after loading (empty splits, target range, ids, eras);
- :mod:`~nbutils.data.load`: :func:`load_data` and the parquet and CSV readers;
- :mod:`~nbutils.data.plan`: :func:`plan_memory` and :func:`check_memory`, the peak memory of
  loading and training predicted from ``features.json`` and the parquet footers, before loading.

Every name that notebooks, tests, benchmarks and other modules imported from the former
``nbutils/data.py`` is importable from ``nbutils.data`` as before.
"""

from nbutils.data.download import (
    DEFAULT_TIMEOUT,
    LIVE_FILES,
    ON_REQUEST_FILES,
    V5_DOWNLOAD_FILES,
    download_numerai_data,
    verify_download,
)
from nbutils.data.layout import (
    AUX_TARGETS,
    BENCHMARK_SPLITS,
    DEFAULT_LEGACY_ROUND,
    DEFAULT_V5_VERSION,
    EXAMPLE_BENCHMARK,
    GROUPS,
    LEGACY_DATA_TYPES,
    LEGACY_DIR_PREFIX,
    LEGACY_FILES,
    MAIN_TARGET,
    MAIN_TARGET_ALIAS,
    MANIFEST_NAME,
    META_MODEL_COL,
    NAMED_TARGETS,
    PREDICTION_COL,
    V5_CSV_FILES,
    V5_FILES,
    V5_GROUP_SETS,
    V5_VERSIONS,
    NumeraiData,
    benchmark_columns,
    check_era_step,
    check_features_json,
    find_dataset,
    legacy_feature_sets,
)
from nbutils.data.load import load_data, read_features_json
from nbutils.data.plan import (
    Headroom,
    MemoryPlan,
    available_memory,
    check_fits,
    check_memory,
    memory_headroom,
    plan_memory,
    smaller_choices,
)
from nbutils.data.synthetic import TINY_SIZES, SyntheticModel, SyntheticSizes
from nbutils.data.values import check_int_bins, to_int8_bins
from nbutils.data.write import GENERATOR_VERSION, SYNTHETIC_MARKER, make_synthetic_dataset

__all__ = [
    "AUX_TARGETS",
    "BENCHMARK_SPLITS",
    "EXAMPLE_BENCHMARK",
    "MAIN_TARGET_ALIAS",
    "NAMED_TARGETS",
    "ON_REQUEST_FILES",
    "V5_CSV_FILES",
    "V5_VERSIONS",
    "benchmark_columns",
    "DEFAULT_LEGACY_ROUND",
    "DEFAULT_TIMEOUT",
    "DEFAULT_V5_VERSION",
    "GENERATOR_VERSION",
    "GROUPS",
    "LEGACY_DATA_TYPES",
    "LEGACY_DIR_PREFIX",
    "LEGACY_FILES",
    "LIVE_FILES",
    "MAIN_TARGET",
    "MANIFEST_NAME",
    "META_MODEL_COL",
    "MemoryPlan",
    "PREDICTION_COL",
    "SYNTHETIC_MARKER",
    "TINY_SIZES",
    "V5_DOWNLOAD_FILES",
    "V5_FILES",
    "V5_GROUP_SETS",
    "NumeraiData",
    "SyntheticModel",
    "SyntheticSizes",
    "Headroom",
    "available_memory",
    "check_era_step",
    "check_features_json",
    "check_fits",
    "check_memory",
    "memory_headroom",
    "check_int_bins",
    "download_numerai_data",
    "find_dataset",
    "legacy_feature_sets",
    "load_data",
    "make_synthetic_dataset",
    "plan_memory",
    "read_features_json",
    "smaller_choices",
    "to_int8_bins",
    "verify_download",
]
