"""Step 2C: machine learning. LightGBM training, prediction, and model save/load.

The tutorial trains one ``LGBMRegressor`` with :data:`SEED_PARAMS`. This module adds what a
participant needs every week, without changing that model:

- random-seed averaging (several boosters, averaged at prediction time);
- optional early stopping on a validation frame;
- optional era-wise time-series cross-validation with an embargo of eras between training and
  validation (:func:`era_splits`);
- progress: one line updated in place in a notebook (:class:`NotebookProgress`), tqdm's text
  bar in a terminal;
- a lean LightGBM ``Dataset``: the int8 feature matrix is never converted as a whole. LightGBM's
  own ``lgb.Dataset(numpy_int8)`` would first make a float32 copy of everything (and
  ``df[features].astype(float)`` a float64 copy). Here the bin boundaries are found from a row
  sample, read column by column, and the rows are then pushed in float32 batches
  (:func:`build_dataset`), so the extra memory is one batch plus LightGBM's own binned data.
- models saved in LightGBM's text format (never pickle): see :func:`save_model`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numerai_tools.scoring import numerai_corr
from tqdm.std import tqdm  # a text bar for terminals; notebooks get NotebookProgress

from nbutils._lgb_dataset import (
    BATCH_ROWS,
    DATASET_KEYS,
    INT_BIN_SAMPLE_ROWS,
    add_features,
    all_integer,
    dataset_params,
    finish,
    iter_batches,
    positions,
    push_rows,
    sample_columns,
)
from nbutils._lgb_model_text import check_model_text
from nbutils.errors import DataError
from nbutils.util import atomic_write_text, natural_sorted, release_memory

__all__ = [
    "EXAMPLE_MODEL_PARAMS",
    "INT_BIN_SAMPLE_ROWS",
    "SEED_PARAMS",
    "SeedAveragedModel",
    "build_dataset",
    "era_splits",
    "fit_seeds",
    "iter_batches",
    "labelled_dataset",
    "labelled_rows",
    "lgb_params",
    "lightgbm_parameter_names",
    "load_model",
    "predict",
    "progress_bar",
    "save_model",
    "train_lgbm",
]

#: The tutorial's configuration (step 2C): ``LGBMRegressor(objective="regression",
#: num_leaves=31, learning_rate=0.01, n_estimators=2000, max_depth=5, random_state=0)``.
SEED_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "num_leaves": 31,
    "learning_rate": 0.01,
    "n_estimators": 2000,
    "max_depth": 5,
    "random_state": 0,
}

#: Numerai's current example model (numerai/example-scripts, ``hello_numerai`` and
#: ``example_model.py``): ``LGBMRegressor(n_estimators=2000, learning_rate=0.01, max_depth=5,
#: num_leaves=2**5 - 1, colsample_bytree=0.1)``.
EXAMPLE_MODEL_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "n_estimators": 2000,
    "learning_rate": 0.01,
    "max_depth": 5,
    "num_leaves": 2**5 - 1,
    "colsample_bytree": 0.1,
}

#: Defaults added to every run unless the caller sets them: quiet, and reproducible
#: (``deterministic`` with a fixed column-wise histogram layout).
_RUN_DEFAULTS: dict[str, Any] = {"verbosity": -1, "deterministic": True, "force_col_wise": True}
_ROUNDS_ALIASES = (
    "n_estimators",
    "num_iterations",
    "num_iteration",
    "n_iter",
    "num_tree",
    "num_trees",
    "num_round",
    "num_rounds",
    "nrounds",
    "num_boost_round",
)
_SEED_ALIASES = ("random_state", "seed", "random_seed")
_MODEL_MAGIC = "nbutils-seed-averaged-model"


# -- parameters --------------------------------------------------------------------------------
def lgb_params(params: dict[str, Any], seed: int) -> tuple[dict[str, Any], int]:
    """LightGBM ``train`` parameters and number of rounds from sklearn-style ``params``.

    ``n_estimators`` (or any alias) becomes the number of boosting rounds (LightGBM's default
    100 if absent); ``random_state`` (or alias) is replaced by ``seed``; :data:`_RUN_DEFAULTS`
    are added unless set. (The Dataset's ``data_random_seed`` is fixed separately, see
    :func:`nbutils._lgb_dataset.dataset_params`, so that every seed of a run trains on the same bins.)
    """
    out = dict(_RUN_DEFAULTS)
    if "force_row_wise" in params:
        out.pop("force_col_wise")
    rounds = 100
    for key, value in params.items():
        if key in _ROUNDS_ALIASES:
            rounds = int(value)
        elif key not in _SEED_ALIASES:
            out[key] = value
    out["seed"] = int(seed)
    return out, rounds


def lightgbm_parameter_names() -> frozenset[str] | None:
    """Every parameter name and alias the installed LightGBM knows, or None when it cannot tell.

    LightGBM has no public function for this. Its Python package reads the table from the
    compiled library (the C API's ``LGBM_DumpParamAliases``) into ``lightgbm.basic._ConfigAliases``,
    a private name: this is the one place nbutils reads it. A LightGBM without it gives None,
    and a caller then leaves the names to LightGBM (which warns "Unknown parameter").
    """
    table = getattr(getattr(lgb, "basic", None), "_ConfigAliases", None)
    try:
        aliases = table._get_all_param_aliases()  # type: ignore[union-attr]
    except Exception:  # renamed or changed in another LightGBM version
        return None
    if not isinstance(aliases, dict) or not aliases:
        return None
    return frozenset(aliases) | {a for names in aliases.values() for a in names}


# -- lean Dataset (the steps are those of nbutils._lgb_dataset) -------------------------------
def _bin_reference(
    df: pd.DataFrame, pos: np.ndarray, rows: np.ndarray | None, n: int, params: dict[str, Any]
) -> lgb.Dataset:
    """A Dataset holding only the bin boundaries, found from LightGBM's row sample.

    LightGBM draws the sample rows (``bin_construct_sample_cnt``, ``data_random_seed``); the
    sampled values are read one column at a time. The Dataset is sized for the sample only, so
    the sample is freed before the full binned data is allocated. ``feature_pre_filter`` is off
    here because LightGBM scales its pre-filter threshold by ``sample / rows``, which would be
    1 for this sample-sized Dataset; at full size it filters only constant features, which
    never split anyway.
    """
    probe = lgb.Dataset(None, params=dict(params, feature_pre_filter=False), free_raw_data=True)
    sample = probe._create_sample_indices(total_nrow=n)
    sample_rows = sample if rows is None else rows[sample]
    values, indices = sample_columns(df.iloc[:, p].to_numpy()[sample_rows] for p in pos)
    probe._init_from_sample(values, indices, len(sample), len(sample))
    return probe


#: Bytes of values (one a value) binned at a time by :func:`build_dataset`.
BLOCK_BYTES = 64 << 20


def _binned_block(
    df: pd.DataFrame,
    features: Sequence[str],
    pos: np.ndarray,
    rows: np.ndarray | None,
    n: int,
    params: dict[str, Any],
    batch_rows: int,
) -> lgb.Dataset:
    """The Dataset of one block of features: bins from the row sample (:func:`_bin_reference`),
    then the rows pushed in float32 batches."""
    bins = _bin_reference(df, pos, rows, n, params)
    release_memory()  # the sample is gone: give its pages back before the bins
    ds = lgb.Dataset(None, params=dict(params), free_raw_data=True)
    ds._init_from_ref_dataset(n, bins._handle)
    bins._free_handle()
    del bins
    push_rows(ds, df, features, rows, batch_rows)
    ds.set_feature_name(list(features))  # unique names: LightGBM renames repeated ones, warning
    return ds


def _blocks(n_features: int, width: int) -> list[slice]:
    """The first feature alone, then blocks of ``width`` features (see :func:`build_dataset`)."""
    return [slice(0, 1)] + [
        slice(start, min(start + width, n_features)) for start in range(1, n_features, width)
    ]


def build_dataset(
    df: pd.DataFrame,
    features: Sequence[str],
    label: np.ndarray,
    params: dict[str, Any],
    rows: np.ndarray | None = None,
    reference: lgb.Dataset | None = None,
    batch_rows: int = BATCH_ROWS,
) -> lgb.Dataset:
    """A constructed LightGBM ``Dataset`` built without converting the whole feature matrix.

    Steps (those of LightGBM's ``Sequence`` loader, without its float64 row sample), for one
    block of features at a time (:func:`_binned_block`): the first feature alone, then blocks of
    ``BLOCK_BYTES // rows`` features:

    1. the bin boundaries are found from LightGBM's row sample, read column by column, in a
       sample-sized Dataset (:func:`_bin_reference`), which is then freed;
    2. the block's Dataset is created from those bins and the rows are pushed in float32
       batches (at most ``batch_rows`` x all features values; LightGBM bins them as they come);
    3. each later block's features are copied into the first block's Dataset
       (``LGBM_DatasetAddFeaturesFrom``) and the block is freed; the label and feature names
       are set.

    Why blocks: a 4-bit feature (at most 16 bins: Numerai's 0..4) allocates its data and a push
    buffer of the same size, and LightGBM keeps the buffer after the push (``buf_.clear()`` in
    its ``dense_bin.hpp``): about 1 byte a value in all. The copy made by step 3 holds the data
    only, half a byte a value; the first block, whose buffer is kept, is one feature.

    A validation set passes ``reference`` (the training Dataset), reuses its bins and is built
    in one block. The result trains the same trees as ``lgb.Dataset(df[features].to_numpy(),
    label, params=params)`` (tested). Peak memory: the frame, LightGBM's binned data (about half
    a byte a value with 4-bit bins, one byte with 8-bit ones), and one block's binning (about
    one byte a value of the block).

    Parameters
    ----------
    df : DataFrame
        Holds the feature columns (int8 or float).
    features : sequence of str
        Feature columns, in model order.
    label : ndarray
        Target for the selected rows.
    params : dict
        LightGBM parameters (see :func:`lgb_params`).
    rows : ndarray of int, optional
        Row positions to use (default: every row).
    reference : lightgbm.Dataset, optional
        The training set, for a validation set.
    batch_rows : int
        Rows converted to float32 at a time when every feature is pushed at once (a block of
        fewer features is pushed in proportionally more rows).
    """
    pos = positions(df, features)
    features = list(features)
    n = len(df) if rows is None else len(rows)
    if n == 0:
        raise DataError("no rows to train on; check the era selection and the target column.")
    if reference is not None:
        ds = lgb.Dataset(None, params=dict(params), free_raw_data=True)
        ds._init_from_ref_dataset(n, reference._handle)
        ds.reference = reference
        push_rows(ds, df, features, rows, batch_rows)
        return finish(ds, label, features)
    ds = None
    for block in _blocks(len(features), max(1, BLOCK_BYTES // n)):
        width = block.stop - block.start
        part = _binned_block(
            df,
            features[block],
            pos[block],
            rows,
            n,
            params,
            max(batch_rows, batch_rows * len(features) // width),
        )
        if ds is None:
            ds = part
            continue
        add_features(ds, part)
        part._free_handle()
        del part
        release_memory()
    return finish(ds, label, features)


# -- the model ---------------------------------------------------------------------------------
@dataclass
class SeedAveragedModel:
    """LightGBM boosters trained with different seeds; predictions are their mean.

    Attributes
    ----------
    boosters : list of lightgbm.Booster
        One per seed, each trimmed to its best iteration when early stopping was used.
    features : list of str
        The feature columns, in the order the boosters expect.
    seeds : list of int
    cv_scores : DataFrame or None
        Per-fold validation scores when trained with ``cv_folds``.
    """

    boosters: list[lgb.Booster]
    features: list[str]
    seeds: list[int] = field(default_factory=list)
    cv_scores: pd.DataFrame | None = None

    def predict(self, df: pd.DataFrame, batch_rows: int = 65_536) -> pd.Series:
        """Mean of the boosters' predictions, indexed like ``df`` (see :func:`predict`)."""
        return predict(self, df, batch_rows=batch_rows)

    @property
    def num_trees(self) -> list[int]:
        """Trees per booster."""
        return [b.num_trees() for b in self.boosters]


# -- cross-validation --------------------------------------------------------------------------
def era_splits(
    eras: Sequence[str], n_folds: int, embargo_eras: int = 4
) -> list[tuple[list[str], list[str]]]:
    """Era-wise time-series folds with an embargo (walk-forward, as sklearn's TimeSeriesSplit).

    The unique eras, in natural order, are cut into ``n_folds + 1`` contiguous blocks.
    Fold ``k`` validates on block ``k + 1`` and trains on every earlier era except the
    ``embargo_eras`` eras just before the validation block, so that the last training era and
    the first validation era are more than ``embargo_eras`` eras apart (Numerai targets look
    about 20 business days ahead: neighbouring eras overlap).

    Returns
    -------
    list of (train_eras, valid_eras)
    """
    unique = natural_sorted(pd.unique(pd.Series(list(eras), dtype=str)))
    if n_folds < 1 or embargo_eras < 0:
        raise DataError("cv_folds must be >= 1 and embargo_eras >= 0.")
    blocks = np.array_split(np.arange(len(unique)), n_folds + 1)
    splits = []
    for k in range(n_folds):
        valid = blocks[k + 1]
        if len(valid) == 0:
            raise DataError(f"{len(unique)} eras are too few for {n_folds} folds; use fewer folds.")
        last_train = valid[0] - embargo_eras
        if last_train <= 0:
            raise DataError(
                f"fold {k + 1} has no training era left after an embargo of {embargo_eras} eras "
                f"({len(unique)} eras in all); use fewer folds or a shorter embargo."
            )
        splits.append(([unique[i] for i in range(last_train)], [unique[i] for i in valid]))
    return splits


def _fold_score(valid: pd.DataFrame, pred: np.ndarray, target: str, era_col: str) -> float:
    """Mean over eras of ``numerai_tools.scoring.numerai_corr`` (docs/design.md's numerai corr)."""
    frame = pd.DataFrame({"prediction": pred, "target": valid[target].to_numpy()})
    frame["era"] = valid[era_col].to_numpy()
    scores = [
        float(numerai_corr(g[["prediction"]], g["target"]).iloc[0])
        for _, g in frame.groupby("era", sort=False)
    ]
    return float(np.nanmean(scores))


# -- progress ----------------------------------------------------------------------------------
class NotebookProgress:
    """A progress line for a Jupyter kernel: one line of text, updated in place.

    It is an IPython display with a ``display_id``: Jupyter and Colab redraw it while training
    runs, and a saved notebook (papermill, nbclient) keeps only its last state, so an executed
    notebook shows one line (tqdm's text bar would leave one line per update, on stderr).
    Updated every ``every`` rounds and at the end; the last line gives the elapsed time.
    """

    def __init__(self, total: int, every: int, desc: str = "LightGBM") -> None:
        from IPython.display import display

        self.total, self.every, self.desc, self.n = int(total), max(1, int(every)), desc, 0
        self._start = time.perf_counter()
        self._handle = display({"text/plain": self.text()}, raw=True, display_id=True)

    def text(self, done: bool = False) -> str:
        """The line: rounds done of the total, or at the end the elapsed seconds."""
        if done:
            seconds = time.perf_counter() - self._start
            return f"{self.desc}: {self.n} ラウンドの学習が終わりました（{seconds:.1f} 秒）"
        percent = 100 * self.n // max(self.total, 1)
        return f"{self.desc}: {self.n} / {self.total} ラウンド（{percent}%）"

    def update(self, k: int = 1) -> None:
        """Count ``k`` more rounds; redraw when a multiple of ``every`` is passed."""
        before = self.n // self.every
        self.n += int(k)
        if self.n // self.every != before and self._handle is not None:
            self._handle.update({"text/plain": self.text()}, raw=True)

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": self.text(done=exc[0] is None)}, raw=True)


def _in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, papermill, Colab, Kaggle)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebooks' requirements
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(total: int, enabled: bool, desc: str = "LightGBM") -> NotebookProgress | tqdm:
    """The progress of ``total`` boosting rounds for ``train_lgbm`` (and for
    :mod:`nbutils.validation`, named by ``desc``): :class:`NotebookProgress` in a Jupyter
    kernel, else tqdm's text bar on stderr (a terminal redraws it in place); both update every
    10 %. ``enabled=False``: a disabled bar that still counts."""
    every = max(1, total // 10)
    if enabled and _in_kernel():
        return NotebookProgress(total, every, desc)
    # maxinterval=inf: tqdm's monitor thread would otherwise drop miniters to 1 on a slow run
    return tqdm(
        total=total,
        desc=desc,
        unit="round",
        disable=not enabled,
        miniters=every,
        maxinterval=float("inf"),
    )


# -- training ----------------------------------------------------------------------------------
def _progress_callback(bar: tqdm | NotebookProgress) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        bar.update(1)

    callback.order = 100  # type: ignore[attr-defined]
    return callback


def labelled_rows(df: pd.DataFrame, target: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Positions of the rows of ``df`` whose ``target`` is known (within ``mask`` when given):
    the rows a model is trained or scored on (:mod:`nbutils.validation` uses it too).

    Raises :class:`DataError` when ``target`` is not a column."""
    if target not in df.columns:
        raise DataError(f"target column {target!r} not in the frame; pass target=... of your data.")
    ok = df[target].notna().to_numpy()
    if mask is not None:
        ok = ok & mask
    return np.flatnonzero(ok)


def labelled_dataset(
    df: pd.DataFrame,
    features: Sequence[str],
    target: str,
    params: dict[str, Any],
    batch_rows: int,
    mask: np.ndarray | None = None,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """:func:`build_dataset` of the rows of ``df`` (within ``mask``) whose target is known
    (:func:`labelled_rows`); the frame is never copied. ``params``: the Dataset's parameters
    (:func:`nbutils._lgb_dataset.dataset_params`); ``reference``: a Dataset whose bins to reuse."""
    rows = labelled_rows(df, target, mask)
    return build_dataset(
        df,
        features,
        df[target].to_numpy()[rows],
        params,
        rows=None if len(rows) == len(df) else rows,
        reference=reference,
        batch_rows=batch_rows,
    )


def fit_seeds(
    train_ds: lgb.Dataset,
    valid_ds: lgb.Dataset | None,
    params: dict[str, Any],
    seeds: Sequence[int],
    early_stopping_rounds: int | None,
    bar: tqdm | NotebookProgress,
) -> list[lgb.Booster]:
    """One booster per seed on ``train_ds``, as :func:`train_lgbm` trains (and
    :mod:`nbutils.validation` for each fold): ``params`` through :func:`lgb_params` with the
    seed, the Dataset's own parameters repeated, ``bar`` advanced by every round; with
    ``valid_ds`` and ``early_stopping_rounds``, each booster keeps only its best trees."""
    boosters = []
    for seed in seeds:
        run_params, rounds = lgb_params(params, seed)
        for key in DATASET_KEYS:
            if key in train_ds.params:
                run_params[key] = train_ds.params[key]
        callbacks = [_progress_callback(bar)]
        valid_sets = None
        if valid_ds is not None:
            valid_sets = [valid_ds]
            if early_stopping_rounds:
                callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
        start = bar.n
        booster = lgb.train(
            run_params, train_ds, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
        )
        bar.update(rounds - (bar.n - start))
        if booster.best_iteration > 0:  # early stopping: keep only the best trees
            booster = lgb.Booster(
                model_str=booster.model_to_string(num_iteration=booster.best_iteration)
            )
        boosters.append(booster)
    return boosters


def train_lgbm(
    train_df: pd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    valid_df: pd.DataFrame | None = None,
    early_stopping_rounds: int | None = None,
    cv_folds: int | None = None,
    embargo_eras: int = 4,
    era_col: str = "era",
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> SeedAveragedModel:
    """Train LightGBM regressors on ``train_df[features]`` (tutorial step 2C).

    One booster per seed (``seed`` replaces ``random_state``), averaged at prediction time.
    With one seed and :data:`SEED_PARAMS`, the tutorial's model.

    Parameters
    ----------
    train_df : DataFrame
        Training rows; rows whose target is NaN are skipped.
    features : sequence of str
        Feature columns (int8 or float).
    target : str
        Target column.
    params : dict, optional
        sklearn-style LightGBM parameters (default :data:`SEED_PARAMS`).
    seeds : sequence of int
        One booster per seed.
    valid_df : DataFrame, optional
        Evaluated during training (l2); with ``early_stopping_rounds``, training of each seed
        stops when it has not improved for that many rounds and the best iteration is kept.
    early_stopping_rounds : int, optional
        Needs ``valid_df``.
    cv_folds : int, optional
        Before the final fit, era-wise walk-forward cross-validation (:func:`era_splits`);
        the per-fold mean numerai corr is stored in ``model.cv_scores``.
    embargo_eras : int
        Eras left out between training and validation eras in each fold.
    era_col : str
        Era column (for cross-validation).
    progress : bool
        Show a tqdm bar (one step per boosting round).
    batch_rows : int
        Rows converted to float32 at a time when building the Dataset.

    Returns
    -------
    SeedAveragedModel

    Notes
    -----
    Memory: the Dataset is built by :func:`build_dataset` (float32 batches, never the whole
    matrix). When every feature has an integer dtype (Numerai's int8 0..4) and ``params`` does
    not set ``bin_construct_sample_cnt``, the bins are found from :data:`INT_BIN_SAMPLE_ROWS`
    sampled rows instead of LightGBM's 200,000: LightGBM keeps 12 bytes per sampled non-zero
    value while it finds the bins (about 1 GB for 500 features), and with a few distinct values
    per feature the smaller sample finds the same bins, hence the same model (tested, and
    checked by ``bench/bench_train.py``).
    """
    params = dict(SEED_PARAMS if params is None else params)
    features = list(features)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DataError("seeds is empty; pass at least one seed, e.g. seeds=(0,).")
    if early_stopping_rounds and valid_df is None:
        raise DataError("early stopping needs a validation frame: pass valid_df=...")
    base_params, rounds = lgb_params(params, seeds[0])
    integer = all_integer(train_df.dtypes.iloc[positions(train_df, features)])
    ds_params = dataset_params(base_params, integer)
    folds = era_splits(train_df[era_col], cv_folds, embargo_eras) if cv_folds else []
    total = rounds * len(seeds) * (len(folds) + 1)
    cv_rows = []
    with progress_bar(total, progress) as bar:
        eras = train_df[era_col].astype(str).to_numpy() if folds else None
        for k, (train_eras, valid_eras) in enumerate(folds):
            fold_valid = labelled_rows(train_df, target, np.isin(eras, valid_eras))
            in_fold = np.isin(eras, train_eras)
            ds = labelled_dataset(train_df, features, target, ds_params, batch_rows, in_fold)
            fold_model = SeedAveragedModel(fit_seeds(ds, None, params, seeds, None, bar), features)
            del ds
            valid = train_df.iloc[fold_valid]
            score = _fold_score(valid, predict(fold_model, valid).to_numpy(), target, era_col)
            cv_rows.append(
                {
                    "fold": k + 1,
                    "train_eras": len(train_eras),
                    "first_train_era": train_eras[0],
                    "last_train_era": train_eras[-1],
                    "first_valid_era": valid_eras[0],
                    "last_valid_era": valid_eras[-1],
                    "valid_eras": len(valid_eras),
                    "corr_mean": score,
                }
            )
        train_ds = labelled_dataset(train_df, features, target, ds_params, batch_rows)
        valid_ds = None
        if valid_df is not None:
            valid_ds = labelled_dataset(
                valid_df, features, target, ds_params, batch_rows, reference=train_ds
            )
        boosters = fit_seeds(train_ds, valid_ds, params, seeds, early_stopping_rounds, bar)
    cv_scores = pd.DataFrame(cv_rows) if folds else None
    return SeedAveragedModel(boosters, features, seeds, cv_scores)


# -- prediction --------------------------------------------------------------------------------
def predict(
    model: SeedAveragedModel,
    df: pd.DataFrame,
    features: Sequence[str] | None = None,
    batch_rows: int = 65_536,
) -> pd.Series:
    """Predictions for ``df``: the mean over the model's boosters, a Series indexed like ``df``.

    Rows are converted to float32 in batches. Deterministic: the same model and rows give the
    same values bit for bit.

    Parameters
    ----------
    model : SeedAveragedModel
    df : DataFrame
        Holds the model's feature columns.
    features : sequence of str, optional
        Must equal ``model.features`` when given (a guard against a changed feature list).
    batch_rows : int
        Rows converted at a time.
    """
    if features is not None and list(features) != list(model.features):
        raise DataError(
            "the feature list differs from the one the model was trained on; "
            "apply the same FeatureSpec and pass model.features."
        )
    out = np.empty(len(df), dtype=np.float64)
    start = 0
    for batch in iter_batches(df, model.features, batch_rows=batch_rows):
        stop = start + len(batch)
        acc = np.zeros(len(batch), dtype=np.float64)
        for booster in model.boosters:
            acc += booster.predict(batch)
        out[start:stop] = acc / len(model.boosters)
        start = stop
    return pd.Series(out, index=df.index, name="prediction")


# -- save / load -------------------------------------------------------------------------------
def save_model(model: SeedAveragedModel, path: str | os.PathLike) -> Path:
    """Write the model as text (atomically); never pickle.

    One booster: the file is exactly LightGBM's model text (``lgb.Booster(model_file=path)``
    reads it). Several boosters: the first line is ``nbutils-seed-averaged-model`` followed by
    a JSON header (format version, features, seeds, the character length of each booster's
    text, the CV scores), then the boosters' LightGBM texts one after another.

    Saved as a run's ``model.txt``, it is written under the run's lock and its fingerprint is
    recorded (:func:`nbutils.run.fingerprints.saving`), as notebook 03 in the chain does.
    """
    from nbutils.run.fingerprints import saving

    texts = [b.model_to_string() for b in model.boosters]
    if len(texts) == 1 and model.cv_scores is None:
        text = texts[0]
    else:
        header = {
            "format": 1,
            "features": model.features,
            "seeds": model.seeds,
            "lengths": [len(t) for t in texts],
            "cv_scores": None
            if model.cv_scores is None
            else model.cv_scores.to_dict(orient="list"),
        }
        text = f"{_MODEL_MAGIC} {json.dumps(header)}\n" + "".join(texts)
    with saving(path):
        return atomic_write_text(path, text)


def _booster(text: str, source: str) -> lgb.Booster:
    """A Booster from model text, checked first (a corrupt text would abort the process)."""
    check_model_text(text, source)
    try:
        return lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as err:
        raise DataError(
            f"{source} is not a valid LightGBM model ({err}); train and save it again (notebook 03)."
        ) from err


def load_model(path: str | os.PathLike) -> SeedAveragedModel:
    """Read a model written by :func:`save_model` (or any LightGBM text model).

    The text is checked before LightGBM parses it (:mod:`nbutils._lgb_model_text`): a
    truncated or corrupt file raises DataError naming it, instead of aborting the process.
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"no model at {source}; train one (notebook 03) or check the path.")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{source} is not a text model ({err}); save the model again.") from err
    if not text.startswith(_MODEL_MAGIC):
        booster = _booster(text, str(source))
        return SeedAveragedModel([booster], booster.feature_name())
    first, _, body = text.partition("\n")
    try:
        header = json.loads(first[len(_MODEL_MAGIC) :])
        lengths = [int(n) for n in header["lengths"]]
        features = [str(f) for f in header["features"]]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{source}: its header is corrupt ({err}); save the model again.") from err
    if header.get("format") != 1:
        raise DataError(f"{source}: model format {header.get('format')} is not supported.")
    if sum(lengths) != len(body):
        raise DataError(f"{source} is truncated or edited (lengths do not add up); save it again.")
    boosters, start = [], 0
    for k, length in enumerate(lengths):
        boosters.append(_booster(body[start : start + length], f"{source} (booster {k + 1})"))
        start += length
    cv = header.get("cv_scores")
    return SeedAveragedModel(
        boosters,
        features,
        list(header.get("seeds") or []),
        None if cv is None else pd.DataFrame(cv),
    )


# -- one model per target (notebook 08) --------------------------------------------------------
_TARGET_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _check_targets(train_df: pd.DataFrame, targets: Sequence[str]) -> list[str]:
    names = [targets] if isinstance(targets, str) else list(targets)
    if not names:
        raise DataError("targets is empty: name at least one target column, e.g. ['target'].")
    duplicated = sorted({t for t in names if names.count(t) > 1})
    if duplicated:
        raise DataError(f"targets names {duplicated} more than once: give each target once.")
    bad = [t for t in names if not isinstance(t, str) or not _TARGET_NAME.match(t)]
    if bad:
        raise DataError(
            f"targets {bad} are not column names of letters, digits and '_' "
            "(e.g. 'target_cyrusd_20')."
        )
    missing = [t for t in names if t not in train_df.columns]
    if missing:
        known = [c for c in train_df.columns if str(c).startswith("target")]
        raise DataError(
            f"targets {missing} are not columns of the training frame; its targets: {known}. "
            "Load them with load_data(..., targets=None) or fix the names."
        )
    return names


def train_targets(
    train_df: pd.DataFrame,
    features: Sequence[str],
    targets: Sequence[str],
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, SeedAveragedModel]:
    """One model per target, each ``train_lgbm(train_df, features, target, params, seeds)``.

    Every model gets the same parameters and seeds (the run's preset), so the models differ only
    in what they learn from; ``kwargs`` go to :func:`train_lgbm` unchanged. Each target's rows
    with a NaN target are skipped for that model only. Returns ``{target: model}`` in the order
    of ``targets``.

    Raises
    ------
    DataError
        An empty or repeated target list, or a name that is not a column of ``train_df``.
    """
    names = _check_targets(train_df, targets)
    return {
        target: train_lgbm(
            train_df,
            features,
            target=target,
            params=params,
            seeds=seeds,
            progress=progress,
            **kwargs,
        )
        for target in names
    }


def target_model_path(directory: str | os.PathLike, target: str) -> Path:
    """Where the model of ``target`` is saved: ``<directory>/model_<target>.txt``."""
    if not isinstance(target, str) or not _TARGET_NAME.match(target):
        raise DataError(f"target {target!r} is not a column name of letters, digits and '_'.")
    return Path(directory) / f"model_{target}.txt"


def save_target_models(
    models: dict[str, SeedAveragedModel], directory: str | os.PathLike
) -> dict[str, Path]:
    """Save each model with :func:`save_model` at :func:`target_model_path`; returns the paths."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    return {t: save_model(m, target_model_path(directory, t)) for t, m in models.items()}


def load_target_models(
    directory: str | os.PathLike, targets: Sequence[str]
) -> dict[str, SeedAveragedModel]:
    """The models :func:`save_target_models` wrote for ``targets`` (in that order)."""
    return {t: load_model(target_model_path(directory, t)) for t in targets}
