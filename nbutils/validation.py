"""Out-of-sample protocols: scores of a model on eras it never saw (beyond the guide; issue 18).

The guide trains once and reads one validation score. Numerai's targets look 20 (or 60) trading
days ahead, so neighbouring eras overlap, and one block of validation eras is one noisy sample.
This module holds the protocols that score a model the way Numerai builds its benchmark models:

- :func:`walk_forward_splits`: Numerai's documented walk-forward protocol (docs.numer.ai,
  "Benchmark Models", "How they are made"). The eras are cut into chunks of ``chunk`` eras
  (156, three years of weekly eras); each chunk after the first is predicted by a model trained
  on every era up to ``first era of the chunk - purge - 1``. The purge is 8 eras for 20-day
  targets and 16 for 60-day targets (:data:`PURGE_BY_HORIZON`);
- :func:`walk_forward_predict`: out-of-sample predictions for every era the protocol covers, one
  model per chunk;
- :func:`era_boost`: the era-boosting recipe of Numerai's example-scripts (train, find the worst
  fraction of eras by per-era CORR, add trees trained on them only, repeat);
- :func:`search_params`: a small grid search, each setting scored on held-out eras with the purge
  (the walk-forward splits by default): a tidy table of mean, Sharpe and per-fold CORR.

Every score is the per-era numerai corr of :func:`nbutils.metrics.per_era_corr`. Memory: a model
is trained on the rows of its training eras through :func:`nbutils.train.build_dataset` (the
frame is never copied; float32 batches), its Dataset is freed before the next model, and rows are
predicted in float32 batches, so the peak is that of training one model on all the rows, the
training the run's memory plan counts (:mod:`nbutils.data.plan`).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nbutils._lgb_dataset import (
    BATCH_ROWS,
    DATASET_KEYS,
    all_integer,
    dataset_params,
    iter_batches,
    positions,
)
from nbutils.checks import check_int, check_number, require_columns
from nbutils.eras import EMBARGO_BY_HORIZON, embargo_eras, era_number
from nbutils.errors import DataError
from nbutils.metrics import per_era_corr, sharpe
from nbutils.train import (
    SEED_PARAMS,
    NotebookProgress,
    SeedAveragedModel,
    fit_seeds,
    labelled_dataset,
    labelled_rows,
    lgb_params,
    lightgbm_parameter_names,
    progress_bar,
)
from nbutils.util import natural_sorted, release_memory

if TYPE_CHECKING:
    from tqdm.std import tqdm

__all__ = [
    "NUMERAI_CHUNK",
    "PURGE_BY_HORIZON",
    "era_boost",
    "purge_eras",
    "search_params",
    "walk_forward_predict",
    "walk_forward_splits",
]

#: Eras per walk-forward chunk in Numerai's benchmark models (156 weekly eras: three years).
NUMERAI_CHUNK = 156
#: Eras purged before each chunk, by the target's horizon in trading days (Numerai's docs).
PURGE_BY_HORIZON: dict[int, int] = {20: 8, 60: 16}

Split = tuple[list[str], list[str]]


def purge_eras(target: str) -> int:
    """The purge of Numerai's walk-forward for ``target``: 8 eras for a 20-day target ("target"
    and names ending in ``_20``), 16 for a 60-day target (names ending in ``_60``).

    The horizon is read as :func:`nbutils.eras.embargo_eras` reads it (which raises DataError for a
    name without a known horizon).
    """
    embargo = embargo_eras(target)
    horizon = next(h for h, n in EMBARGO_BY_HORIZON.items() if n == embargo)
    return PURGE_BY_HORIZON[horizon]


def walk_forward_splits(
    eras: Sequence[Any] | pd.Series,
    chunk: int = NUMERAI_CHUNK,
    purge: int | None = None,
    target: str | None = None,
) -> list[Split]:
    """Numerai's walk-forward protocol: ``(train eras, predict eras)`` per predicted chunk.

    With ``e0`` the smallest era number (:func:`nbutils.eras.era_number`: ``"0001"`` and
    ``"era1"`` are era 1), chunk ``k = 0, 1, ...`` holds the eras numbered
    ``e0 + k*chunk .. e0 + (k+1)*chunk - 1``. Chunk ``k >= 1`` is predicted by a model trained on
    every era numbered ``<= first era of the chunk - purge - 1``; the ``purge`` eras in between
    are left out because their targets overlap the chunk's. The first chunk has no earlier eras
    and is never predicted; a chunk with no training era left after the purge is skipped.

    Numerai's docs: chunks of 156 eras, purge 8 (20-day targets) or 16 (60-day targets); so eras
    157-312 are predicted by a model trained on eras 1-148 (149-156 purged), eras 313-468 by one
    trained on 1-304, and so on. (The docs' sentence gives "157 to 313" and "314-470", chunks of
    157 eras; we follow their rule, chunks of 156.) Eras are compared by number, so data that
    keeps every 4th era (``era_step=4``) is still purged by the true distance.

    Parameters
    ----------
    eras : sequence or Series
        Era labels (one per row, or unique); every label needs a number.
    chunk : int
        Eras per chunk (>= 1).
    purge : int, optional
        Eras left out before each chunk (>= 0); default from ``target`` (:func:`purge_eras`).
    target : str, optional
        The target the model learns (default "target", a 20-day target: purge 8).

    Returns
    -------
    list of (train_eras, predict_eras)
        Era labels (str) in natural order.

    Raises
    ------
    DataError
        For a bad ``chunk`` or ``purge``, an era label without a number, or eras too few for one
        predicted chunk.
    """
    chunk = check_int(chunk, "chunk", 1, error=DataError)
    purge = purge_eras(target or "target") if purge is None else purge
    purge = check_int(purge, "purge", 0, error=DataError)
    labels = natural_sorted(pd.unique(pd.Series(list(eras), dtype=str)))
    if not labels:
        raise DataError("no eras given: pass the era column of the training data.")
    numbers = np.array([era_number(label) for label in labels])
    first = int(numbers.min())
    block = (numbers - first) // chunk
    splits = []
    for k in range(1, int(block.max()) + 1):
        predict = [lab for lab, b in zip(labels, block, strict=True) if b == k]
        last_train = first + k * chunk - purge - 1
        train = [lab for lab, n in zip(labels, numbers, strict=True) if n <= last_train]
        if predict and train:
            splits.append((train, predict))
    if not splits:
        raise DataError(
            f"{len(labels)} eras (numbers {first}..{int(numbers.max())}) give no predicted chunk "
            f"with chunk={chunk} and purge={purge}: the eras must reach past chunk + purge + 1 "
            f"eras. Use a smaller chunk (e.g. chunk={max(1, len(labels) // 5)})."
        )
    return splits


# -- training and scoring on rows of one frame (no copies) ---------------------------------------
def _check_frame(df: pd.DataFrame, features: Sequence[str], target: str, era_col: str) -> None:
    require_columns(df, [era_col, target], "era and target columns", error=DataError)
    positions(df, features)


def _fit_rows(
    df: pd.DataFrame,
    features: list[str],
    target: str,
    params: Mapping[str, Any],
    seeds: Sequence[int],
    mask: np.ndarray,
    bar: NotebookProgress | tqdm,
    batch_rows: int,
) -> SeedAveragedModel:
    """One seed-averaged model trained on the rows of ``df`` where ``mask`` holds (and the target
    is known), as :func:`nbutils.train.train_lgbm` trains; the Dataset is freed on return."""
    base, _ = lgb_params(dict(params), seeds[0])
    integer = all_integer(df.dtypes.iloc[positions(df, features)])
    ds = labelled_dataset(df, features, target, dataset_params(base, integer), batch_rows, mask)
    boosters = fit_seeds(ds, None, dict(params), seeds, None, bar)
    del ds
    release_memory()
    return SeedAveragedModel(boosters, features, list(seeds))


def _predict_rows(
    boosters: Sequence[lgb.Booster], df: pd.DataFrame, features: list[str], rows: np.ndarray
) -> np.ndarray:
    """Mean prediction of ``boosters`` for the rows ``rows`` of ``df``, in float32 batches."""
    out = np.empty(len(rows), dtype=np.float64)
    start = 0
    for batch in iter_batches(df, features, rows):
        out[start : start + len(batch)] = np.mean([b.predict(batch) for b in boosters], axis=0)
        start += len(batch)
    return out


def _per_era(
    df: pd.DataFrame, rows: np.ndarray, pred: np.ndarray, target: str, era_col: str
) -> pd.Series:
    """Per-era numerai corr of ``pred`` against ``df[target]`` on the rows ``rows``."""
    frame = pd.DataFrame(
        {
            "era": df[era_col].to_numpy()[rows],
            "prediction": pred,
            "target": df[target].to_numpy()[rows],
        }
    )
    return per_era_corr(frame)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    out = [check_int(s, "seed", 0, error=DataError) for s in seeds]
    if not out:
        raise DataError("seeds is empty; pass at least one seed, e.g. seeds=(0,).")
    return out


def _prepare(
    df: pd.DataFrame,
    features: Sequence[str],
    target: str,
    era_col: str,
    params: Mapping[str, Any] | None,
    seeds: Sequence[int],
) -> tuple[list[str], dict[str, Any], list[int]]:
    """The checked common arguments of :func:`walk_forward_predict` and :func:`search_params`:
    the feature list, the parameters (default :data:`nbutils.train.SEED_PARAMS`) and the seeds."""
    features = list(features)
    _check_frame(df, features, target, era_col)
    return features, dict(SEED_PARAMS if params is None else params), _check_seeds(seeds)


# -- walk-forward ---------------------------------------------------------------------------------
def walk_forward_predict(
    df: pd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    chunk: int = NUMERAI_CHUNK,
    purge: int | None = None,
    params: Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    era_col: str = "era",
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """Out-of-sample predictions for every era :func:`walk_forward_splits` predicts.

    For each ``(train eras, predict eras)`` pair, one model (``params``, one booster per seed,
    averaged) is trained on the rows of the train eras whose target is known and predicts every
    row of the predict eras. So each prediction comes from a model that saw nothing within
    ``purge`` eras of it, as Numerai's benchmark predictions are made.

    Parameters
    ----------
    df : DataFrame
        Feature columns, ``era_col`` and ``target``.
    features : sequence of str
    target : str
        The column to learn; it also sets the default purge (:func:`purge_eras`).
    chunk, purge
        As :func:`walk_forward_splits`.
    params : dict, optional
        sklearn-style LightGBM parameters (default :data:`nbutils.train.SEED_PARAMS`).
    seeds : sequence of int
    era_col : str
    progress : bool
        Show the progress, counting boosting rounds over all chunks (one line in a notebook).
    batch_rows : int
        Rows converted to float32 at a time.

    Returns
    -------
    DataFrame
        Indexed like the predicted rows of ``df`` (in ``df``'s order), columns ``era``, ``fold``
        (1 for the first predicted chunk) and ``prediction``.

    Notes
    -----
    Memory: one model at a time, trained on row positions of ``df`` (no copy of the frame), its
    Dataset freed before the next; at most the training of one model on all rows.
    """
    features, params, seeds = _prepare(df, features, target, era_col, params, seeds)
    splits = walk_forward_splits(df[era_col], chunk, purge, target)
    eras = df[era_col].astype(str).to_numpy()
    _, rounds = lgb_params(params, seeds[0])
    fold = np.zeros(len(df), dtype=np.int64)
    pred = np.full(len(df), np.nan)
    with progress_bar(rounds * len(seeds) * len(splits), progress, "walk-forward") as bar:
        for k, (train_eras, predict_eras) in enumerate(splits, start=1):
            model = _fit_rows(
                df, features, target, params, seeds, np.isin(eras, train_eras), bar, batch_rows
            )
            rows = np.flatnonzero(np.isin(eras, predict_eras))
            pred[rows] = _predict_rows(model.boosters, df, features, rows)
            fold[rows] = k
            del model
    rows = np.flatnonzero(fold > 0)
    return pd.DataFrame(
        {"era": df[era_col].to_numpy()[rows], "fold": fold[rows], "prediction": pred[rows]},
        index=df.index[rows],
    )


# -- era boosting ---------------------------------------------------------------------------------
def era_boost(
    df: pd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    params: Mapping[str, Any] | None = None,
    n_rounds: int = 5,
    trees_per_round: int = 50,
    proportion: float = 0.5,
    seed: int = 0,
    era_col: str = "era",
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> tuple[SeedAveragedModel, pd.DataFrame]:
    """Era boosting, the recipe of Numerai's example-scripts (``era_boosting_example``).

    1. train ``trees_per_round`` trees on every row whose target is known;
    2. score each training era with the model so far (per-era numerai corr, in sample);
    3. the worst eras are those whose score is ``<= `` the ``proportion`` quantile of the scores
       (pandas' ``Series.quantile``, linear interpolation);
    4. add ``trees_per_round`` trees fitted on the rows of the worst eras only (the earlier trees
       kept: LightGBM's training continues, ``Booster.update`` on the new rows);
    5. repeat 2-4 until ``n_rounds`` rounds of trees are grown (``n_rounds * trees_per_round``
       trees in all).

    The aim is a steadier model: later trees work on the eras the model does worst on. Its
    in-sample scores say little about that; compare it on held-out eras with a plain model of the
    same number of trees.

    Parameters
    ----------
    df : DataFrame
        Training rows: features, ``era_col`` and ``target``.
    features : sequence of str
    target : str
    params : dict, optional
        sklearn-style LightGBM parameters (default :data:`nbutils.train.SEED_PARAMS`); their tree
        count is not used (``n_rounds * trees_per_round`` trees are grown).
    n_rounds : int
        Rounds of trees (>= 1); round 1 is on every era.
    trees_per_round : int
        Trees added per round (>= 1).
    proportion : float
        Quantile that picks the worst eras, in (0, 1] (0.5: the worse half).
    seed : int
    era_col : str
    progress : bool
    batch_rows : int

    Returns
    -------
    (SeedAveragedModel, DataFrame)
        The model (one booster) and its history: one row per round with ``round``, ``trees``
        (after the round), ``eras`` (eras the round's trees were fitted on), and the in-sample
        ``corr_mean`` and ``corr_sharpe`` (ddof=0) over every training era after the round.

    Notes
    -----
    Memory: the binned Dataset of every labelled row (as :func:`nbutils.train.train_lgbm`), plus
    those of the worst eras' rows of the previous and the current round (LightGBM reads the old
    one while it switches), so up to about twice the binned data of one training with
    ``proportion=0.5``; the frame itself is never copied.
    """
    features = list(features)
    _check_frame(df, features, target, era_col)
    n_rounds = check_int(n_rounds, "n_rounds", 1, error=DataError)
    trees_per_round = check_int(trees_per_round, "trees_per_round", 1, error=DataError)
    proportion = check_number(proportion, "proportion", 0.0, 1.0, error=DataError)
    if proportion == 0.0:
        raise DataError("proportion=0 picks no era: give a quantile in (0, 1], e.g. 0.5.")
    seed = check_int(seed, "seed", 0, error=DataError)
    base, _ = lgb_params(dict(SEED_PARAMS if params is None else params), seed)
    integer = all_integer(df.dtypes.iloc[positions(df, features)])
    ds_params = dataset_params(base, integer)
    labelled = labelled_rows(df, target)
    eras = df[era_col].astype(str).to_numpy()
    full = labelled_dataset(df, features, target, ds_params, batch_rows)
    run_params = dict(base)  # a booster repeats its Dataset's parameters (as train_lgbm does)
    run_params.update({k: full.params[k] for k in DATASET_KEYS if k in full.params})
    booster = lgb.Booster(params=run_params, train_set=full)
    history, fitted_on, current, previous = [], len(np.unique(eras[labelled])), full, None
    with progress_bar(n_rounds * trees_per_round, progress, "era boosting") as bar:
        for k in range(1, n_rounds + 1):
            for _ in range(trees_per_round):
                booster.update(train_set=current)
                bar.update(1)
            previous = None  # the booster has switched to ``current``: the old rows may go
            scores = _per_era(
                df, labelled, _predict_rows([booster], df, features, labelled), target, era_col
            )
            history.append(
                {
                    "round": k,
                    "trees": booster.num_trees(),
                    "eras": fitted_on,
                    "corr_mean": float(scores.mean()),
                    "corr_sharpe": float(sharpe(scores)),
                }
            )
            if k == n_rounds:
                break
            worst = scores.index[scores <= scores.quantile(proportion)].astype(str)
            fitted_on = len(worst)
            # LightGBM reads the booster's old Dataset while switching: keep it until then
            previous = current  # noqa: F841
            current = labelled_dataset(
                df, features, target, ds_params, batch_rows, np.isin(eras, worst), reference=full
            )
    model = lgb.Booster(model_str=booster.model_to_string())
    del booster, current, previous, full
    release_memory()
    return SeedAveragedModel([model], features, [seed]), pd.DataFrame(history)


# -- parameter search -----------------------------------------------------------------------------
def _check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """The grid as lists of values; refuses an empty grid, a non-list value and unknown names."""
    if not isinstance(grid, Mapping) or not grid:
        raise DataError("grid must be a non-empty dict: parameter name -> list of values.")
    known = lightgbm_parameter_names()  # None: this LightGBM cannot tell, it warns itself
    out = {}
    for name, values in grid.items():
        if known is not None and name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"grid: {name!r} is not a LightGBM parameter{hint}.")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise DataError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}.")
        out[str(name)] = list(values)
    return out


def search_params(
    grid: Mapping[str, Sequence[Any]],
    df: pd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    splits: Sequence[Split] | None = None,
    chunk: int = NUMERAI_CHUNK,
    purge: int | None = None,
    params: Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    era_col: str = "era",
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """A small grid search, each setting scored on held-out eras with the purge.

    Every combination of ``grid`` (``itertools.product`` of its lists, in the grid's order)
    updates ``params``; for each fold ``(train eras, held-out eras)`` of ``splits`` (default: the
    walk-forward splits of ``df``'s eras, :func:`walk_forward_splits` with ``chunk``, ``purge``
    and ``target``), a model is trained on the train eras and scored on the held-out eras.

    - ``fold_k``: mean per-era numerai corr over fold ``k``'s held-out eras;
    - ``mean`` and ``sharpe``: over the per-era scores of all folds together (Sharpe: mean / std
      with ddof=0, as Numerai computes it);
    - ``eras``: how many held-out eras were scored.

    A setting whose mean is higher by less than the noise of those per-era scores (their std
    divided by the square root of the number of eras) is not shown to be better.

    Returns
    -------
    DataFrame
        One row per combination: the grid's parameters, ``mean``, ``sharpe``, ``eras``,
        ``fold_1`` ... ``fold_K``; sorted by ``mean``, best first.

    Raises
    ------
    DataError
        For an empty grid, a name LightGBM does not know (with the closest one), a value that is
        not a non-empty list, or splits whose eras are not in ``df``.
    """
    grid = _check_grid(grid)
    features, base, seeds = _prepare(df, features, target, era_col, params, seeds)
    folds = (
        list(splits)
        if splits is not None
        else walk_forward_splits(df[era_col], chunk, purge, target)
    )
    eras = df[era_col].astype(str).to_numpy()
    present = set(eras)
    for k, (train_eras, held_out) in enumerate(folds, start=1):
        missing = [e for e in (*train_eras, *held_out) if str(e) not in present]
        if missing or not train_eras or not held_out:
            raise DataError(
                f"splits: fold {k} has no train or held-out eras, or eras not in the frame "
                f"({missing[:3]}); build the splits from this frame's era column."
            )
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    rounds = sum(lgb_params({**base, **c}, seeds[0])[1] for c in combos)
    rows = []
    with progress_bar(rounds * len(seeds) * len(folds), progress, "search") as bar:
        for combo in combos:
            per_fold, all_scores = {}, []
            for k, (train_eras, held_out) in enumerate(folds, start=1):
                mask = np.isin(eras, [str(e) for e in train_eras])
                model = _fit_rows(
                    df, features, target, {**base, **combo}, seeds, mask, bar, batch_rows
                )
                test = labelled_rows(df, target, np.isin(eras, [str(e) for e in held_out]))
                scores = _per_era(
                    df, test, _predict_rows(model.boosters, df, features, test), target, era_col
                )
                per_fold[f"fold_{k}"] = float(scores.mean())
                all_scores.append(scores)
            pooled = pd.concat(all_scores)
            rows.append(
                {
                    **combo,
                    "mean": float(pooled.mean()),
                    "sharpe": float(sharpe(pooled)),
                    "eras": int(pooled.notna().sum()),
                    **per_fold,
                }
            )
    table = pd.DataFrame(rows)
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
