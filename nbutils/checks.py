"""The one vocabulary of input checks in nbutils.

Every module checks its inputs with these helpers, so that the same mistake gets the same
message everywhere: the message names the parameter or column and says how to fix it. Each
helper takes the exception class to raise (an :class:`~nbutils.errors.NbutilsError` subclass),
so that a data loader raises ``DataError`` and a score ``ScoringError`` for the same check.

- :func:`require_columns`: every wanted column is there (names them all if not);
- :func:`as_column_list`: one column name or several, as a non-empty list;
- :func:`numeric_matrix`: columns as a numeric array without NaN;
- :func:`check_int`: an integer (not a bool) of at least ``minimum``;
- :func:`check_number`: a finite real number, optionally within ``[low, high]``;
- :func:`check_proportion`: a number in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from nbutils.errors import NbutilsError, ScoringError

__all__ = [
    "ScoringWarning",
    "as_column_list",
    "check_int",
    "check_number",
    "check_proportion",
    "missing_columns",
    "numeric_matrix",
    "require_columns",
]


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


class ScoringWarning(UserWarning):
    """A score could not be computed for some eras, or some rows were left out."""


def missing_columns(available: Iterable[str], wanted: Sequence[str]) -> list[str]:
    """The names of ``wanted`` that are not in ``available``, in the order of ``wanted``."""
    have = set(available)
    return [c for c in wanted if c not in have]


def _shown(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(c) for c in names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def require_columns(
    df: pd.DataFrame | Iterable[str],
    columns: Sequence[str],
    what: str,
    *,
    source: str = "The frame",
    hint: str = "check the column names (e.g. 'prediction', 'target', 'era') or pass the right ones.",
    error: type[NbutilsError] = ScoringError,
) -> None:
    """Raise ``error`` naming every column of ``columns`` missing from ``df``, or duplicated in it.

    ``df`` is a DataFrame or any iterable of column names (e.g. a parquet schema's names);
    ``source`` names where the columns were looked for (a file path, "The frame").
    """
    available = df.columns if isinstance(df, pd.DataFrame) else list(df)
    missing = missing_columns(available, columns)
    if missing:
        raise error(
            f"Missing {what}: {_shown(missing)}. {source} has {len(available)} columns; {hint}"
        )
    if isinstance(df, pd.DataFrame) and not df.columns.is_unique:
        wanted = set(columns)
        duplicated = sorted({c for c in df.columns[df.columns.duplicated()] if c in wanted})
        if duplicated:
            raise error(
                f"{source} has several columns named {_shown(duplicated)}; keep one of each "
                "(e.g. df.loc[:, ~df.columns.duplicated()]) or rename them."
            )


def as_column_list(columns: str | Sequence[str], what: str) -> list[str]:
    """One column name or a sequence of them, as a non-empty list."""
    cols = [columns] if isinstance(columns, str) else list(columns)
    if not cols:
        raise ScoringError(f"No {what} given: pass at least one column name.")
    return cols


def column_block(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame | np.ndarray:
    """``df[columns]``'s values without a copy when the columns share one evenly strided buffer.

    pandas 2 (Colab's and Kaggle's) copies on a list selection, pandas 3 does not. The loader
    keeps the int8 features in one Fortran-ordered block, so column ``j`` starts ``j * stride``
    bytes after column 0: when every column's address says so, the matrix is a strided view of
    that memory (checked address by address, so a wrong guess falls back to ``df[columns]``).
    Returns an array in that case and the selected frame otherwise; ``np.asarray`` takes both.
    On pandas 3 a run of adjacent columns is selected directly (``df[columns]``: a view when
    the run lies in one block), which costs well under a millisecond where looking up each
    column's address costs about 20 microseconds a column (15 ms at 705 features).
    """
    names = list(columns)
    if len(names) > 1 and df.columns.is_unique and _PANDAS_MAJOR >= 3:
        positions = df.columns.get_indexer(names)
        if bool(np.all(np.diff(positions) == 1)):
            return df[names]
    if len(names) > 1 and df.columns.is_unique:
        arrays = [df[name].to_numpy() for name in names]
        first = arrays[0]
        if first.dtype.kind in "iuf" and all(a.dtype == first.dtype for a in arrays):
            starts = [a.__array_interface__["data"][0] for a in arrays]
            step = starts[1] - starts[0]
            evenly = step != 0 and bool(np.all(np.diff(starts) == step))
            if evenly and all(a.strides == first.strides for a in arrays):
                return np.lib.stride_tricks.as_strided(
                    first,
                    shape=(len(first), len(names)),
                    strides=(first.strides[0], step),
                    writeable=False,
                )
    return df[names]


def numeric_matrix(df: pd.DataFrame, columns: list[str], what: str) -> np.ndarray:
    """``df[columns]`` as a numeric array (dtype kept, e.g. int8) with only finite values.

    Raises
    ------
    ScoringError
        If a column is missing, duplicated, not numeric, or holds NaN or an infinite value (the
        message names the columns).
    """
    require_columns(df, columns, what)
    dtypes = list(df.dtypes[list(columns)])  # one lookup, not one column access per name
    bad_type = [
        c
        for c, dt in zip(columns, dtypes, strict=True)
        if not pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt)
    ]
    if bad_type:
        raise ScoringError(
            f"{what.capitalize()} must be numeric; not numeric: {sorted(set(bad_type))[:10]}. "
            "Convert them with pd.to_numeric or pass other columns."
        )
    if all(isinstance(dt, np.dtype) for dt in dtypes):
        arr = np.asarray(column_block(df, columns))
    else:  # pandas extension dtypes (Float64, Int8, ...): pd.NA becomes NaN
        arr = df[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = _nonfinite_columns(arr)
    nan_cols = [c for c, flag in zip(columns, bad == "NaN", strict=True) if flag]
    if nan_cols:
        raise ScoringError(
            f"{what.capitalize()} contain NaN in columns {nan_cols[:10]}; "
            "fill them (e.g. with the column's era median) or drop those rows first."
        )
    inf_cols = [c for c, flag in zip(columns, bad == "inf", strict=True) if flag]
    if inf_cols:
        raise ScoringError(
            f"{what.capitalize()} contain infinite values in columns {inf_cols[:10]}; "
            "replace them with finite values (or drop those rows) first."
        )
    return arr


def _nonfinite_columns(arr: np.ndarray, chunk: int = 32) -> np.ndarray:
    """Per column "NaN", "inf" or "" (finite). Integer arrays are finite; floats are checked a
    few columns at a time (no full-size boolean temporary)."""
    flags = np.full(arr.shape[1], "", dtype=object)
    if not np.issubdtype(arr.dtype, np.floating):
        return flags
    for i in range(0, arr.shape[1], chunk):
        block = arr[:, i : i + chunk]
        nonfinite = ~np.isfinite(block).all(axis=0)
        for j in np.flatnonzero(nonfinite):
            flags[i + j] = "NaN" if np.isnan(block[:, j]).any() else "inf"
    return flags


def check_int(
    value: object, name: str, minimum: int = 0, *, error: type[NbutilsError] = ScoringError
) -> int:
    """``value`` as an int after checking it is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise error(f"{name}={value!r} is invalid: give an integer >= {minimum}.")
    return int(value)


def check_number(
    value: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    error: type[NbutilsError] = ScoringError,
) -> float:
    """``value`` as a float after checking it is a finite real number within ``[low, high]``."""
    bounds = f" in [{low}, {high}]" if low is not None and high is not None else ""
    if isinstance(value, bool | str):
        raise error(f"{name} must be a number{bounds}, got {value!r}.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise error(f"{name} must be a number{bounds}, got {value!r}.") from exc
    if not math.isfinite(number):
        raise error(f"{name} must be a finite number{bounds}, got {value!r}.")
    if (low is not None and number < low) or (high is not None and number > high):
        if bounds:
            raise error(f"{name} must lie in [{low}, {high}], got {number}.")
        raise error(
            f"{name} must be {'>= ' + str(low) if low is not None else '<= ' + str(high)}, got {number}."
        )
    return number


def check_proportion(proportion: object, name: str = "proportion") -> float:
    """``proportion`` as a float after checking it lies in [0, 1] (0 = unchanged, 1 = fully neutral)."""
    return check_number(proportion, name, 0.0, 1.0)
