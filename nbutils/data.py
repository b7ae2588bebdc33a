"""Step 2A: the data. Dataset layouts, the synthetic generator, download through numerapi, loading.

This module is at the bottom of nbutils: it imports only ``nbutils.errors`` and ``nbutils.util``
(and ``nbutils.keys``, which imports nothing from nbutils, when it downloads).

Two layouts on disk (DESIGN.md, "Data model"; docs/data.md has the details):

- **v5**: ``<data_dir>/<version>/train.parquet, validation.parquet, live.parquet, features.json,
  validation_example_preds.parquet, live_example_preds.parquet, meta_model.parquet``;
- **legacy** (the tutorial's 2021 files): ``<data_dir>/numerai_dataset_<round>/
  numerai_training_data.csv, numerai_tournament_data.csv, example_predictions.csv``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nbutils.errors import DataError, DownloadError
from nbutils.util import atomic_path, natural_key, natural_sorted, read_json, write_json


@dataclass
class NumeraiData:
    """Everything ``load_data`` returns (DESIGN.md, "Data model").

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
    layout: str = "v5"
    version: str = ""
    round: int | None = None
    data_dir: Path | None = None
    feature_sets: dict[str, list[str]] = field(default_factory=dict)
    #: the files the data came from, by role ("train", "validation", "live", "features", ...)
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Layouts: names shared by the generator, the loader and the downloader
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
#: Feature sets of a v5 ``features.json`` that are feature groups (real v5 has five more).
V5_GROUP_SETS: tuple[str, ...] = (*GROUPS, "agility", "serenity", "sunshine", "rain", "midnight")

V5_FILES: dict[str, str] = {
    "train": "train.parquet",
    "validation": "validation.parquet",
    "live": "live.parquet",
    "features": "features.json",
    "validation_example_preds": "validation_example_preds.parquet",
    "live_example_preds": "live_example_preds.parquet",
    "meta_model": "meta_model.parquet",
}
LEGACY_FILES: dict[str, str] = {
    "train": "numerai_training_data.csv",
    "tournament": "numerai_tournament_data.csv",
    "example_predictions": "example_predictions.csv",
}
LEGACY_DIR_PREFIX = "numerai_dataset_"
MAIN_TARGET = "target"
#: Auxiliary targets of the synthetic v5 data: the same "name" at a 20- and a 60-day horizon.
AUX_TARGETS: tuple[str, ...] = ("target_agnes_20", "target_agnes_60")
META_MODEL_COL = "numerai_meta_model"
PREDICTION_COL = "prediction"
DEFAULT_V5_VERSION = "v5.2"
DEFAULT_LEGACY_ROUND = 280
#: Hidden file in a downloaded version directory: the round each file was fetched in.
MANIFEST_NAME = ".nbutils_manifest.json"

_V5_DIR = re.compile(r"^v\d+(\.\d+)*$")
_LEGACY_DIR = re.compile(rf"^{LEGACY_DIR_PREFIX}(\d+)$")
_LEGACY_FEATURE = re.compile(r"^feature_([a-z]+?)(\d+)$")


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message, flush=True)


# --------------------------------------------------------------------------------------------
# The synthetic generator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSizes:
    """Sizes of a synthetic dataset (keyword arguments of :func:`make_synthetic_dataset`).

    The default (60 000 train rows x 60 features, 32 000 validation rows) lets the six-notebook
    chain run in about a minute on two cores; :data:`TINY_SIZES` is what the tests use.
    """

    n_train_eras: int = 30
    n_validation_eras: int = 16
    n_test_eras: int = 2  # legacy layout only: the tournament file's "test" eras
    rows_per_era: int = 2000
    n_live: int = 2000  # rows of the single live era
    n_features: int = 60

    def check(self) -> None:
        """Raise :class:`DataError` unless every size is a sensible positive integer."""
        minimum = {
            "n_train_eras": 2,
            "n_validation_eras": 2,
            "n_test_eras": 0,
            "rows_per_era": 20,
            "n_live": 5,
            "n_features": 12,
        }
        for item in fields(self):
            value = getattr(self, item.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | np.integer)
                or value < minimum[item.name]
            ):
                raise DataError(
                    f"synthetic size {item.name}={value!r} is invalid: give an integer >= "
                    f"{minimum[item.name]}"
                )
        if self.rows_per_era >= 2**20 or self.n_live >= 2**20:
            raise DataError(
                "rows_per_era and n_live must be below 1,048,576: use more eras instead"
            )


#: Sizes for tests: builds in well under a second.
TINY_SIZES: dict[str, int] = {
    "n_train_eras": 12,
    "n_validation_eras": 6,
    "n_test_eras": 2,
    "rows_per_era": 60,
    "n_live": 40,
    "n_features": 18,
}


@dataclass(frozen=True)
class SyntheticModel:
    """The knobs of the synthetic data's statistical model (docs/data.md explains each).

    The continuous target of era ``e`` is ``y = s_e(x) / scale + noise * eps`` where ``s_e`` adds
    five parts on the centred feature bins ``x = (bin - 2) / sqrt(2)``:

    - nonlinear: ``a_j (1 + weight_drift * u_ej) * (x_j**2 - 1) / sqrt(0.7)`` (U-shaped effects);
    - interactions: ``b_k (1 + weight_drift * u_ek) * x_p * x_q``;
    - linear: ``linear_weight * c_j (1 + weight_drift * u_ej) * x_j`` (small: a stable linear
      signal is what neutralization would throw away);
    - group dispersion: ``group_weight * (+1, -1)`` times the row std of the bins of feature
      groups 0 and 1, standardized within the era (what notebook 02's group ``std`` measures);
    - risky: ``d_j (risk_mean + r_ej) * x_j`` with ``r_ej`` AR(1) regimes over the eras
      (``risk_persistence``, mostly shared: ``risk_shared``), standardized within each split,
      so these features' correlation with the target flips sign between eras (feature risk).
      Their mean weight ``risk_mean`` is small next to the regime's sd of 1: a model that learns
      them gains a little mean and a lot of era-to-era variance, so neutralization (which removes
      every linear exposure) lowers the mean a little and raises Sharpe; the nonlinear,
      interaction and group-dispersion parts survive it.

    ``scale`` makes the signal's sd about 1; ``eps`` is standard normal.
    The target is ``y`` binned per era into 0, 0.25, 0.5, 0.75, 1 at 5/20/50/20/5 percent.
    """

    group_corr: float = 0.3  # share of a feature's latent variance that its group shares
    signal_fraction: float = 0.2  # share of the features the target depends on
    noise: float = 6.0  # sd of the target's noise relative to the signal's sd
    weight_drift: float = 0.35  # era-to-era relative sd of the stable weights
    linear_weight: float = 0.3  # size of the stable linear weights relative to the others
    risk_weight: float = 2.0  # size of the risky features' weights relative to the others
    group_weight: float = 0.6  # weight of each of the first two groups' row dispersion (02's std)
    risk_mean: float = 0.3  # mean of the risky features' era multiplier (risk_mean + r_e)
    risk_persistence: float = 0.7  # AR(1) coefficient of the regime r_e from era to era
    risk_shared: float = 0.8  # share of the regime shocks common to all risky features
    aux_noise_corr_20: float = 0.6  # target_agnes_20: correlation of its noise with target's
    aux_noise_corr_60: float = 0.35  # target_agnes_60: the same, lower for the longer horizon
    meta_noise: float = 2.0  # sd of the meta model's noise relative to the signal's sd
    example_features: int = 4  # linear and risky features (each) the example model may use
    example_squares: int = 1  # U-shaped features whose square the example model may use


# Era kinds in the random-stream keys: train/validation/test eras share one numbering, live differs.
_KIND_ERA, _KIND_LIVE = 1, 2
_ID_MASK = np.uint64((1 << 60) - 1)
_WORDS_ADJ = tuple(
    (  # noqa: SIM905 - a word list reads better as text
        "abating ablaze abstract agile airy amber ancient arid astral azure balmy bold "
        "brisk bronze calm candid cobalt coral cosmic crisp dapper dusky eager early "
        "elfin fallow feral fickle floral frosty gentle gilded glassy hazy humble icy "
        "idle jovial keen lanky lunar mellow misty nimble noble oaken opal pallid placid "
        "quaint rapid rustic sable serene silken solar stout sultry tawny tidal umber "
        "vapid verdant wintry witty zesty"
    ).split()
)
_WORDS_NOUN = tuple(
    (  # noqa: SIM905 - a word list reads better as text
        "acorn anvil arbor atlas badger beacon birch bramble canyon cedar comet "
        "cormorant crater delta dune ember falcon fjord garnet glacier grove harbor "
        "heron island jasper juniper kestrel lagoon lantern ledger magnet marble meadow "
        "nebula orchid otter pebble quarry quill raven reef saddle sapphire spindle "
        "tundra valley vessel walrus willow yarrow zephyr"
    ).split()
)


