"""Steps 2A, 2C, 2D and 2F on a Dask cluster: read, train, predict, score and neutralize.

The same tutorial steps as :mod:`nbutils.train`, :mod:`nbutils.metrics` and
:mod:`nbutils.neutralize`, for data that does not fit one machine. The notebooks switch with
their ``engine`` ("local" or "dask") and ``dask_scheduler`` parameters; docs/dask.md explains
how to point them at an existing cluster.

How each step runs on the cluster:

- **read** (:func:`~nbutils.dask.read.read_split`): ``dask.dataframe.read_parquet`` with column projection; the
  workers read the files themselves, so the dataset must sit on a path every worker sees (a
  shared filesystem, or an object-store URL such as ``s3://bucket/v5.2``). Features stay int8.
- **train** (:func:`train_lgbm_dask`): LightGBM's own distributed (data-parallel) training, one
  LightGBM process per worker, connected by LightGBM's socket network. Two ways to feed it:

  * ``method="stream"`` (default): each worker reads its share of the partitions itself, one at
    a time, and pushes the rows into its LightGBM ``Dataset`` in float32 batches (the lean
    ``Dataset`` of :func:`nbutils.train.build_dataset`, spread over machines). A worker only ever
    holds one partition plus LightGBM's binned copy of its rows (about half a byte per int8
    value), so the data may be larger than all the workers' memory put together... up to that
    binned copy. With int8 features the model equals the local one (same bins, same histograms).
  * ``method="lightgbm.dask"``: :class:`lightgbm.dask.DaskLGBMRegressor`. It holds each
    worker's partitions in Dask memory, concatenates them and converts them to float32 before
    binning (about 6.5 bytes per int8 value at its peak), so it needs several times the data's
    size in worker memory.

  Either way the result is a :class:`nbutils.train.SeedAveragedModel`, the type
  :func:`nbutils.train.train_lgbm` returns, so ``predict``, ``save_model`` and notebooks 04-06
  work on it unchanged.
- **score and neutralize** (:func:`per_era_scores_dask`, :func:`neutralize_dask`): the frame is
  arranged so that each era lies whole in one partition (:func:`by_era`: no data moves when that
  is already so, as in Numerai's files, else a shuffle on the era column), then
  :func:`nbutils.metrics.per_era_corr` or :func:`nbutils.neutralize.neutralize` runs on each
  partition. The results are those of the local engine (the same function on the same rows of
  each era), eras in natural order.

A worker that dies or loses its connection during a step raises :class:`DaskEngineError` naming
the step; nothing partial is returned.

The package's modules, one step each: :mod:`~nbutils.dask.cluster` (connect, errors, worker
restarts), :mod:`~nbutils.dask.read`, :mod:`~nbutils.dask.train` (train and predict) and
:mod:`~nbutils.dask.score` (per-era scores and neutralization). dask and distributed are
imported only when a step needs them.
"""

from nbutils.dask.cluster import DaskEngineError, close, connect
from nbutils.dask.read import SPLITS, read_split
from nbutils.dask.score import (
    PER_ERA_COLUMNS,
    by_era,
    neutralize_dask,
    per_era_scores_dask,
    per_era_table_dask,
)
from nbutils.dask.train import (
    METHODS,
    apply_feature_spec_dask,
    predict_dask,
    train_and_predict_dask,
    train_lgbm_dask,
)

__all__ = [
    "METHODS",
    "PER_ERA_COLUMNS",
    "SPLITS",
    "DaskEngineError",
    "apply_feature_spec_dask",
    "by_era",
    "close",
    "connect",
    "neutralize_dask",
    "per_era_scores_dask",
    "per_era_table_dask",
    "predict_dask",
    "read_split",
    "train_and_predict_dask",
    "train_lgbm_dask",
]
