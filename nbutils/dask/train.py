"""Tutorial step 2C on a Dask cluster: LightGBM's distributed training, and prediction.

LightGBM's own data-parallel training, one LightGBM process per worker, connected by LightGBM's
socket network. Two ways to feed it (``method``):

- ``"stream"`` (default): each worker reads its share of the partitions itself, one at a time,
  and pushes the rows into its LightGBM ``Dataset`` in float32 batches: the lean Dataset of
  :mod:`nbutils._lgb_dataset` (the one :func:`nbutils.train.build_dataset` uses), spread over
  machines. A worker only ever holds one partition plus LightGBM's binned copy of its rows, so
  the data may be larger than all the workers' memory put together... up to that binned copy.
  The Dataset parameters are the local engine's (:func:`nbutils._lgb_dataset.dataset_params`),
  so with int8 features the model equals the local one (same bins, same histograms).
- ``"lightgbm.dask"``: :class:`lightgbm.dask.DaskLGBMRegressor`. It holds each worker's
  partitions in Dask memory, concatenates them and converts them to float32 before binning
  (about 6.5 bytes per int8 value at its peak).

Either way the result is a :class:`nbutils.train.SeedAveragedModel`, so ``predict``,
``save_model`` and notebooks 04-06 work on it unchanged.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nbutils._lgb_dataset import (
    DATASET_KEYS,
    Network,
    all_integer,
    dataset_params,
    finish,
    network,
    push_rows,
    sample_columns,
)
from nbutils.checks import require_columns
from nbutils.dask.cluster import (
    DaskEngineError,
    compute_step,
    engine_errors,
    gather_pinned,
    worker_addresses,
)
from nbutils.dask.read import SPLITS, read_split
from nbutils.errors import DataError
from nbutils.train import SEED_PARAMS, SeedAveragedModel, lgb_params, predict
from nbutils.util import release_memory

if TYPE_CHECKING:
    import dask.dataframe as dd
    import distributed

__all__ = [
    "METHODS",
    "apply_feature_spec_dask",
    "predict_dask",
    "train_and_predict_dask",
    "train_lgbm_dask",
]

METHODS = ("stream", "lightgbm.dask")


def _require(ddf: dd.DataFrame, wanted: Sequence[str], what: str) -> None:
    require_columns(list(ddf.columns), list(wanted), what, error=DataError)


# -- training -------------------------------------------------------------------------------------
def train_lgbm_dask(
    client: distributed.Client,
    ddf: dd.DataFrame,
    features: Sequence[str],
    target: str = "target",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    method: str = "stream",
    network_timeout_minutes: int = 5,
    batch_rows: int = 16_384,
) -> SeedAveragedModel:
    """Train LightGBM on the cluster (tutorial step 2C); returns a local model.

    One booster per seed (``seed`` replaces ``random_state``), as :func:`nbutils.train.train_lgbm`:
    with :data:`nbutils.train.SEED_PARAMS` and one seed, the tutorial's model. Rows whose
    ``target`` is NaN are left out.

    Parameters
    ----------
    client : distributed.Client
        From :func:`nbutils.dask.connect`.
    ddf : dask.dataframe.DataFrame
        Training rows, e.g. ``read_split(dataset_dir, "train")``; lazy (not persisted) for
        ``method="stream"``, whose workers read the partitions themselves.
    features : sequence of str
        Feature columns, in model order.
    target : str
        Target column.
    params : dict, optional
        sklearn-style LightGBM parameters (default :data:`nbutils.train.SEED_PARAMS`).
    seeds : sequence of int
        One booster per seed.
    method : {"stream", "lightgbm.dask"}
        How the workers feed LightGBM (module docstring): ``"stream"`` reads one partition at a
        time (data larger than the workers' memory); ``"lightgbm.dask"`` uses
        ``lightgbm.dask.DaskLGBMRegressor``.
    network_timeout_minutes : int
        LightGBM's socket time-out between the workers (``"stream"``).
    batch_rows : int
        Rows converted to float32 at a time (``"stream"``).

    Returns
    -------
    nbutils.train.SeedAveragedModel
        The boosters, brought back to this process (``booster_`` of ``to_local()`` for
        ``"lightgbm.dask"``).

    Raises
    ------
    DaskEngineError
        A worker died or lost its connection during training.
    DataError
        Missing columns, no labelled rows, unknown method or empty seeds.
    """
    if method not in METHODS:
        raise DataError(f"unknown training method {method!r}: use one of {METHODS}.")
    features = list(features)
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise DataError("seeds is empty; pass at least one seed, e.g. seeds=(0,).")
    _require(ddf, [*features, target], "columns of the training frame")
    run_params = dict(SEED_PARAMS if params is None else params)
    data = ddf[[*features, target]]
    data = data[data[target].notnull()]
    if method == "lightgbm.dask":
        boosters = _train_lightgbm_dask(client, data, features, target, run_params, seed_list)
    else:
        boosters = _train_stream(
            client,
            data,
            features,
            target,
            run_params,
            seed_list,
            network_timeout_minutes,
            batch_rows,
            all_integer(ddf._meta[features].dtypes),
        )
    return SeedAveragedModel(boosters, features, seed_list)


def _train_lightgbm_dask(
    client: distributed.Client,
    data: dd.DataFrame,
    features: list[str],
    target: str,
    params: dict[str, Any],
    seeds: list[int],
) -> list[lgb.Booster]:
    """One ``DaskLGBMRegressor`` per seed; each brought back with ``to_local().booster_``."""
    from lightgbm.dask import DaskLGBMRegressor

    boosters = []
    for seed in seeds:
        run, rounds = lgb_params(params, seed)
        run.pop("seed")
        model = DaskLGBMRegressor(client=client, n_estimators=rounds, random_state=seed, **run)
        with engine_errors(f"training (DaskLGBMRegressor, seed {seed})"):
            model.fit(*_aligned_xy(data, features, target))
        boosters.append(model.to_local().booster_)
    return boosters


def _columns(part: pd.DataFrame, columns: Any) -> pd.DataFrame | pd.Series:
    return part[columns]


def _aligned_xy(
    data: dd.DataFrame, features: list[str], target: str
) -> tuple[dd.DataFrame, dd.Series]:
    """``data[features]`` and ``data[target]`` with the same partitions.

    Selected inside ``map_partitions``: a plain column selection lets dask re-plan how parquet
    row groups are combined per column set, and ``DaskLGBMRegressor`` pairs the partitions of
    X and y one to one.
    """
    x = data.map_partitions(_columns, features, meta=data._meta[features])
    y = data.map_partitions(_columns, target, meta=data._meta[target])
    return x, y


@dataclass(frozen=True)
class _Recipe:
    """How to compute one partition on a worker: a culled task graph and its output key.

    A plain container that Dask does not look into, so the partition is *not* computed as a
    dependency of the training task: the worker computes it itself, when it needs it.
    """

    graph: dict
    key: Any

    def compute(self) -> pd.DataFrame:
        from dask.local import get_sync

        return get_sync(self.graph, self.key)


def _recipes(data: dd.DataFrame) -> list[_Recipe]:
    from dask.optimization import cull

    out = []
    for part in data.to_delayed(optimize_graph=True):
        graph, _ = cull(dict(part.__dask_graph__()), [part.key])
        out.append(_Recipe(graph, part.key))
    return out


def _count_rows(recipe: _Recipe) -> int:
    n = len(recipe.compute())
    release_memory()
    return n


def _labelled_counts(client: distributed.Client, recipes: Sequence[_Recipe]) -> list[int]:
    """Rows of each partition, computed from the very recipes the training reads."""
    with engine_errors("counting the training rows"):
        futures = [client.submit(_count_rows, r, pure=False) for r in recipes]
        return [int(c) for c in client.gather(futures)]


def _assign(counts: Sequence[int], n_workers: int) -> list[list[int]]:
    """Non-empty partitions to at most ``n_workers`` machines, largest first to the least loaded.

    Each machine's list is in partition order.
    """
    nonempty = [i for i, c in enumerate(counts) if c > 0]
    n = min(n_workers, len(nonempty))
    loads, groups = [0] * n, [[] for _ in range(n)]
    for i in sorted(nonempty, key=lambda i: -counts[i]):
        m = loads.index(min(loads))
        groups[m].append(i)
        loads[m] += counts[i]
    return [sorted(g) for g in groups]


def _free_port() -> int:
    """A TCP port that is free on this worker now (LightGBM binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


# Deliberate repeat (the `duplicates` tool pairs it with _train_lightgbm_dask's parameter list): the two
# training paths take the same inputs and return the same boosters.
def _train_stream(
    client: distributed.Client,
    data: dd.DataFrame,
    features: list[str],
    target: str,
    params: dict[str, Any],
    seeds: list[int],
    timeout_minutes: int,
    batch_rows: int,
    integer: bool,
) -> list[lgb.Booster]:
    """LightGBM data-parallel training, each worker streaming its partitions into its Dataset."""
    from distributed.comm import get_address_host

    recipes = _recipes(data)
    counts = _labelled_counts(client, recipes)
    if sum(counts) == 0:
        raise DataError(
            f"no training rows with a {target!r} value; check the target column and era_step."
        )
    workers = worker_addresses(client)
    if not workers:
        raise DaskEngineError(
            "the Dask cluster has no workers; start some (or wait for them) and retry."
        )
    groups = _assign(counts, len(workers))
    chosen = workers[: len(groups)]
    with engine_errors("training (finding free ports)"):
        ports = client.run(_free_port, workers=chosen)
    machines = ",".join(f"{get_address_host(w)}:{ports[w]}" for w in chosen)
    run_id = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            _stream_train_task,
            [recipes[i] for i in group],
            [counts[i] for i in group],
            features,
            target,
            params,
            seeds,
            Network(machines, ports[w], len(chosen), int(timeout_minutes)),
            rank == 0,
            batch_rows,
            integer,
            key=f"nbutils-train-{run_id}-{rank}",
            workers=[w],
            allow_other_workers=False,
            pure=False,
        )
        for rank, (w, group) in enumerate(zip(chosen, groups, strict=True))
    ]
    texts = gather_pinned(client, futures, chosen, "training (LightGBM on the workers)")[0]
    return [lgb.Booster(model_str=t) for t in texts]