@dataclass(frozen=True)
class _Plan:
    """Everything about a synthetic dataset that does not depend on the era."""

    sizes: SyntheticSizes
    model: SyntheticModel
    seed: int
    group_of: np.ndarray  # (F,) group index of each feature, features in group-major order
    number_in_group: np.ndarray  # (F,) 1-based number within the group (legacy names)
    v5_names: list[str]  # opaque v5 name of each feature
    v5_order: np.ndarray  # permutation: v5 column order
    nl: np.ndarray
    nl_w: np.ndarray
    pairs: np.ndarray  # (P, 2)
    pair_w: np.ndarray
    lin: np.ndarray
    lin_w: np.ndarray
    risk: np.ndarray
    risk_w: np.ndarray
    group_w: np.ndarray  # (2,) weights of the row dispersion of groups 0 and 1
    drift: np.ndarray  # (n_labels + 1, n_nl + n_pairs + n_lin): era multipliers of stable weights
    regime: np.ndarray  # (n_labels + 1, n_risk): r_ej, centred within each split
    scale: float

    @property
    def n_features(self) -> int:
        return self.sizes.n_features

    @property
    def legacy_names(self) -> list[str]:
        return [
            f"feature_{GROUPS[g]}{n}"
            for g, n in zip(self.group_of, self.number_in_group, strict=True)
        ]

    def design_columns(self) -> int:
        m = self.model
        return (
            1
            + len(self.lin[: m.example_features])
            + len(self.risk[: m.example_features])
            + len(self.nl[: m.example_squares])
        )


