"""Feature values: the bins 0..4 both layouts hold, checked and converted to the loaded dtype.

v5 files store int8 bins 0..4; the 2021 CSV files store 0, 0.25, 0.5, 0.75, 1 (bin / 4). Loading
as int8 maps both to 0..4 (:func:`to_int8_bins`); loading as float32 keeps the stored values.
Either way an integer outside 0..4 is refused (:func:`check_int_bins`), because int8 would wrap
it silently (int64 300 becomes 44).
"""

from __future__ import annotations

import numpy as np

from nbutils.errors import DataError


def check_int_bins(values: np.ndarray, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` unless integer feature values are bins 0..4.

    int8 and uint8 are checked in one pass: as unsigned bytes, -1..-128 read 255..128, so
    ``value > 4`` catches both ends. Wider integers (int64 300 would wrap to 44 in int8) by
    their minimum and maximum.
    """
    if values.size == 0:
        return
    if values.dtype.itemsize == 1:
        bad = bool((values.view(np.uint8) > 4).any())
    else:
        bad = bool(values.min() < 0 or values.max() > 4)
    if bad:
        raise DataError(
            f"{source} has integer feature values outside the bins 0..4 (from {values.min()} to "
            f"{values.max()}): Numerai's integer features are 0..4, so the file is damaged or not "
            "Numerai data: download it again (download_numerai_data) or rebuild the dataset"
        )


def to_int8_bins(values: np.ndarray, scale: float, source: str) -> np.ndarray:
    """Feature values as int8 bins 0..4: ``round(scale * x)`` (``scale`` 4 for the 2021 files'
    0, 0.25, ..., 1); missing values become the middle bin 2 (Numerai's own int8 convention).

    Raises :class:`DataError` naming ``source`` when a value is off that grid, or an integer
    value is outside 0..4 (:func:`check_int_bins`).
    """
    if values.dtype.kind in "iu":
        check_int_bins(values, source)
        return values if values.dtype == np.int8 else values.astype(np.int8)
    scaled = values * scale if scale != 1 else values
    scaled = np.where(np.isnan(scaled), 2, scaled)
    rounded = np.rint(scaled)
    if np.any(np.abs(scaled - rounded) > 1e-3) or np.any((rounded < 0) | (rounded > 4)):
        raise DataError(
            f"{source} has feature values off the 0, 0.25, ..., 1 grid (bins 0..4), which int8 "
            'cannot hold: load it with dtype="float32" (on the local engine)'
        )
    return rounded.astype(np.int8)


def to_feature_values(values: np.ndarray, dtype: np.dtype, legacy: bool, source: str) -> np.ndarray:
    """File values to the loaded dtype: int8 bins (:func:`to_int8_bins`), or float32 as stored
    (integers still checked to be bins 0..4)."""
    if dtype != np.float32:
        return to_int8_bins(values, 4.0 if legacy else 1.0, source)
    if values.dtype.kind in "iu":
        check_int_bins(values, source)
    return values.astype(np.float32, copy=False)


def empty_values(n: int, n_features: int, dtype: np.dtype) -> np.ndarray:
    """Fortran order: each feature is contiguous, and pandas uses ``values.T`` as its block as is."""
    return np.empty((n, n_features), dtype=dtype, order="F")
