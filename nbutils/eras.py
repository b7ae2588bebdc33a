"""Rows grouped by era: the one era index of nbutils.

Scores (``nbutils.metrics``), neutralization (``nbutils.neutralize``) and the Dask engine work era
by era. They all group rows with :func:`era_groups`: eras in natural order ("era2" before
"era10"), each row's era as an integer code, and the rows of each era found through one stable
sort of those codes (skipped when the rows already come grouped by era, as Numerai's files do).

The embargo (issue 16): Numerai's targets look 20 (or 60) trading days ahead, about 4 (or 12)
weekly eras, so the targets of neighbouring eras overlap. Validation eras right after the last
training era share part of their target window with the training data; scores leave them out.
:func:`embargo_eras` gives how many (4 for 20-day targets, as Numerai's example notebooks drop;
16 for 60-day targets) and :func:`drop_embargo` drops them, comparing era numbers
(``"0123"`` and ``"era123"`` are era 123), so a model trained on every 4th era still leaves out
the eras within the true distance of its last training era.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from nbutils.checks import check_int, require_columns
from nbutils.errors import DataError, ScoringError
from nbutils.util import natural_key

__all__ = [
    "EMBARGO_BY_HORIZON",
    "EraGroups",
    "drop_embargo",
    "embargo_eras",
    "era_groups",
    "era_number",
]

#: Eras to leave out after the last training era, by the target's horizon in trading days:
#: 20 days are 4 weekly eras (Numerai's example notebooks drop 4); 60 days are 12 eras, and
#: 16 leaves the margin Numerai's docs give for 60-day targets.
EMBARGO_BY_HORIZON: dict[int, int] = {20: 4, 60: 16}
#: The main target of the v5 files is the 20-day target of the current name (design.md).
_MAIN_TARGET = "target"
_HORIZON = re.compile(r"_(\d+)$")
_ERA_NUMBER = re.compile(r"\D*(\d+)")


def embargo_eras(target: str) -> int:
    """Eras to leave out after the last training era when scoring against ``target``.

    ``"target"`` (Numerai's main target, an alias of a 20-day target) and names ending in ``_20``
    give 4; names ending in ``_60`` give 16 (:data:`EMBARGO_BY_HORIZON`).

    Raises
    ------
    DataError
        If ``target`` is not a string or its horizon is not one of 20 and 60 days.
    """
    if not isinstance(target, str):
        raise DataError(f"target={target!r} is not a column name: give e.g. 'target'.")
    if target == _MAIN_TARGET:
        return EMBARGO_BY_HORIZON[20]
    match = _HORIZON.search(target)
    horizon = int(match.group(1)) if match else None
    if horizon not in EMBARGO_BY_HORIZON:
        raise DataError(
            f"target={target!r}: no known horizon, so no embargo can be chosen. Give 'target' or "
            "a target whose name ends in _20 (20 days: 4 eras) or _60 (60 days: 16 eras), or "
            "pass the number of eras to drop_embargo yourself."
        )
    return EMBARGO_BY_HORIZON[horizon]


def era_number(label: object) -> int:
    """The number of an era label: ``"0123"`` (v5), ``"era123"`` (legacy) or 123 give 123.

    Raises
    ------
    DataError
        For a label without a number (the legacy live era ``"eraX"``) or anything else.
    """
    if isinstance(label, bool):
        raise DataError(f"era {label!r} is not an era label: give e.g. '0123' or 'era123'.")
    if isinstance(label, int | np.integer):
        return int(label)
    match = _ERA_NUMBER.fullmatch(str(label))
    if match is None:
        raise DataError(
            f"era {label!r} has no era number: give labels like '0123' (v5) or 'era123' "
            "(2021 files); live eras such as 'eraX' have none and are never embargoed."
        )
    return int(match.group(1))


def drop_embargo(
    df: pd.DataFrame, last_train_era: str | int, n_eras: int, era_col: str = "era"
) -> pd.DataFrame:
    """``df`` without the rows of the ``n_eras`` eras right after ``last_train_era``.

    A row is dropped when ``0 < era_number(row's era) - era_number(last_train_era) <= n_eras``;
    eras are compared by number, so with every 4th training era kept (``era_step=4``) the
    distance is still the true one. Earlier eras and later eras are kept as they are.

    Raises
    ------
    DataError
        If ``n_eras`` is not an integer >= 0, ``era_col`` is missing, or an era has no number.
    """
    n = check_int(n_eras, "n_eras", 0, error=DataError)
    require_columns(df, [era_col], "era column", error=DataError)
    last = era_number(last_train_era)
    labels = df[era_col]
    uniques = pd.unique(labels.to_numpy())
    numbers = pd.Series([era_number(u) for u in uniques], index=uniques, dtype="int64")
    distance = labels.map(numbers).to_numpy() - last
    return df[~((distance > 0) & (distance <= n))]


@dataclass(frozen=True)
class EraGroups:
    """Rows grouped by era, eras in natural order ("era2" before "era10").

    Attributes
    ----------
    codes : np.ndarray
        Era number of each row (0 = first era in natural order), int64, in row order.
    labels : pd.Index
        The era labels in natural order; ``labels[codes[i]]`` is row ``i``'s era.
    order : np.ndarray
        Row positions sorted by era (stable), so the rows of era ``g`` are
        ``order[starts[g]:starts[g + 1]]`` (computed on first use).
    starts : np.ndarray
        Offsets into ``order``, length ``n_groups + 1``.
    """

    codes: np.ndarray
    labels: pd.Index

    @property
    def n_groups(self) -> int:
        """Number of eras."""
        return len(self.labels)

    @cached_property
    def counts(self) -> np.ndarray:
        """Number of rows in each era."""
        return np.bincount(self.codes, minlength=self.n_groups)

    @cached_property
    def starts(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(self.counts))).astype(np.int64)

    @cached_property
    def is_sorted(self) -> bool:
        """Whether the rows are already grouped by era in natural order (Numerai's files are)."""
        return bool(np.all(self.codes[1:] >= self.codes[:-1]))

    @cached_property
    def order(self) -> np.ndarray:
        if self.is_sorted:
            return np.arange(len(self.codes))
        small = self.n_groups <= np.iinfo(np.uint16).max  # numpy radix-sorts 16-bit integers
        return np.argsort(self.codes.astype(np.uint16 if small else np.int64), kind="stable")

    def to_era_order(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """``values`` (one entry per row along ``axis``) with the rows grouped by era.

        Era ``g`` is then the contiguous slice ``starts[g]:starts[g + 1]`` along ``axis``. No copy
        when the rows already come grouped by era (:attr:`is_sorted`).
        """
        return values if self.is_sorted else np.take(values, self.order, axis=axis)

    def to_row_order(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """The inverse of :meth:`to_era_order`: values in era order back in row order."""
        if self.is_sorted:
            return values
        out = np.empty_like(values)
        index: list[slice | np.ndarray] = [slice(None)] * values.ndim
        index[axis] = self.order
        out[tuple(index)] = values
        return out

    def rows(self, group: int) -> np.ndarray:
        """Row positions of era number ``group``, in their original order."""
        return self.order[self.starts[group] : self.starts[group + 1]]

    def iter_rows(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(era number, row positions)`` for every era."""
        for g in range(self.n_groups):
            yield g, self.rows(g)

    def rows_by_era(self) -> list[np.ndarray]:
        """The row positions of every era, as a list indexed by era number."""
        return [self.rows(g) for g in range(self.n_groups)]

    def subset(self, mask: np.ndarray) -> EraGroups:
        """The same eras (all of them, even those left empty) for the rows where ``mask`` holds."""
        return EraGroups(codes=self.codes[mask], labels=self.labels)


def era_groups(df: pd.DataFrame, era_col: str | None) -> EraGroups:
    """Group the rows of ``df`` by ``era_col`` with eras in natural order.

    ``era_col=None`` puts every row in one group labelled ``"all"`` (the tutorial's 2F
    neutralization against example predictions works on the whole frame at once).

    Raises
    ------
    ScoringError
        If ``era_col`` is missing or holds missing values.
    """
    n = len(df)
    if era_col is None:
        return EraGroups(codes=np.zeros(n, dtype=np.int64), labels=pd.Index(["all"], name="era"))
    require_columns(df, [era_col], "era column")
    eras = df[era_col]
    if eras.isna().any():
        raise ScoringError(
            f"Column {era_col!r} has {int(eras.isna().sum())} missing era labels; "
            "fill or drop those rows before scoring."
        )
    runs = _runs(eras)
    if runs is not None:  # rows already come grouped by era (Numerai's files)
        lengths, uniques = runs
    else:
        codes, uniques = pd.factorize(eras, sort=True)  # remapped to natural order below
    values = list(uniques)
    natural = sorted(range(len(values)), key=lambda i: natural_key(values[i]))
    new_code = np.empty(len(values), dtype=np.int64)
    new_code[natural] = np.arange(len(values))
    labels = pd.Index([values[i] for i in natural], name=era_col)
    if runs is None:
        return EraGroups(codes=new_code[codes].astype(np.int64), labels=labels)
    groups = EraGroups(codes=np.repeat(new_code, lengths), labels=labels)
    # Known from the runs: no pass over the rows to count them or to check their order.
    counts = np.zeros(len(values), dtype=np.int64)
    counts[new_code] = lengths
    groups.__dict__["counts"] = counts
    groups.__dict__["is_sorted"] = bool(np.all(np.diff(new_code) > 0))
    return groups


#: More runs of equal labels than this: the rows are not grouped by era, factorize instead.
_MAX_RUNS = 100_000


def _runs(eras: pd.Series) -> tuple[np.ndarray, pd.Index] | None:
    """``(run lengths, labels)`` by comparing neighbours, when each era is one run of rows.

    One vectorized comparison of each label with the next (cheap even for Arrow strings) finds
    the runs; if no label starts two runs, each run is an era (None otherwise). About five times
    faster than ``pd.factorize`` on a million era strings.
    """
    values = eras.array
    if len(values) < 2:
        return None
    change = np.flatnonzero(np.asarray(values[1:] != values[:-1], dtype=bool)) + 1
    if len(change) >= _MAX_RUNS:
        return None
    run_starts = np.concatenate(([0], change))
    labels = pd.Index(eras.iloc[run_starts].to_numpy())
    if not labels.is_unique:
        return None
    return np.diff(np.append(run_starts, len(values))), labels