def _split_groups(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Group index and 1-based number of each feature: six contiguous, near-equal groups."""
    group_of = np.empty(n_features, dtype=np.int64)
    number = np.empty(n_features, dtype=np.int64)
    for g, block in enumerate(np.array_split(np.arange(n_features), len(GROUPS))):
        group_of[block] = g
        number[block] = np.arange(1, len(block) + 1)
    return group_of, number


def _opaque_names(n_features: int) -> list[str]:
    """``feature_<adjective>_<adjective>_<noun>`` names, fixed for a given ``n_features``.

    Drawn from their own random stream (not the data seed), so every seed has the same columns.
    """
    na, nn = len(_WORDS_ADJ), len(_WORDS_NOUN)
    rng = np.random.default_rng([20210, n_features])
    picks = rng.choice(na * na * nn, size=n_features * 2, replace=False)
    names: list[str] = []
    for code in picks:
        a1, rest = divmod(int(code), na * nn)
        a2, noun = divmod(rest, nn)
        if a1 != a2:
            names.append(f"feature_{_WORDS_ADJ[a1]}_{_WORDS_ADJ[a2]}_{_WORDS_NOUN[noun]}")
        if len(names) == n_features:
            return names
    raise DataError(f"n_features={n_features} is too large for the synthetic name generator")


def _n_labels(sizes: SyntheticSizes) -> int:
    """Era numbers used: train, gap of 4, validation, test (legacy), live (v5 only)."""
    return sizes.n_train_eras + 4 + sizes.n_validation_eras + max(sizes.n_test_eras, 1)


def _regimes(
    rng: np.random.Generator, sizes: SyntheticSizes, n_risk: int, phi: float, shared: float
) -> np.ndarray:
    """One AR(1) regime per risky feature over the era numbers, standardized within each split.

    ``r_ej = phi * r_(e-1)j + sqrt(1 - phi**2) * eta_ej`` where the shocks
    ``eta_ej = sqrt(shared) * c_e + sqrt(1 - shared) * o_ej`` share a common part ``c_e``, so the
    risky features tend to flip together (an era-level risk factor). Standardizing (mean 0,
    sd 1) within train, within validation and within the eras after it keeps each split's
    average weight at ``risk_mean`` and its swings the same size for every seed: signs flip
    from era to era, never as a shift between train and validation that a seed could make large.
    """
    n_labels = _n_labels(sizes)
    common, own = (
        rng.standard_normal((n_labels + 1, 1)),
        rng.standard_normal((n_labels + 1, n_risk)),
    )
    shocks = math.sqrt(shared) * common + math.sqrt(1 - shared) * own
    regime = np.empty_like(shocks)
    regime[0] = shocks[0]
    for e in range(1, n_labels + 1):
        regime[e] = phi * regime[e - 1] + math.sqrt(1 - phi * phi) * shocks[e]
    first_val = sizes.n_train_eras + 5
    after_val = first_val + sizes.n_validation_eras
    for lo, hi in ((1, sizes.n_train_eras + 1), (first_val, after_val), (after_val, n_labels + 1)):
        if hi - lo >= 2:
            segment = regime[lo:hi]
            regime[lo:hi] = (segment - segment.mean(axis=0)) / segment.std(axis=0)
    return regime


def _make_plan(sizes: SyntheticSizes, model: SyntheticModel, seed: int) -> _Plan:
    """Draw the roles and weights of the features and the era-level drift (stream ``[seed, 0]``)."""
    rng = np.random.default_rng([seed, 0])
    n_feat = sizes.n_features
    group_of, number = _split_groups(n_feat)
    k = max(6, round(model.signal_fraction * n_feat))
    q = max(1, k // 4)
    n_nl, n_pair, n_lin = q, 2 * max(1, q // 2), q
    n_risk = max(1, k - n_nl - n_pair - n_lin)
    perm = rng.permutation(n_feat)
    cuts = np.cumsum([n_nl, n_pair, n_lin, n_risk])
    nl, pair_feats, lin, risk = np.split(perm[: cuts[-1]], cuts[:-1])

    def weights(n: int, size: float = 1.0) -> np.ndarray:
        return size * rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.6, 1.2, size=n)

    nl_w, pair_w, lin_w = weights(n_nl), weights(n_pair // 2), weights(n_lin, model.linear_weight)
    risk_w = weights(n_risk, model.risk_weight)
    n_labels = _n_labels(sizes)
    n_stable = n_nl + n_pair // 2 + n_lin
    drift = 1.0 + model.weight_drift * rng.standard_normal((n_labels + 1, n_stable))
    regime = _regimes(rng, sizes, n_risk, model.risk_persistence, model.risk_shared)
    stable_var = (1 + model.weight_drift**2) * (
        np.sum(nl_w**2) + np.sum(pair_w**2) + np.sum(lin_w**2)
    )
    risk_var = (model.risk_mean**2 + 1) * np.sum(risk_w**2)
    group_w = model.group_weight * np.array([1.0, -1.0])
    names = _opaque_names(n_feat)
    order = np.random.default_rng([20210, n_feat, 1]).permutation(n_feat)
    return _Plan(
        sizes=sizes,
        model=model,
        seed=seed,
        group_of=group_of,
        number_in_group=number,
        v5_names=names,
        v5_order=order,
        nl=nl,
        nl_w=nl_w,
        pairs=pair_feats.reshape(-1, 2),
        pair_w=pair_w,
        lin=lin,
        lin_w=lin_w,
        risk=risk,
        risk_w=risk_w,
        group_w=group_w,
        drift=drift,
        regime=regime,
        scale=float(math.sqrt(stable_var + risk_var + np.sum(group_w**2))),
    )


def _era_rng(plan: _Plan, kind: int, label: int) -> np.random.Generator:
    """The era's own random stream: eras do not depend on each other or on the layout."""
    return np.random.default_rng([plan.seed, kind, label])


def _row_ids(plan: _Plan, kind: int, label: int, n: int) -> np.ndarray:
    """Unique opaque ids ``n`` + 15 hex digits: a bijective 60-bit mix of (kind, era, row)."""
    with np.errstate(over="ignore"):
        x = (np.uint64(kind) << np.uint64(40)) + (np.uint64(label) << np.uint64(20))
        x = x + np.arange(n, dtype=np.uint64)
        x = (x + np.uint64((plan.seed * 0x9E3779B97F4A7C15) & ((1 << 60) - 1))) & _ID_MASK
        x = (x * np.uint64(0xBF58476D1CE4E5B9)) & _ID_MASK
        x ^= x >> np.uint64(31)
        x = (x * np.uint64(0x94D049BB133111EB)) & _ID_MASK
        x ^= x >> np.uint64(29)
    return x


def _format_ids(codes: np.ndarray) -> np.ndarray:
    return np.array([f"n{int(c):015x}" for c in codes], dtype=object)


def _equal_frequency_bins(latent: np.ndarray) -> np.ndarray:
    """Per row of ``latent`` (features x rows), bins 0..4 of equal frequency: ``rank * 5 // n``.

    ``rank * 5 // n >= i`` exactly when ``rank >= ceil(i * n / 5)``, so the bin is the number of
    the four order statistics ``ceil(i * n / 5)`` (found by ``np.partition``, no full sort) that
    the value reaches.
    """
    n = latent.shape[1]
    cuts = [-(-i * n // 5) for i in range(1, 5)]
    thresholds = np.partition(latent, cuts, axis=1)[:, cuts]
    bins = np.zeros(latent.shape, dtype=np.int8)
    for i in range(4):
        bins += latent >= thresholds[:, i : i + 1]
    return bins


def _era_features(plan: _Plan, rng: np.random.Generator, n: int) -> np.ndarray:
    """Feature bins of one era, shape (features, rows), int8 0..4.

    Latent ``z_f = sqrt(group_corr) * G_group(f) + sqrt(1 - group_corr) * e_f`` (standard
    normals), then five equal-frequency bins per feature within the era.
    """
    rho = plan.model.group_corr
    group_factor = rng.standard_normal((len(GROUPS), n), dtype=np.float32)
    own = rng.standard_normal((plan.n_features, n), dtype=np.float32)
    latent = math.sqrt(rho) * group_factor[plan.group_of] + math.sqrt(1 - rho) * own
    return _equal_frequency_bins(latent)


def _centred(cols: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``(bin - 2) / sqrt(2)``: the bins of features ``idx``, mean 0 and variance 1."""
    return (cols[idx].astype(np.float64) - 2.0) / math.sqrt(2.0)


def _nonlinear(x: np.ndarray) -> np.ndarray:
    """U-shaped effect ``(x**2 - 1) / sqrt(0.7)``: mean 0, variance 1 on the five bins."""
    return (x * x - 1.0) / math.sqrt(0.7)


def _era_signal(plan: _Plan, cols: np.ndarray, label: int) -> np.ndarray:
    """The noiseless target ``s_e(x) / scale`` of era ``label`` (see :class:`SyntheticModel`)."""
    drift = plan.drift[label]
    n_nl, n_pair = len(plan.nl), len(plan.pair_w)
    x_pair = _centred(cols, plan.pairs.ravel()).reshape(len(plan.pair_w), 2, -1)
    s = (plan.nl_w * drift[:n_nl]) @ _nonlinear(_centred(cols, plan.nl))
    s += (plan.pair_w * drift[n_nl : n_nl + n_pair]) @ (x_pair[:, 0] * x_pair[:, 1])
    s += (plan.lin_w * drift[n_nl + n_pair :]) @ _centred(cols, plan.lin)
    s += (plan.risk_w * (plan.model.risk_mean + plan.regime[label])) @ _centred(cols, plan.risk)
    for group, weight in enumerate(plan.group_w):
        s += weight * _group_dispersion(cols, np.flatnonzero(plan.group_of == group))
    return s / plan.scale


def _group_dispersion(cols: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row std of the features ``idx`` (a group), standardized within the era (mean 0, sd 1)."""
    spread = _centred(cols, idx).std(axis=0)
    sd = spread.std()
    return (spread - spread.mean()) / sd if sd > 0 else np.zeros_like(spread)


def _rank_pct(values: np.ndarray) -> np.ndarray:
    """``(rank + 0.5) / n`` with ranks 0..n-1 (ties broken by position): uniform on (0, 1)."""
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return (ranks + 0.5) / len(values)


def _target_bins(y: np.ndarray) -> np.ndarray:
    """Bin a continuous target within its era: 0, .25, .5, .75, 1 at 5/20/50/20/5 percent."""
    levels = np.searchsorted(np.array([0.05, 0.25, 0.75, 0.95]), _rank_pct(y), side="right")
    return (levels * 0.25).astype(np.float32)


def _era_targets(
    plan: _Plan, rng: np.random.Generator, signal: np.ndarray
) -> dict[str, np.ndarray]:
    """``target`` and the auxiliary targets of one era, from the signal plus correlated noise."""
    m = plan.model
    eps, eps20, eps60 = rng.standard_normal((3, len(signal)))
    noise20 = m.aux_noise_corr_20 * eps + math.sqrt(1 - m.aux_noise_corr_20**2) * eps20
    noise60 = m.aux_noise_corr_60 * eps + math.sqrt(1 - m.aux_noise_corr_60**2) * eps60
    return {
        MAIN_TARGET: _target_bins(signal + m.noise * eps),
        AUX_TARGETS[0]: _target_bins(signal + m.noise * noise20),
        AUX_TARGETS[1]: _target_bins(0.8 * signal + m.noise * noise60),
    }


def _design(plan: _Plan, cols: np.ndarray) -> np.ndarray:
    """The example model's inputs (rows x columns): 1, the first ``example_features`` linear and
    risky features, and the squares of the first ``example_squares`` U-shaped features."""
    m = plan.model
    parts = [
        np.ones((1, cols.shape[1])),
        _centred(cols, plan.lin[: m.example_features]),
        _centred(cols, plan.risk[: m.example_features]),
        _nonlinear(_centred(cols, plan.nl[: m.example_squares])),
    ]
    return np.ascontiguousarray(np.vstack(parts).T)


@dataclass
class _EraBlock:
    """One era of synthetic rows."""

    ids: np.ndarray  # object array of str
    id_codes: np.ndarray  # uint64, sorts like ids
    era: str
    data_type: str
    cols: np.ndarray  # (features, rows) int8
    targets: dict[str, np.ndarray] | None  # None: unknown (NaN)
    design: np.ndarray  # (rows, d) the example model's inputs
    meta: np.ndarray | None = None  # meta model (validation only)

    def __len__(self) -> int:
        return self.cols.shape[1]


def _make_era(
    plan: _Plan,
    kind: int,
    label: int,
    n: int,
    era: str,
    data_type: str,
    with_targets: bool,
    with_meta: bool = False,
) -> _EraBlock:
    """Generate one era: features, then (when known) targets, then the meta model."""
    rng = _era_rng(plan, kind, label)
    cols = _era_features(plan, rng, n)
    codes = _row_ids(plan, kind, label, n)
    targets = meta = None
    if with_targets:
        signal = _era_signal(plan, cols, label)
        targets = _era_targets(plan, rng, signal)
        if with_meta:
            meta = _rank_pct(signal + plan.model.meta_noise * rng.standard_normal(n))
    return _EraBlock(
        _format_ids(codes), codes, era, data_type, cols, targets, _design(plan, cols), meta
    )


def _era_labels(sizes: SyntheticSizes, layout: str) -> dict[str, list[tuple[int, str]]]:
    """(era number, era label) of each split; a gap of 4 era numbers between train and validation."""
    t, v, s = sizes.n_train_eras, sizes.n_validation_eras, sizes.n_test_eras
    width = max(4, len(str(_n_labels(sizes))))
    label = (lambda e: f"era{e}") if layout == "legacy" else (lambda e: f"{e:0{width}d}")
    first_val = t + 5
    first_after = first_val + v
    out = {
        "train": [(e, label(e)) for e in range(1, t + 1)],
        "validation": [(e, label(e)) for e in range(first_val, first_after)],
        "test": [(e, label(e)) for e in range(first_after, first_after + s)],
    }
    out["live"] = [(first_after, "eraX" if layout == "legacy" else label(first_after))]
    return out


def _iter_split(plan: _Plan, layout: str, split: str) -> Iterator[_EraBlock]:
    """The eras of one split, in era order."""
    sizes = plan.sizes
    for number, label in _era_labels(sizes, layout)[split]:
        if split == "live":
            yield _make_era(plan, _KIND_LIVE, number, sizes.n_live, label, "live", False)
        elif split == "test":
            yield _make_era(plan, _KIND_ERA, number, sizes.rows_per_era, label, "test", False)
        else:
            yield _make_era(
                plan,
                _KIND_ERA,
                number,
                sizes.rows_per_era,
                label,
                split,
                True,
                with_meta=split == "validation",
            )


class _ExampleModel:
    """Least squares of ``target`` on :func:`_design`, accumulated era by era over train."""

    def __init__(self, n_cols: int) -> None:
        self.xtx = np.zeros((n_cols, n_cols))
        self.xty = np.zeros(n_cols)
        self.n = 0

    def add(self, block: _EraBlock) -> None:
        assert block.targets is not None
        self.xtx += block.design.T @ block.design
        self.xty += block.design.T @ block.targets[MAIN_TARGET]
        self.n += len(block)

    def coef(self) -> np.ndarray:
        ridge = 1e-3 * self.n * np.eye(len(self.xty))
        ridge[0, 0] = 0.0
        return np.linalg.solve(self.xtx + ridge, self.xty)

    @staticmethod
    def predict(coef: np.ndarray, block: _EraBlock) -> np.ndarray:
        """The fitted values, as ranks within the era: ``(rank + 0.5) / n``."""
        return _rank_pct(block.design @ coef)


def _chunk_rows(n_features: int) -> int:
    """Rows per parquet row group / CSV batch: about 32 MB of int8 features."""
    return max(1024, (32 << 20) // max(n_features, 1))


def _chunks(blocks: Iterator[_EraBlock], n_features: int) -> Iterator[list[_EraBlock]]:
    """Group consecutive eras into chunks of about :func:`_chunk_rows` rows."""
    chunk: list[_EraBlock] = []
    rows = 0
    for block in blocks:
        chunk.append(block)
        rows += len(block)
        if rows >= _chunk_rows(n_features):
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


def _stack(chunk: list[_EraBlock]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, eras, data types (object arrays) and features (features x rows) of a chunk."""
    ids = np.concatenate([b.ids for b in chunk])
    eras = np.concatenate([np.full(len(b), b.era, dtype=object) for b in chunk])
    types = np.concatenate([np.full(len(b), b.data_type, dtype=object) for b in chunk])
    cols = np.concatenate([b.cols for b in chunk], axis=1)
    return ids, eras, types, cols


def _stacked_targets(chunk: list[_EraBlock], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each target over the chunk, NaN where unknown."""
    return {
        name: np.concatenate(
            [
                b.targets[name] if b.targets is not None else np.full(len(b), np.nan, np.float32)
                for b in chunk
            ]
        )
        for name in names
    }


# -- v5 writer ---------------------------------------------------------------------------------

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": False,
}


def _pandas_schema(columns: dict[str, str]) -> pa.Schema:
    """An Arrow schema with pandas metadata: ``id`` is the index, like Numerai's own files."""
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})
    empty.index = pd.Index([], dtype="str", name="id")
    schema = pa.Schema.from_pandas(empty, preserve_index=True)
    # pandas' metadata records the writing pandas version; drop it for byte-identical files.
    meta = json.loads(schema.metadata[b"pandas"])
    meta.pop("pandas_version", None)
    meta["creator"] = {"library": "nbutils", "version": "synthetic"}
    strings = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f for f in schema
    ]
    return pa.schema(strings, metadata={b"pandas": json.dumps(meta, sort_keys=True).encode()})


def _v5_table(schema: pa.Schema, columns: dict[str, np.ndarray]) -> pa.Table:
    arrays = []
    for f in schema:
        values = columns[f.name]
        mask = np.isnan(values) if values.dtype.kind == "f" else None
        arrays.append(pa.array(values, type=f.type, mask=mask))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(path: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> Path:
    """Write row groups atomically with fixed settings (no timestamps: same input, same bytes)."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, **_PARQUET_OPTIONS) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=max(len(table), 1))
    return path


def _v5_split_tables(
    plan: _Plan,
    split: str,
    schema: pa.Schema,
    fit: _ExampleModel | None,
    keep: list[_EraBlock] | None,
) -> Iterator[pa.Table]:
    """Tables of one v5 split; ``fit`` accumulates train, ``keep`` stores light copies of eras."""
    targets = [MAIN_TARGET, *AUX_TARGETS]
    for chunk in _chunks(_iter_split(plan, "v5", split), plan.n_features):
        for block in chunk:
            if fit is not None:
                fit.add(block)
            if keep is not None:  # all but the features and targets, for the prediction files
                keep.append(replace(block, cols=block.cols[:, :0], targets=None))
        ids, eras, types, cols = _stack(chunk)
        columns: dict[str, np.ndarray] = {"id": ids, "era": eras, "data_type": types}
        for j in plan.v5_order:
            columns[plan.v5_names[j]] = cols[j]
        columns.update(_stacked_targets(chunk, targets))
        yield _v5_table(schema, columns)


def _v5_features_json(plan: _Plan) -> dict[str, Any]:
    """``feature_sets`` (small, medium, all, one per group) and ``targets`` of features.json."""
    names = plan.v5_names
    sets = _feature_sets_by_rule(
        {g: [names[j] for j in np.flatnonzero(plan.group_of == i)] for i, g in enumerate(GROUPS)}
    )
    sets["all"] = [names[j] for j in plan.v5_order]
    order = {name: k for k, name in enumerate(sets["all"])}
    for key in ("small", "medium"):
        sets[key] = sorted(sets[key], key=order.__getitem__)
    return {"feature_sets": sets, "targets": [MAIN_TARGET, *AUX_TARGETS]}


def _write_v5(plan: _Plan, out: Path) -> None:
    feature_cols = {plan.v5_names[j]: "int8" for j in plan.v5_order}
    data_schema = _pandas_schema(
        {
            "era": "str",
            "data_type": "str",
            **feature_cols,
            **dict.fromkeys([MAIN_TARGET, *AUX_TARGETS], "float32"),
        }
    )
    fit = _ExampleModel(plan.design_columns())
    _write_parquet(
        out / V5_FILES["train"],
        data_schema,
        _v5_split_tables(plan, "train", data_schema, fit, None),
    )
    kept: dict[str, list[_EraBlock]] = {"validation": [], "live": []}
    for split in ("validation", "live"):
        tables = _v5_split_tables(plan, split, data_schema, None, kept[split])
        _write_parquet(out / V5_FILES[split], data_schema, tables)
    coef = fit.coef()
    pred_schema = _pandas_schema({PREDICTION_COL: "float64"})
    for split in ("validation", "live"):
        blocks = kept[split]
        columns = {
            "id": np.concatenate([b.ids for b in blocks]),
            PREDICTION_COL: np.concatenate([_ExampleModel.predict(coef, b) for b in blocks]),
        }
        _write_parquet(
            out / V5_FILES[f"{split}_example_preds"],
            pred_schema,
            iter([_v5_table(pred_schema, columns)]),
        )
    meta_schema = _pandas_schema({"era": "str", "data_type": "str", META_MODEL_COL: "float64"})
    blocks = kept["validation"]
    columns = {
        "id": np.concatenate([b.ids for b in blocks]),
        "era": np.concatenate([np.full(len(b.ids), b.era, dtype=object) for b in blocks]),
        "data_type": np.full(sum(len(b.ids) for b in blocks), "validation", dtype=object),
        META_MODEL_COL: np.concatenate([b.meta for b in blocks]),
    }
    _write_parquet(
        out / V5_FILES["meta_model"], meta_schema, iter([_v5_table(meta_schema, columns)])
    )
    write_json(out / V5_FILES["features"], _v5_features_json(plan))


# -- legacy writer -----------------------------------------------------------------------------


def _legacy_table(
    names: list[str],
    ids: np.ndarray,
    eras: np.ndarray,
    types: np.ndarray,
    cols: np.ndarray,
    target: np.ndarray,
) -> pa.Table:
    """A legacy CSV batch: features as 0, 0.25, ..., 1 (float32), target empty where unknown."""
    arrays = [pa.array(ids, pa.string()), pa.array(eras, pa.string()), pa.array(types, pa.string())]
    values = cols.astype(np.float32) * np.float32(0.25)
    arrays.extend(pa.array(values[j]) for j in range(len(names)))
    arrays.append(pa.array(target, pa.float32(), mask=np.isnan(target)))
    return pa.Table.from_arrays(arrays, names=["id", "era", "data_type", *names, MAIN_TARGET])


def _write_csv(path: Path, tables: Iterator[pa.Table]) -> Path:
    """Write CSV batches atomically: a plain header line, no quoting, empty cells for missing values."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = None
        try:
            for table in tables:
                if writer is None:
                    fh.write((",".join(table.column_names) + "\n").encode())
                    writer = pacsv.CSVWriter(fh, table.schema, write_options=options)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return path


def _legacy_train_tables(plan: _Plan, fit: _ExampleModel) -> Iterator[pa.Table]:
    names = plan.legacy_names
    for chunk in _chunks(_iter_split(plan, "legacy", "train"), plan.n_features):
        for block in chunk:
            fit.add(block)
        ids, eras, types, cols = _stack(chunk)
        yield _legacy_table(
            names, ids, eras, types, cols, _stacked_targets(chunk, [MAIN_TARGET])[MAIN_TARGET]
        )


def _write_legacy(plan: _Plan, out: Path) -> None:
    """Training CSV (era order), tournament CSV, example CSV.

    The tournament file holds the validation rows, then test, then live, as the 2021 files did;
    within each part the rows are sorted by id (eras interleaved), so only the file's own order
    is right for a submission.
    """
    fit = _ExampleModel(plan.design_columns())
    _write_csv(out / LEGACY_FILES["train"], _legacy_train_tables(plan, fit))
    coef = fit.coef()
    tagged = [
        (k, b)
        for k, split in enumerate(("validation", "test", "live"))
        for b in _iter_split(plan, "legacy", split)
    ]
    blocks = [b for _, b in tagged]
    ids, eras, types, cols = _stack(blocks)
    target = _stacked_targets(blocks, [MAIN_TARGET])[MAIN_TARGET]
    preds = np.concatenate([_ExampleModel.predict(coef, b) for b in blocks])
    part = np.concatenate([np.full(len(b.id_codes), k) for k, b in tagged])
    order = np.lexsort((np.concatenate([b.id_codes for b in blocks]), part))
    step = _chunk_rows(plan.n_features)
    names = plan.legacy_names
    _write_csv(
        out / LEGACY_FILES["tournament"],
        (
            _legacy_table(names, ids[rows], eras[rows], types[rows], cols[:, rows], target[rows])
            for rows in (order[i : i + step] for i in range(0, len(order), step))
        ),
    )
    example = pa.table(
        {"id": pa.array(ids[order], pa.string()), PREDICTION_COL: pa.array(preds[order])}
    )
    _write_csv(out / LEGACY_FILES["example_predictions"], iter([example]))


def make_synthetic_dataset(
    data_dir: str | os.PathLike,
    layout: str = "v5",
    seed: int = 0,
    *,
    version: str = DEFAULT_V5_VERSION,
    round: int = DEFAULT_LEGACY_ROUND,  # noqa: A002 - Numerai's word
    model: SyntheticModel | None = None,
    **sizes: int,
) -> Path:
    """Write a synthetic Numerai-shaped dataset and return its directory (tutorial step 2A).

    Parameters
    ----------
    data_dir : path
        Parent directory. The dataset goes to ``<data_dir>/<version>`` (v5, default ``v5.2``) or
        ``<data_dir>/numerai_dataset_<round>`` (legacy, default round 280).
    layout : {"v5", "legacy"}
        Today's parquet files or the tutorial's 2021 CSV files, with DESIGN.md's file names.
    seed : int
        Same seed and sizes give byte-identical files. Both layouts of one seed hold the same
        rows (ids, eras, feature values, target); the legacy names feature ``j`` of group ``g``
        ``feature_<g><j>``, the v5 files give it an opaque name listed in ``features.json``.
    model : SyntheticModel, optional
        The knobs of the statistical model (docs/data.md).
    **sizes
        Fields of :class:`SyntheticSizes`: ``n_train_eras``, ``n_validation_eras``,
        ``n_test_eras`` (legacy only), ``rows_per_era``, ``n_live``, ``n_features``;
        :data:`TINY_SIZES` for tests.

    Returns
    -------
    Path
        The dataset directory, to pass to :func:`load_data`.

    Notes
    -----
    Eras: ``n_train_eras`` train eras, a gap of 4 era numbers, ``n_validation_eras`` validation
    eras, then (legacy) ``n_test_eras`` test eras, and one live era (v5 labels ``0001``...,
    legacy ``era1``..., live ``eraX``). Every file is written to a temporary name and renamed.
    """
    if layout not in ("v5", "legacy"):
        raise DataError(f'unknown layout {layout!r}: use layout="v5" or layout="legacy"')
    known = {f.name for f in fields(SyntheticSizes)}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise DataError(f"unknown synthetic size(s) {unknown}: use {sorted(known)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed={seed!r} is invalid: give an integer >= 0")
    resolved = SyntheticSizes(**sizes)
    resolved.check()
    plan = _make_plan(resolved, model or SyntheticModel(), int(seed))
    if layout == "v5":
        if not _V5_DIR.match(version):
            raise DataError(f'version {version!r} is not like "v5.2": use "v<major>.<minor>"')
        out = Path(data_dir) / version
        out.mkdir(parents=True, exist_ok=True)
        _write_v5(plan, out)
    else:
        out = Path(data_dir) / f"{LEGACY_DIR_PREFIX}{int(round)}"
        out.mkdir(parents=True, exist_ok=True)
        _write_legacy(plan, out)
    return out


# --------------------------------------------------------------------------------------------
# Feature sets shared by both layouts
# --------------------------------------------------------------------------------------------


def _feature_sets_by_rule(groups: dict[str, list[str]]) -> dict[str, list[str]]:
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
    sets = _feature_sets_by_rule(ordered)
    sets["all"] = [c for c in columns if c.startswith("feature_")]
    return sets


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dataset:
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


def _describe(path: Path, layout: str) -> _Dataset:
    if layout == "v5":
        return _Dataset("v5", path, path.name, _manifest_round(path))
    match = _LEGACY_DIR.match(path.name)
    return _Dataset("legacy", path, path.name, int(match.group(1)) if match else None)


def find_dataset(data_dir: str | os.PathLike) -> tuple[str, Path]:
    """The layout ("v5" or "legacy") and directory of the dataset at or under ``data_dir``.

    ``data_dir`` may be the version/round directory itself or its parent. Under a parent, the
    newest v5 version (natural order: v5.10 after v5.2) wins; without one, the highest legacy round.
    """
    found = _find_dataset(Path(data_dir))
    return found.layout, found.path


def _find_dataset(root: Path) -> _Dataset:
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
    v5 = natural_sorted(p.name for p in subdirs if _V5_DIR.match(p.name) and _is_v5_dir(p))
    if v5:
        return _describe(root / v5[-1], "v5")
    legacy = [p for p in subdirs if _LEGACY_DIR.match(p.name) and _is_legacy_dir(p)]
    if legacy:
        newest = max(legacy, key=lambda p: natural_key(p.name))
        return _describe(newest, "legacy")
    raise DataError(
        f"no Numerai dataset in {root}: expected {V5_FILES['train']} and {V5_FILES['features']} in "
        f"{root} or in a version directory such as {root / DEFAULT_V5_VERSION}, or "
        f"{LEGACY_FILES['train']} in {root / (LEGACY_DIR_PREFIX + '<round>')}. Build one with "
        "make_synthetic_dataset or download one with download_numerai_data."
    )


def _check_era_step(era_step: object) -> int:
    if isinstance(era_step, bool) or not isinstance(era_step, int | np.integer) or era_step < 1:
        raise DataError(
            f"era_step={era_step!r} is invalid: give an integer >= 1 (1 keeps every era)"
        )
    return int(era_step)


def _check_dtype(dtype: object) -> np.dtype:
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.int8), np.dtype(np.float32)):
        raise DataError(f'dtype={dtype!r} is not supported: use "int8" (default) or "float32"')
    return resolved


def _missing_file(path: Path, what: str) -> DataError:
    return DataError(
        f"{what} file {path} is missing: download the dataset again (download_numerai_data) or "
        "rebuild it (make_synthetic_dataset)"
    )


def _corrupt(path: Path, err: BaseException) -> DataError:
    return DataError(
        f"{path} is not a readable {'parquet' if path.suffix == '.parquet' else path.suffix.lstrip('.')} "
        f"file ({type(err).__name__}: {err}); it may be truncated or corrupt: delete it and download "
        "it again (download_numerai_data) or rebuild the dataset (make_synthetic_dataset)"
    )


def _missing_columns(path: Path, missing: Sequence[str], hint: str = "") -> DataError:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return DataError(
        f"{path} has no column(s) {shown}. {hint or 'Check feature_set and targets, or download or rebuild the file.'}"
    )


def _read_features_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise _missing_file(path, "feature metadata")
    try:
        meta = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise _corrupt(path, err) from err
    if not isinstance(meta, dict) or not isinstance(meta.get("feature_sets"), dict):
        raise DataError(f"{path} has no 'feature_sets': download it again or rebuild the dataset")
    return meta


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


def _resolve_targets(targets: str | Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """``None``: every target the dataset offers (``target`` first); else the names asked for."""
    if targets is None:
        names = list(available)
    elif isinstance(targets, str):
        names = [targets]
    else:
        names = list(targets)
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


def _kept_eras(eras: np.ndarray, era_step: int) -> np.ndarray:
    """Boolean mask of rows whose era is one of every ``era_step``-th era in natural order."""
    if era_step == 1:
        return np.ones(len(eras), dtype=bool)
    unique = natural_sorted(pd.unique(eras))
    return np.isin(eras, np.array(unique[::era_step], dtype=object))


def to_int8_bins(values: np.ndarray, scale: float, source: str) -> np.ndarray:
    """Feature values as int8 bins 0..4: ``round(scale * x)`` (``scale`` 4 for the 2021 files'
    0, 0.25, ..., 1); missing values become the middle bin 2 (Numerai's own int8 convention).

    Raises :class:`DataError` naming ``source`` when a value is off that grid.
    """
    if values.dtype == np.int8:
        return values
    scaled = values * scale if scale != 1 else values
    if values.dtype.kind == "f":
        scaled = np.where(np.isnan(scaled), 2, scaled)
        rounded = np.rint(scaled)
        if np.any(np.abs(scaled - rounded) > 1e-3) or np.any((rounded < 0) | (rounded > 4)):
            raise DataError(
                f"{source} has feature values off the 0, 0.25, ..., 1 grid (bins 0..4), which int8 "
                'cannot hold: load it with dtype="float32" (on the local engine)'
            )
        return rounded.astype(np.int8)
    return scaled.astype(np.int8)


def _to_feature_values(values: np.ndarray, dtype: np.dtype, legacy: bool, path: Path) -> np.ndarray:
    """File values to the loaded dtype: int8 bins (:func:`to_int8_bins`), or float32 as stored."""
    if dtype == np.float32:
        return values.astype(np.float32, copy=False)
    return to_int8_bins(values, 4.0 if legacy else 1.0, str(path))


def _frame(
    ids: pa.Array | pa.ChunkedArray,
    meta: dict[str, np.ndarray],
    values: np.ndarray,
    features: list[str],
    targets: dict[str, np.ndarray],
) -> pd.DataFrame:
    """id index, era, data_type, features (one block, no copy), targets."""
    index = pd.Index(ids.to_pandas(), dtype="str", name="id")
    frame = pd.DataFrame(values, index=index, columns=features, copy=False)
    frame.insert(0, "data_type", pd.array(meta["data_type"], dtype="str"))
    frame.insert(0, "era", pd.array(meta["era"], dtype="str"))
    for name, column in targets.items():
        frame[name] = column
    return frame


def _fill_features(
    batches: Iterator[pa.RecordBatch],
    targets: list[tuple[np.ndarray, np.ndarray]],
    n_rows: int,
    dtype: np.dtype,
    path: Path,
    legacy: bool,
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
        for j in range(batch.num_columns):
            column = batch.column(j).to_numpy(zero_copy_only=False)
            for t, ((_, out), sel, m) in enumerate(zip(targets, selections, counts, strict=True)):
                if m:
                    part = column if m == k else column[sel]
                    out[out_rows[t] : out_rows[t] + m, j] = _to_feature_values(
                        part, dtype, legacy, path
                    )
        out_rows = [o + m for o, m in zip(out_rows, counts, strict=True)]
        file_row += k
    if file_row != n_rows:
        raise DataError(
            f"{path} changed while it was read ({file_row} rows of features, {n_rows} ids): read it again, "
            "or download or rebuild it"
        )


def _release_arrow_memory() -> None:
    """Hand memory that Arrow's pool keeps after a read back to the system.

    Without this, the parser's buffers of one pass stay resident beside the feature arrays of
    the next and raise the peak RSS by hundreds of MB.
    """
    pa.default_memory_pool().release_unused()


def _empty_values(n: int, n_features: int, dtype: np.dtype) -> np.ndarray:
    """Fortran order: each feature is contiguous, and pandas uses ``values.T`` as its block as is."""
    return np.empty((n, n_features), dtype=dtype, order="F")


def _column_numpy(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


# -- parquet (v5) ------------------------------------------------------------------------------


def _open_parquet(path: Path, what: str) -> pq.ParquetFile:
    if not path.exists():
        raise _missing_file(path, what)
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err


#: Bytes of decoded feature values one parquet read may hold (columns of one row group).
_PARQUET_READ_BUDGET = 64 << 20


def _fill_from_parquet(
    pf: pq.ParquetFile, features: list[str], keep: np.ndarray, values: np.ndarray, path: Path
) -> None:
    """Copy the kept rows of ``features`` into ``values``, one row group and column slice at a time.

    Each read holds at most about ``_PARQUET_READ_BUDGET`` bytes (8 bytes a value assumed), so
    peak memory stays near ``values`` itself whatever the file's row-group size; row groups
    without a kept row are not read at all.
    """
    file_row = out_row = 0
    for group in range(pf.num_row_groups):
        k = pf.metadata.row_group(group).num_rows
        sel = keep[file_row : file_row + k]
        m = int(sel.sum())
        step = max(1, _PARQUET_READ_BUDGET // max(8 * k, 1))
        for start in range(0, len(features) if m else 0, step):
            names = features[start : start + step]
            table = pf.read_row_group(group, columns=names, use_threads=True)
            for j in range(len(names)):
                column = table.column(j).to_numpy()
                part = column if m == k else column[sel]
                values[out_row : out_row + m, start + j] = _to_feature_values(
                    part, values.dtype, False, path
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
) -> pd.DataFrame:
    """One v5 split: only the columns asked for (column projection), rows of the kept eras.

    Features stream batch by batch into one preallocated array, so peak memory is about the
    feature array itself plus one decoded batch.
    """
    pf = _open_parquet(path, what)
    names = set(pf.schema_arrow.names)
    missing = [c for c in ["id", "era", *features] if c not in names]
    missing += [] if targets_optional else [t for t in targets if t not in names]
    if missing:
        raise _missing_columns(path, missing)
    present_targets = [t for t in targets if t in names]
    meta_cols = ["id", "era", *(["data_type"] if "data_type" in names else []), *present_targets]
    try:
        small = pf.read(columns=meta_cols, use_threads=True)
        keep = _kept_eras(_column_numpy(small, "era"), era_step)
        values = _empty_values(int(keep.sum()), len(features), dtype)
        _fill_from_parquet(pf, features, keep, values, path)
        _release_arrow_memory()
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err
    if era_step > 1:
        small = small.filter(pa.array(keep))
    n = small.num_rows
    meta = {
        "era": _column_numpy(small, "era"),
        "data_type": _column_numpy(small, "data_type")
        if "data_type" in names
        else np.full(n, what, dtype=object),
    }
    target_values = {
        t: _column_numpy(small, t).astype(np.float64)
        if t in present_targets
        else np.full(n, np.nan)
        for t in targets
    }
    return _frame(small.column("id"), meta, values, features, target_values)


def _read_parquet_series(path: Path, what: str, column: str) -> pd.Series | None:
    """``column`` of a small parquet file as a Series by id; None when the file is absent."""
    if not path.exists():
        return None
    pf = _open_parquet(path, what)
    if "id" not in pf.schema_arrow.names or column not in pf.schema_arrow.names:
        raise _missing_columns(path, [c for c in ("id", column) if c not in pf.schema_arrow.names])
    try:
        table = pf.read(columns=["id", column])
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err
    index = pd.Index(table.column("id").to_pandas(), dtype="str", name="id")
    return pd.Series(_column_numpy(table, column).astype(np.float64), index=index, name=column)


def _load_v5(
    ds: _Dataset,
    feature_set: str | Sequence[str] | None,
    era_step: int,
    dtype: np.dtype,
    targets: str | Sequence[str] | None,
) -> NumeraiData:
    files = {role: ds.path / name for role, name in V5_FILES.items()}
    meta = _read_features_json(files["features"])
    train_names = _open_parquet(files["train"], "train").schema_arrow.names
    sets = {str(k): list(v) for k, v in meta["feature_sets"].items()}
    sets.setdefault("all", [c for c in train_names if c.startswith("feature_")])
    features = _resolve_feature_set(feature_set, sets, files["features"])
    offered = [t for t in meta.get("targets", []) if t in train_names] or [
        c for c in train_names if c.startswith("target")
    ]
    target_list = _resolve_targets(targets, offered)
    train = _read_parquet_split(files["train"], "train", features, target_list, dtype, era_step)
    validation = _read_parquet_split(
        files["validation"], "validation", features, target_list, dtype
    )
    live = _read_parquet_split(
        files["live"], "live", features, target_list, dtype, targets_optional=True
    )
    examples = [
        s
        for s in (
            _read_parquet_series(
                files["validation_example_preds"], "example predictions", PREDICTION_COL
            ),
            _read_parquet_series(
                files["live_example_preds"], "example predictions", PREDICTION_COL
            ),
        )
        if s is not None
    ]
    return NumeraiData(
        train=train,
        validation=validation,
        live=live,
        features=features,
        feature_groups=_groups_of(sets, features, V5_GROUP_SETS),
        targets=target_list,
        example_predictions=pd.concat(examples) if examples else None,
        meta_model=_read_parquet_series(files["meta_model"], "meta model", META_MODEL_COL),
        layout="v5",
        version=ds.version,
        round=ds.round,
        data_dir=ds.path,
        feature_sets=sets,
        files={role: p for role, p in files.items() if p.exists()},
    )


# -- CSV (legacy) ------------------------------------------------------------------------------

#: CSV bytes parsed per block: small blocks bound the parser's memory (fewer in flight).
_CSV_BLOCK = 4 << 20


def _csv_header(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise _missing_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError) as err:
        raise _corrupt(path, err) from err
    if not header or header == [""]:
        raise _corrupt(path, ValueError("empty file, no header line"))
    return header


def _csv_options(columns: list[str], types: dict[str, pa.DataType]) -> dict[str, Any]:
    return {
        "read_options": pacsv.ReadOptions(block_size=_CSV_BLOCK),
        "convert_options": pacsv.ConvertOptions(include_columns=columns, column_types=types),
    }


def _read_csv_meta(
    path: Path, header: list[str], targets: list[str], optional_targets: bool
) -> pa.Table:
    """Pass 1 over a legacy CSV: id, era, data_type and the targets (features are skipped)."""
    missing = [c for c in ("id", "era", "data_type") if c not in header]
    missing += [] if optional_targets else [t for t in targets if t not in header]
    if missing:
        raise _missing_columns(path, missing)
    columns = ["id", "era", "data_type", *[t for t in targets if t in header]]
    types = {"id": pa.string(), "era": pa.string(), "data_type": pa.string()}
    types.update({t: pa.float64() for t in targets})
    try:
        with pacsv.open_csv(path, **_csv_options(columns, types)) as reader:
            table = reader.read_all()
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err
    _release_arrow_memory()
    return table


def _read_csv_features(
    path: Path,
    header: list[str],
    features: list[str],
    n_rows: int,
    dtype: np.dtype,
    masks: list[np.ndarray],
) -> list[np.ndarray]:
    """Pass 2: stream only the feature columns (float32, never a float64 frame) into arrays."""
    missing = [f for f in features if f not in header]
    if missing:
        raise _missing_columns(path, missing)
    outputs = [_empty_values(int(mask.sum()), len(features), dtype) for mask in masks]
    types = dict.fromkeys(features, pa.float32())
    try:
        with pacsv.open_csv(path, **_csv_options(features, types)) as reader:
            _fill_features(
                iter(reader),
                list(zip(masks, outputs, strict=True)),
                n_rows,
                dtype,
                path,
                legacy=True,
            )
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err
    _release_arrow_memory()
    return outputs


def _legacy_frame(
    meta: pa.Table, mask: np.ndarray, values: np.ndarray, features: list[str], targets: list[str]
) -> pd.DataFrame:
    part = meta.filter(pa.array(mask))
    n = part.num_rows
    columns = {"era": _column_numpy(part, "era"), "data_type": _column_numpy(part, "data_type")}
    target_values = {
        t: _column_numpy(part, t).astype(np.float64)
        if t in part.column_names
        else np.full(n, np.nan)
        for t in targets
    }
    return _frame(part.column("id"), columns, values, features, target_values)


def _read_legacy_examples(path: Path) -> pd.Series | None:
    if not path.exists():
        return None
    header = _csv_header(path, "example predictions")
    if "id" not in header or PREDICTION_COL not in header:
        raise _missing_columns(path, [c for c in ("id", PREDICTION_COL) if c not in header])
    try:
        table = pacsv.read_csv(
            path,
            **_csv_options(
                ["id", PREDICTION_COL], {"id": pa.string(), PREDICTION_COL: pa.float64()}
            ),
        )
    except (pa.ArrowException, OSError) as err:
        raise _corrupt(path, err) from err
    index = pd.Index(table.column("id").to_pandas(), dtype="str", name="id")
    return pd.Series(_column_numpy(table, PREDICTION_COL), index=index, name=PREDICTION_COL)


def _load_legacy(
    ds: _Dataset,
    feature_set: str | Sequence[str] | None,
    era_step: int,
    dtype: np.dtype,
    targets: str | Sequence[str] | None,
) -> NumeraiData:
    files = {role: ds.path / name for role, name in LEGACY_FILES.items()}
    header = _csv_header(files["train"], "training data")
    sets = legacy_feature_sets(header)
    features = _resolve_feature_set(feature_set, sets, files["train"])
    target_list = _resolve_targets(targets, [c for c in header if c.startswith("target")])
    meta = _read_csv_meta(files["train"], header, target_list, optional_targets=False)
    keep = _kept_eras(_column_numpy(meta, "era"), era_step)
    (train_values,) = _read_csv_features(
        files["train"], header, features, meta.num_rows, dtype, [keep]
    )
    train = _legacy_frame(meta, keep, train_values, features, target_list)
    del meta, train_values
    t_header = _csv_header(files["tournament"], "tournament data")
    t_meta = _read_csv_meta(files["tournament"], t_header, target_list, optional_targets=True)
    is_validation = _column_numpy(t_meta, "data_type") == "validation"
    masks = [is_validation, ~is_validation]
    values = _read_csv_features(
        files["tournament"], t_header, features, t_meta.num_rows, dtype, masks
    )
    validation, live = (
        _legacy_frame(t_meta, m, v, features, target_list)
        for m, v in zip(masks, values, strict=True)
    )
    return NumeraiData(
        train=train,
        validation=validation,
        live=live,
        features=features,
        feature_groups=_groups_of(sets, features, GROUPS),
        targets=target_list,
        example_predictions=_read_legacy_examples(files["example_predictions"]),
        meta_model=None,
        layout="legacy",
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
        Target columns to read; default every target the dataset lists (``target`` first).

    Returns
    -------
    NumeraiData
        ``train``, ``validation``, ``live`` indexed by ``id``; legacy ``live`` is the tournament
        file's test and live rows in file order. Only the needed columns are read: parquet by
        column projection, CSV by ``include_columns`` with float32 feature types, streamed into
        one preallocated array per split.
    """
    step = _check_era_step(era_step)
    np_dtype = _check_dtype(dtype)
    ds = _find_dataset(Path(data_dir))
    loader = _load_v5 if ds.layout == "v5" else _load_legacy
    return loader(ds, feature_set, step, np_dtype, targets)


# --------------------------------------------------------------------------------------------
# Download through numerapi
# --------------------------------------------------------------------------------------------

#: The v5 files download_numerai_data fetches by default (those Numerai lists for the version).
V5_DOWNLOAD_FILES: tuple[str, ...] = tuple(V5_FILES.values())
_REQUIRED_DOWNLOADS = ("train.parquet", "validation.parquet", "live.parquet", "features.json")
#: Files that change every round: fetched again when the current round is not the manifest's.
LIVE_FILES: tuple[str, ...] = ("live.parquet", "live_example_preds.parquet")

_OFFLINE_HINT = (
    "Check the internet connection and try again later, or work offline: use "
    'data_source="synthetic" (nbutils.data.make_synthetic_dataset) or a local directory that '
    "already holds the files."
)


def _make_napi(show_progress: bool) -> tuple[Any, Any]:
    """A real ``numerapi.NumerAPI``: with the keys of :func:`nbutils.keys.load_keys`, else anonymous."""
    import numerapi

    from nbutils.keys import load_keys

    keys = load_keys()
    if keys is None:
        napi = numerapi.NumerAPI(verbosity="warning", show_progress_bars=show_progress)
    else:
        napi = numerapi.NumerAPI(
            keys.public_id, keys.secret_key, verbosity="warning", show_progress_bars=show_progress
        )
    return napi, keys


@contextlib.contextmanager
def _retry_settings(napi: Any, retries: int, delay: float) -> Iterator[None]:
    """Give numerapi's ``raw_query`` our retry settings while we use ``napi``, then restore it.

    numerapi retries HTTP 5xx answers with sleeps (5 s, then 10 s by default) and then returns
    ``{}``; ``list_datasets`` and friends do not expose those settings.
    """
    original = napi.raw_query
    own = "raw_query" in vars(napi)
    try:
        accepted = inspect.signature(original).parameters
    except (TypeError, ValueError):
        accepted = {}
    if "retries" in accepted and "delay" in accepted:
        napi.raw_query = functools.partial(original, retries=max(1, retries), delay=delay)
    try:
        yield
    finally:
        if own:
            napi.raw_query = original
        elif "raw_query" in vars(napi):
            del napi.raw_query


def _ask(what: str, call: Callable[[], Any], keys: Any) -> Any:
    """Run a numerapi call; any failure becomes a :class:`DownloadError` saying what to do.

    numerapi answers a failed request with ``{}`` (then ``["data"]`` raises KeyError), a GraphQL
    error with ValueError, and a failed file transfer with a ``requests`` exception.
    """
    import requests

    from nbutils.keys import redact

    try:
        return call()
    except (KeyError, TypeError, IndexError, ValueError, OSError, requests.RequestException) as err:
        reason = redact(f"{type(err).__name__}: {err}", keys) if str(err) else type(err).__name__
        if isinstance(err, KeyError | TypeError | IndexError):
            reason = "no valid answer from the Numerai API (server error or no connection)"
        raise DownloadError(f"Could not {what} from Numerai ({reason}). {_OFFLINE_HINT}") from err


def _verify_download(path: Path, name: str | None = None) -> None:
    """Raise :class:`DataError` unless ``path`` is complete: parquet footer readable, JSON parses.

    ``name`` is the file's final name when ``path`` is a temporary one.
    """
    suffix = Path(name or path.name).suffix
    try:
        if suffix == ".parquet":
            pq.read_metadata(path)
        elif suffix == ".json":
            read_json(path)
        elif path.stat().st_size == 0:
            raise ValueError("empty file")
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _corrupt(path, err) from err


def _pick_version(listed: Sequence[str], version: str) -> str:
    """``latest``: the newest v5.x (natural order) that lists ``train.parquet``; else ``version``."""
    versions = {name.split("/", 1)[0] for name in listed if "/" in name}
    if version == "latest":
        candidates = [
            v for v in versions if re.match(r"^v5(\.\d+)*$", v) and f"{v}/train.parquet" in listed
        ]
        if not candidates:
            raise DownloadError(
                f"Numerai lists no v5 dataset with train.parquet (versions: {natural_sorted(versions)}). "
                "Pass version= one of them, or use the synthetic data."
            )
        return natural_sorted(candidates)[-1]
    if version not in versions:
        raise DownloadError(
            f"Numerai does not offer dataset version {version!r}: choose one of "
            f'{natural_sorted(versions)} or version="latest"'
        )
    return version


def _pick_files(listed: Sequence[str], version: str, files: Sequence[str] | None) -> list[str]:
    """The files to fetch: ``files`` (each must be listed) or every default file listed."""
    offered = {name.split("/", 1)[1] for name in listed if name.startswith(f"{version}/")}
    if files is None:
        missing = [f for f in _REQUIRED_DOWNLOADS if f not in offered]
        if missing:
            raise DownloadError(
                f"Numerai's {version} lacks {missing}: choose another version, or pass files=[...]"
            )
        return [f for f in V5_DOWNLOAD_FILES if f in offered]
    unknown = [f for f in files if f not in offered]
    if unknown:
        raise DownloadError(f"Numerai's {version} has no {unknown}: choose among {sorted(offered)}")
    return list(files)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = read_json(path)
    except (OSError, ValueError):
        return {"files": {}}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return {"files": {}}
    return manifest


def _is_current(path: Path, name: str, manifest: dict[str, Any], current_round: int | None) -> bool:
    """A file counts as complete when it verifies, matches the manifest's size, and (live files)
    was fetched in the current round."""
    if not path.is_file():
        return False
    try:
        _verify_download(path)
    except DataError:
        return False
    entry = manifest["files"].get(name, {})
    if "bytes" in entry and entry["bytes"] != path.stat().st_size:
        return False
    return name not in LIVE_FILES or (
        entry.get("round") == current_round and current_round is not None
    )


def _fetch(napi: Any, remote: str, final: Path, keys: Any) -> int:
    """Download ``remote`` beside ``final`` under a temporary name, verify it, then rename.

    numerapi itself writes ``<dest>.temp`` and renames it to ``<dest>``; both temporary names
    are removed whatever happens, so a failed download never leaves a file under ``final``.
    """
    tmp = final.with_name(f".{final.name}.download")
    leftovers = (tmp, Path(f"{tmp}.temp"))
    for p in leftovers:
        p.unlink(missing_ok=True)
    try:
        _ask(f"download {remote}", lambda: napi.download_dataset(remote, dest_path=str(tmp)), keys)
        try:
            _verify_download(tmp, final.name)
        except DataError as err:
            raise DownloadError(
                f"The download of {remote} is incomplete or corrupt ({err}). Run the download again. "
                f"{_OFFLINE_HINT}"
            ) from err
        size = tmp.stat().st_size
        os.replace(tmp, final)
        return size
    finally:
        for p in leftovers:
            p.unlink(missing_ok=True)


def download_numerai_data(
    data_dir: str | os.PathLike,
    version: str = "latest",
    files: Sequence[str] | None = None,
    napi: Any = None,
    *,
    retries: int = 2,
    retry_delay: float = 2.0,
    show_progress: bool = True,
    verbose: bool = True,
) -> Path:
    """Download today's Numerai dataset with numerapi (tutorial step 2A) and return its directory.

    Parameters
    ----------
    data_dir : path
        Parent directory; the files go to ``<data_dir>/<version>/`` (load it with :func:`load_data`).
    version : str
        ``"latest"`` (the newest ``v5.x`` in natural order that lists ``train.parquet``) or a
        version Numerai lists, such as ``"v5.0"``.
    files : list of str, optional
        File names inside the version (default: the v5 files of DESIGN.md that Numerai lists;
        train, validation, live and features.json must be among them).
    napi : numerapi.NumerAPI, optional
        Default: a new client, with keys from the environment or ``.env`` if present.
    retries, retry_delay : int, float
        numerapi's retries of HTTP 5xx answers and the first sleep between them (doubling).
    show_progress, verbose : bool
        numerapi's progress bars; one line per file.

    Returns
    -------
    Path
        ``<data_dir>/<version>``.

    Notes
    -----
    The tutorial's ``download_current_dataset`` is gone from numerapi; this is its successor:
    ``list_datasets`` then ``download_dataset`` file by file. A complete file is not fetched
    again ("already have the newest data"), except the live files when the round changed (the
    round of each file is kept in ``.nbutils_manifest.json``). Every file is downloaded under a
    temporary name, verified (parquet footer, JSON) and only then renamed; on any failure a
    :class:`~nbutils.errors.DownloadError` says what to do and no partial file is left behind.
    """
    keys = None
    if napi is None:
        napi, keys = _make_napi(show_progress)
    with _retry_settings(napi, retries, retry_delay):
        listed = list(_ask("list the datasets", napi.list_datasets, keys) or [])
        chosen = _pick_version(listed, version)
        names = _pick_files(listed, chosen, files)
        current_round = _ask("get the current round", napi.get_current_round, keys)
        out = Path(data_dir) / chosen
        out.mkdir(parents=True, exist_ok=True)
        manifest_path = out / MANIFEST_NAME
        manifest = _read_manifest(manifest_path)
        for name in names:
            final = out / name
            if _is_current(final, name, manifest, current_round):
                _say(verbose, f"already have the newest data: {chosen}/{name}")
                continue
            _say(verbose, f"downloading {chosen}/{name} (round {current_round})")
            size = _fetch(napi, f"{chosen}/{name}", final, keys)
            manifest["files"][name] = {"bytes": size, "round": current_round}
            manifest.update(version=chosen, round=current_round)
            write_json(manifest_path, manifest)
    return out
