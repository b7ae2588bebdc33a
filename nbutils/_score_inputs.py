"""The inputs of one score, checked and put in era order, and the per-era warnings.

:class:`ScoreFrame` is what every per-era score in :mod:`nbutils.metrics` starts with: it
checks the columns (:mod:`nbutils.checks`), groups the rows by era (:mod:`nbutils.eras`), puts
the prediction columns and the target-like columns in era order (the layout the kernels of
:mod:`nbutils._era_kernels` expect) and leaves out, era by era, the rows whose target-like
columns are NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property

import numpy as np
import pandas as pd

from nbutils._era_kernels import era_sums
from nbutils.checks import ScoringWarning, as_column_list, numeric_matrix, require_columns
from nbutils.eras import EraGroups, era_groups
from nbutils.errors import ScoringError

PredCols = str | Sequence[str]
#: Largest float64 block of prediction columns built at once by :meth:`ScoreFrame.pred_blocks`.
PRED_BLOCK_BYTES = 64 << 20
#: Up to this many prediction columns are checked (NaN, type) before anything else.
_EAGER_CHECK_COLUMNS = 32


def known_values(df: pd.DataFrame, col: str) -> np.ndarray:
    """A target-like column as float64: NaN stays NaN (the row is left out), ±inf raises.

    Raises
    ------
    ScoringError
        If the column is not numeric or holds an infinite value (numerai-tools' ``numerai_corr``
        fails on an infinite target too; nbutils says which column).
    """
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        raise ScoringError(
            f"Column {col!r} must be numeric, got dtype {s.dtype}. "
            "Convert it with pd.to_numeric or pass another column."
        )
    values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        raise ScoringError(
            f"Column {col!r} holds {n_inf} infinite value(s); a score needs finite values. "
            "Replace them (e.g. with NaN to leave those rows out) before scoring."
        )
    return values


class ScoreFrame:
    """The columns one score needs, as float64 arrays in era order.

    Attributes
    ----------
    pred_cols : list of str
        The prediction columns; ``is_list`` says whether a list was given.
    groups : EraGroups
        The eras of every row of ``df``.
    preds_all : np.ndarray
        ``(n_pred_cols, n_rows)`` predictions of every row, in era order (built on first use;
        :meth:`pred_blocks` gives them a block of columns at a time instead).
    keep : np.ndarray
        Which rows (in era order) have every target-like column known.
    starts : np.ndarray
        Era offsets of the kept rows (``groups.starts`` when nothing is left out).
    preds, kept : np.ndarray, dict
        Predictions and target-like columns of the kept rows, in era order.
    left_out : dict
        Column -> number of rows left out because of it.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        pred_col: PredCols,
        era_col: str,
        droppable: Sequence[str],
        required: Sequence[str] = (),
    ) -> None:
        self.pred_cols = as_column_list(pred_col, "prediction columns")
        self.is_list = not isinstance(pred_col, str)
        require_columns(df, [*self.pred_cols, *required, *droppable, era_col], "columns")
        self._df = df
        self.groups: EraGroups = era_groups(df, era_col)
        if len(self.pred_cols) <= _EAGER_CHECK_COLUMNS:  # report bad predictions first
            numeric_matrix(df, self.pred_cols, "predictions")
        keep = np.ones(len(df), dtype=bool)
        self.left_out: dict[str, int] = {}
        values: dict[str, np.ndarray] = {}
        for col in droppable:
            arr = self.groups.to_era_order(known_values(df, col))
            missing = np.isnan(arr)
            self.left_out[col] = int((missing & keep).sum())
            keep &= ~missing
            values[col] = arr
        self.keep = keep
        self.all_kept = bool(keep.all())
        if self.all_kept:  # nothing left out: share the era offsets
            self.starts = self.groups.starts
            self.kept = values
        else:
            counts = era_sums(keep.astype(np.float64), self.groups.starts).astype(np.int64)
            self.starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
            self.kept = {col: arr[keep] for col, arr in values.items()}
        self.counts = np.diff(self.starts)
        self._warn_left_out()

    def _era_ordered(self, cols: list[str]) -> np.ndarray:
        """``(len(cols), n_rows)`` float64 predictions of every row, in era order."""
        preds = numeric_matrix(self._df, cols, "predictions")
        return self.groups.to_era_order(preds.T.astype(np.float64, order="C"), axis=1)

    @cached_property
    def preds_all(self) -> np.ndarray:
        """``(n_pred_cols, n_rows)`` predictions of every row, in era order."""
        return self._era_ordered(self.pred_cols)

    @cached_property
    def preds(self) -> np.ndarray:
        """Predictions of the kept rows, in era order."""
        return self.preds_all if self.all_kept else self.preds_all[:, self.keep]

    def pred_blocks(self, max_bytes: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(first column number, predictions of the kept rows)`` a block of columns at a time.

        Each block holds at most ``max_bytes`` of float64 (default :data:`PRED_BLOCK_BYTES`, at
        least one column): scoring every feature as a prediction (notebook 02) never builds a
        float64 array of features x rows.
        """
        limit = PRED_BLOCK_BYTES if max_bytes is None else max_bytes
        width = max(1, limit // (8 * max(len(self.keep), 1)))
        for first in range(0, len(self.pred_cols), width):
            block = self._era_ordered(self.pred_cols[first : first + width])
            yield first, block if self.all_kept else block[:, self.keep]

    @property
    def rows_left_out(self) -> int:
        return sum(self.left_out.values())

    def _warn_left_out(self) -> None:
        for col, n in self.left_out.items():
            if n:
                warnings.warn(
                    f"Left out {n} row(s) whose {col!r} is NaN (scored era by era without them).",
                    ScoringWarning,
                    stacklevel=4,
                )

    def output(
        self, scores: dict[str, np.ndarray], invalid: dict[str, dict[int, str]]
    ) -> pd.Series | pd.DataFrame:
        """Series (one prediction column) or DataFrame, eras in natural order; NaN where invalid."""
        for col, reasons in invalid.items():
            scores[col][list(reasons)] = np.nan
        warn_invalid(invalid, self.groups.labels)
        index = self.groups.labels.copy()
        if self.is_list:
            out: pd.Series | pd.DataFrame = pd.DataFrame(scores, index=index)
        else:
            name = self.pred_cols[0]
            out = pd.Series(scores[name], index=index, name=name)
        out.attrs["rows_left_out"] = self.rows_left_out
        return out


def invalid_eras(counts: np.ndarray, checks: Iterable[tuple[np.ndarray, str]]) -> dict[int, str]:
    """Era number -> reason, for eras that cannot be scored (fewer than 2 rows first)."""
    reasons: dict[int, str] = {}
    for g in np.flatnonzero(counts < 2):
        reasons[int(g)] = f"{int(counts[g])} row(s)"
    for flags, reason in checks:
        for g in np.flatnonzero(flags):
            reasons.setdefault(int(g), reason)
    return reasons


def warn_invalid(invalid: dict[str, dict[int, str]], labels: pd.Index) -> None:
    """One :class:`ScoringWarning` per column naming (up to five of) its unscored eras."""
    for col, reasons in invalid.items():
        if not reasons:
            continue
        shown = ", ".join(f"{labels[g]} ({why})" for g, why in list(reasons.items())[:5])
        more = " ..." if len(reasons) > 5 else ""
        warnings.warn(
            f"{len(reasons)} era(s) of {col!r} cannot be scored and are NaN: {shown}{more}.",
            ScoringWarning,
            stacklevel=4,
        )