def _iter_parts(recipes: Sequence[_Recipe], counts: Sequence[int]) -> Iterator[pd.DataFrame]:
    """The partitions, computed one at a time on this worker, with their counted row numbers."""
    for recipe, expected in zip(recipes, counts, strict=True):
        part = recipe.compute()
        if len(part) != expected:
            raise DaskEngineError(
                f"a training partition has {len(part)} labelled rows, {expected} when counted: "
                "the data changed during training; run the training again."
            )
        yield part
        del part
        release_memory()


def _sample_rows(
    recipes: Sequence[_Recipe], counts: Sequence[int], sample: np.ndarray, features: list[str]
) -> np.ndarray:
    """The sample rows (positions among this machine's labelled rows, sorted) of ``features``,
    read partition by partition (only the sampled rows are kept)."""
    blocks, offset = [], 0
    for part in _iter_parts(recipes, counts):
        lo, hi = np.searchsorted(sample, [offset, offset + len(part)])
        if hi > lo:
            blocks.append(part[features].to_numpy()[sample[lo:hi] - offset])
        offset += len(part)
    return np.concatenate(blocks)


def _stream_train_task(
    recipes: list[_Recipe],
    counts: list[int],
    features: list[str],
    target: str,
    params: dict[str, Any],
    seeds: list[int],
    net: Network,
    return_model: bool,
    batch_rows: int,
    integer: bool,
) -> list[str] | None:
    """On one worker: build this machine's LightGBM Dataset from its partitions, then train.

    1. join LightGBM's network (every machine of the run does, at the same time);
    2. draw the bin sample among this machine's rows; read those rows, partition by partition;
    3. find the bins (LightGBM shares the work between machines and syncs them);
    4. read the partitions again, pushing their rows in float32 batches; set the label;
    5. train one booster per seed (data-parallel: histograms summed over the machines).

    Returns the boosters' model texts on rank 0 (all machines hold the same model), else None.
    """
    n_rows = int(sum(counts))
    base, _ = lgb_params(params, seeds[0])
    ds_params = dataset_params(base, integer, net)
    with network(net):
        ds = lgb.Dataset(None, params=dict(ds_params), free_raw_data=True)
        sample = np.sort(ds._create_sample_indices(total_nrow=n_rows))
        rows = _sample_rows(recipes, counts, sample, features)
        values, indices = sample_columns(rows[:, j] for j in range(rows.shape[1]))
        del rows
        ds._init_from_sample(values, indices, len(sample), n_rows)
        del values, indices
        labels = np.empty(n_rows, dtype=np.float32)
        start = 0
        for part in _iter_parts(recipes, counts):
            push_rows(ds, part, features, batch_rows=batch_rows)
            labels[start : start + len(part)] = part[target].to_numpy(dtype=np.float32)
            start += len(part)
            del part
        finish(ds, labels, features)
        texts = []
        for seed in seeds:
            run, rounds = lgb_params(params, seed)
            for key in DATASET_KEYS:
                if key in ds_params:
                    run[key] = ds_params[key]
            booster = lgb.train(run, ds, num_boost_round=rounds)
            texts.append(booster.model_to_string())
    return texts if return_model else None


