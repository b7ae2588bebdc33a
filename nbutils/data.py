"""Step 2A: the data. Dataset layouts, the synthetic generator, download through numerapi, loading.

This module is at the bottom of nbutils: it imports only ``nbutils.errors`` and ``nbutils.util``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


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
