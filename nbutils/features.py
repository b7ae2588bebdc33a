"""Step 2B: feature engineering. Feature groups, per-row group statistics, interaction features.

The tutorial adds, for every feature group (intelligence, wisdom, charisma, ... in the 2021 data;
the ``features.json`` group sets in v5), the row-wise mean, standard deviation and skew of the
group's features (its ``get_group_stats``), and pairwise products of a few features made with
scikit-learn's ``PolynomialFeatures(interaction_only=True)``.

Two things differ from the tutorial's code, on purpose:

- Everything is aligned on the frame's index (the ids), so no ``reset_index`` is needed. The
  tutorial joined its interaction features with ``reset_index`` + ``concat``; that is correct
  there, since it resets the filtered validation/test frames exactly so that both sides count
  0, 1, 2, ... (its training frame keeps the RangeIndex of ``read_csv``). What misaligns rows
  is ``concat`` of a filtered frame WITHOUT ``reset_index``: its index has gaps, the products'
  index does not, and pandas pairs them by label (notebook 02 shows both).
- Nothing builds a float64 copy of all features at once: statistics are computed group by group
  and in row chunks, and the new columns are float32.

A :class:`FeatureSpec` records which statistics and interactions a run adds
(``feature_spec.json``), so that train, validation and live get exactly the same columns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from nbutils.checks import require_columns
from nbutils.errors import DataError
from nbutils.util import concat_columns, natural_sorted, read_json, write_json

FEATURE_SPEC_NAME = "feature_spec.json"
GROUP_STATS = ("mean", "std", "skew")
INTERACTION_SEP = "_x_"
_LEGACY_NAME = re.compile(r"^feature_([A-Za-z]+?)(\d+)$")
_CHUNK_ROWS = 65_536
# Moments this small are floating-point noise of a constant row and count as 0.
_FP_ZERO = 1e-14


def groups_from_names(features: Iterable[str]) -> dict[str, list[str]]:
    """Feature groups read from legacy names ``feature_<group><n>``.

    ``feature_intelligence1`` and ``feature_intelligence12`` belong to group ``intelligence``.
    Groups keep the order in which they first appear; members are in natural order
    (``...2`` before ``...10``). Names that do not follow the pattern belong to no group.

    Parameters
    ----------
    features : iterable of str
        Feature column names, e.g. ``NumeraiData.features`` of a legacy dataset.

    Returns
    -------
    dict
        Group name to its feature columns.
    """
    groups: dict[str, list[str]] = {}
    for name in features:
        match = _LEGACY_NAME.match(name)
        if match:
            groups.setdefault(match.group(1), []).append(name)
    return {g: natural_sorted(cols) for g, cols in groups.items()}


def stat_column(group: str, stat: str) -> str:
    """Name of a group statistic column: ``feature_<group>_<stat>`` (the tutorial's naming)."""
    return f"feature_{group}_{stat}"


def interaction_column(a: str, b: str) -> str:
    """Name of the product of features ``a`` and ``b``: ``<a>_x_<b>``."""
    return f"{a}{INTERACTION_SEP}{b}"


# Deliberate repeat (the `duplicates` tool pairs it with nbutils/daily/standalone.py's copy, which runs
# inside the exported pickle without nbutils). Change both together.
def _row_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise mean, std (ddof=1) and bias-corrected skew of a float64 block, NaN skipped.

    Same formulas as pandas' ``DataFrame.mean/std/skew(axis=1)``: with ``n`` non-missing
    values, ``S2 = sum((x - mean)**2)`` and ``S3 = sum((x - mean)**3)``,
    ``std = sqrt(S2 / (n - 1))`` and ``skew = n * sqrt(n - 1) / (n - 2) * S3 / S2**1.5``;
    the skew is NaN for a constant row (``S2 == 0``, as pandas >= 3; pandas < 3 returned 0) and
    when ``n < 3``; the std is NaN when ``n < 2``.
    """
    missing = np.isnan(values)
    count = (~missing).sum(axis=1).astype(np.float64)
    if missing.any():
        values = np.where(missing, 0.0, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        centered = values - mean[:, None]
        if missing.any():
            centered[missing] = 0.0
        sq = centered * centered
        s2 = sq.sum(axis=1)
        s3 = (sq * centered).sum(axis=1)
        std = np.sqrt(s2 / (count - 1))
        s2 = np.where(np.abs(s2) < _FP_ZERO, 0.0, s2)
        s3 = np.where(np.abs(s3) < _FP_ZERO, 0.0, s3)
        skew = count * np.sqrt(count - 1) / (count - 2) * s3 / s2**1.5
    skew = np.where(s2 == 0, np.nan, skew)
    skew[count < 3] = np.nan
    std[count < 2] = np.nan
    mean[count < 1] = np.nan
    return mean, std, skew


def _check_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    require_columns(
        df,
        list(columns),
        what,
        hint="pass feature names from the same dataset (NumeraiData.features / feature_groups).",
        error=DataError,
    )


def group_stats(
    df: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    stats: Sequence[str] = GROUP_STATS,
    chunk_rows: int = _CHUNK_ROWS,
) -> pd.DataFrame:
    """Only the group statistic columns of :func:`add_group_stats`, indexed like ``df``.

    Parameters
    ----------
    df : DataFrame
        Rows to describe; its index is kept.
    groups : mapping
        Group name to feature columns.
    stats : sequence of str
        Any of ``"mean"``, ``"std"``, ``"skew"``.
    chunk_rows : int
        Rows converted to float64 at a time (memory bound: ``chunk_rows x group size x 8`` bytes).

    Returns
    -------
    DataFrame
        float32 columns ``feature_<group>_<stat>``, group by group in ``stats`` order.
    """
    unknown = [s for s in stats if s not in GROUP_STATS]
    if unknown:
        raise DataError(f"unknown group statistics {unknown}; choose from {list(GROUP_STATS)}.")
    out: dict[str, np.ndarray] = {}
    n = len(df)
    for group, cols in groups.items():
        cols = list(cols)
        if not cols:
            raise DataError(f"feature group {group!r} has no columns; drop it from `groups`.")
        _check_columns(df, cols, f"columns of feature group {group!r}")
        result = {s: np.empty(n, dtype=np.float32) for s in stats}
        block = df[cols]
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            values = block.iloc[start:stop].to_numpy(dtype=np.float64, na_value=np.nan)
            mean, std, skew = _row_moments(values)
            moments = {"mean": mean, "std": std, "skew": skew}
            for s in stats:
                result[s][start:stop] = moments[s]
        for s in stats:
            out[stat_column(group, s)] = result[s]
    return pd.DataFrame(out, index=df.index)


def add_group_stats(
    df: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    stats: Sequence[str] = GROUP_STATS,
) -> pd.DataFrame:
    """``df`` plus the per-row mean, std and skew of each feature group (tutorial step 2B).

    The tutorial's ``get_group_stats`` did, for each group,
    ``df[f"feature_{group}_mean"] = df[cols].mean(axis=1)`` and the same with ``std``
    (pandas' default ``ddof=1``) and ``skew`` (pandas' bias-corrected sample skewness).
    Here each group is converted to float64 alone and in row chunks, so no float64 copy of all
    features exists at once; the new columns are float32.

    Parameters
    ----------
    df : DataFrame
        Input rows; not modified.
    groups : mapping
        Group name to feature columns: ``NumeraiData.feature_groups`` (v5 ``features.json``)
        or :func:`groups_from_names` (legacy names).
    stats : sequence of str
        The statistics to add (default all three).

    Returns
    -------
    DataFrame
        A new frame with the same index and rows, the input columns then the statistics.
    """
    return concat_columns([df, group_stats(df, groups, stats)])


def interactions(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Only the interaction columns of :func:`add_interactions`, indexed like ``df``."""
    columns = list(columns)
    if len(set(columns)) != len(columns):
        raise DataError(f"interaction columns contain duplicates: {columns}.")
    _check_columns(df, columns, "interaction columns")
    values = {c: df[c].to_numpy(dtype=np.float32, na_value=np.nan) for c in columns}
    out = {interaction_column(a, b): values[a] * values[b] for a, b in combinations(columns, 2)}
    return pd.DataFrame(out, index=df.index, dtype=np.float32)


def add_interactions(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``df`` plus the pairwise products of ``columns`` (tutorial step 2B).

    Same terms, in the same order, as scikit-learn's
    ``PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)`` without its
    first-degree columns: ``x_a * x_b`` for every pair ``a < b`` in the order of ``columns``,
    named ``<a>_x_<b>`` (e.g. ``feature_a_x_feature_b``), float32.

    The products keep the frame's own index, so they stay on their row whatever the index: no
    ``reset_index`` is needed (the tutorial's ``reset_index`` + ``concat`` aligns too; only a
    ``concat`` of a filtered frame without ``reset_index`` would misalign rows).

    Parameters
    ----------
    df : DataFrame
        Input rows; not modified.
    columns : sequence of str
        At least two feature columns.

    Returns
    -------
    DataFrame
        A new frame with the same index, the input columns then the products.
    """
    return concat_columns([df, interactions(df, columns)])


@dataclass
class FeatureSpec:
    """Which engineered features a run adds; saved as ``feature_spec.json`` (notebook 02).

    Attributes
    ----------
    group_stats : bool
        Add the group statistics (:func:`add_group_stats`).
    groups : list of str or None
        Which groups get statistics; ``None`` means every group passed to :meth:`apply`.
    stats : list of str
        Which statistics (``mean``, ``std``, ``skew``).
    interactions : list of str
        Columns whose pairwise products are added (:func:`add_interactions`); empty for none.
    """

    group_stats: bool = True
    groups: list[str] | None = None
    stats: list[str] = field(default_factory=lambda: list(GROUP_STATS))
    interactions: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec as JSON (atomically); a directory gets ``feature_spec.json`` inside.

        Written into a run directory, it is written under the run's lock and its fingerprint is
        recorded (:func:`nbutils.run.fingerprints.saving`), as notebook 02 in the chain does."""
        from nbutils.run.fingerprints import saving

        target = Path(path)
        if target.is_dir():
            target = target / FEATURE_SPEC_NAME
        with saving(target):
            return write_json(target, asdict(self))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSpec:
        """Read a spec written by :meth:`save` (a file, or a directory holding one)."""
        source = Path(path)
        if source.is_dir():
            source = source / FEATURE_SPEC_NAME
        if not source.is_file():
            raise DataError(f"no feature spec at {source}; run notebook 02 (features) first.")
        raw = read_json(source)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise DataError(
                f"{source} has unknown keys {sorted(unknown)}; it was not written by FeatureSpec.save."
            )
        return cls(**raw)

    def selected_groups(self, groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """The groups this spec describes, out of ``groups`` (all of them when ``groups`` is None)."""
        if not self.group_stats:
            return {}
        if self.groups is None:
            return {g: list(c) for g, c in groups.items()}
        missing = [g for g in self.groups if g not in groups]
        if missing:
            raise DataError(
                f"feature spec names unknown groups {missing}; available: {sorted(groups)}."
            )
        return {g: list(groups[g]) for g in self.groups}

    def new_columns(self, groups: Mapping[str, Sequence[str]]) -> list[str]:
        """The engineered column names :meth:`apply` adds, in order."""
        stats = [stat_column(g, s) for g in self.selected_groups(groups) for s in self.stats]
        pairs = [interaction_column(a, b) for a, b in combinations(self.interactions, 2)]
        return stats + pairs

    def apply(
        self,
        df: pd.DataFrame,
        groups: Mapping[str, Sequence[str]],
        features: Sequence[str] | None = None,
    ) -> tuple[pd.DataFrame, list[str]]:
        """Add the spec's features to ``df``: the same columns for train, validation and live.

        Parameters
        ----------
        df : DataFrame
            Rows with the raw feature columns; not modified.
        groups : mapping
            Group name to feature columns (``NumeraiData.feature_groups``).
        features : sequence of str, optional
            The raw feature columns to train on (``NumeraiData.features``); by default every
            column of ``df`` whose name starts with ``feature_`` (Numerai's naming).

        Returns
        -------
        (DataFrame, list of str)
            The new frame (input columns then the engineered ones, same index) and the model's
            feature list: ``features`` followed by the engineered columns (:meth:`new_columns`).
        """
        if features is None:
            features = [c for c in df.columns if str(c).startswith("feature_")]
        parts = [df]
        selected = self.selected_groups(groups)
        if selected:
            parts.append(group_stats(df, selected, self.stats))
        if len(self.interactions) >= 2:
            parts.append(interactions(df, self.interactions))
        elif self.interactions:
            raise DataError("interactions need at least two columns; list two or more, or none.")
        new_columns = [c for part in parts[1:] for c in part.columns]
        clash = [c for c in new_columns if c in df.columns]
        if clash:
            raise DataError(
                f"engineered columns already in the frame: {clash[:3]}; apply the spec to the raw data once."
            )
        out = concat_columns(parts) if len(parts) > 1 else df.copy(deep=False)
        return out, [*features, *new_columns]