# -- prediction -----------------------------------------------------------------------------------
def _predict_partition(part: pd.DataFrame, model: SeedAveragedModel) -> pd.Series:
    return predict(model, part)


def predict_dask(
    model: SeedAveragedModel, ddf: dd.DataFrame, features: Sequence[str] | None = None
) -> dd.Series:
    """Predictions of ``model`` for every row of ``ddf``, partition by partition (lazy).

    Each partition gets :func:`nbutils.train.predict` (the mean over the model's boosters), so
    the values equal the local engine's bit for bit. ``features`` must equal ``model.features``
    when given. Compute the result (``.compute()``) or write it (``.to_parquet``).
    """
    if features is not None and list(features) != list(model.features):
        raise DataError(
            "the feature list differs from the one the model was trained on; "
            "apply the same FeatureSpec and pass model.features."
        )
    _require(ddf, model.features, "feature columns of the frame to predict")
    meta = pd.Series([], dtype="float64", name="prediction", index=ddf._meta.index)
    return ddf[list(model.features)].map_partitions(_predict_partition, model, meta=meta)


# -- one call per notebook -------------------------------------------------------------------------
def _apply_spec(part: pd.DataFrame, spec: Any, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    return spec.apply(part, groups)[0]


def apply_feature_spec_dask(
    ddf: dd.DataFrame, spec: Any, groups: Mapping[str, Sequence[str]]
) -> tuple[dd.DataFrame, list[str]]:
    """``spec.apply`` (a :class:`nbutils.features.FeatureSpec`, tutorial 2B) on each partition.

    Group statistics and interactions are computed row by row, so partition by partition is
    the same as on the whole frame. Returns the new frame and the engineered column names.
    """
    meta, _ = spec.apply(ddf._meta, groups)
    return ddf.map_partitions(_apply_spec, spec, dict(groups), meta=meta), spec.new_columns(groups)


def train_and_predict_dask(
    client: distributed.Client,
    dataset_dir: str | Path,
    features: Sequence[str],
    target: str = "target",
    params: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    era_step: int = 1,
    feature_spec: Any = None,
    feature_groups: Mapping[str, Sequence[str]] | None = None,
    method: str = "stream",
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[SeedAveragedModel, pd.DataFrame]:
    """Notebook 03 on the cluster: train on ``train``, predict ``validation`` and ``live``.

    Parameters
    ----------
    dataset_dir : str or Path
        ``data.json``'s ``dataset_dir``, on a path every worker can read.
    features : sequence of str
        The raw feature columns (``data.json``'s ``features``).
    feature_spec, feature_groups :
        Notebook 02's :class:`~nbutils.features.FeatureSpec` and the feature groups; its
        columns are added partition by partition and used as features too.

    Returns
    -------
    (SeedAveragedModel, pd.DataFrame)
        The model (save it with :func:`nbutils.train.save_model`) and the predictions frame of
        ``predictions.parquet``: index id; columns era, data_type, prediction.
    """
    splits = {}
    for split in SPLITS:
        frame = read_split(
            dataset_dir,
            split,
            features=list(features),
            targets=(target,) if split != "live" else (),
            era_step=era_step if split == "train" else 1,
            storage_options=storage_options,
        )
        if split == "live":
            frame = frame.assign(**{target: np.float32(np.nan)})
        model_features = list(features)
        if feature_spec is not None:
            frame, new = apply_feature_spec_dask(frame, feature_spec, feature_groups or {})
            model_features += new
        splits[split] = frame
    model = train_lgbm_dask(client, splits["train"], model_features, target, params, seeds, method)
    outputs = [
        splits[s][["era", "data_type"]].assign(prediction=predict_dask(model, splits[s]))
        for s in ("validation", "live")
    ]
    frames = compute_step(client, outputs, "prediction")
    predictions = pd.concat(frames)
    predictions.index = pd.Index(predictions.index.astype(str), name="id")
    return model, predictions
