"""The run directory: which notebook writes which artifact, and how the next one reads it.

Each notebook of the chain reads what the previous ones wrote into ``run_dir`` (DESIGN.md,
"Artifacts of one run") and writes its own. A missing artifact raises a
:class:`~nbutils.errors.PipelineError` that names the notebook to run first. Nothing is pickled:
artifacts are JSON, CSV, parquet and LightGBM's text format, so loading one never runs code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nbutils.errors import PipelineError
from nbutils.util import atomic_path, read_json

#: artifact file name -> the notebook that writes it
PRODUCERS: dict[str, str] = {
    "data.json": "01_load_data.ipynb",
    "feature_spec.json": "02_feature_engineering.ipynb",
    "model.txt": "03_training.ipynb",
    "predictions.parquet": "03_training.ipynb",
    "metrics.json": "04_evaluation.ipynb",
    "per_era.csv": "04_evaluation.ipynb",
    "submission.csv": "05_submission.ipynb",
    "neutralized_submission.csv": "06_neutralization.ipynb",
    "diagnostics.csv": "06_neutralization.ipynb",
}

PREDICTION_COLUMNS = ["era", "data_type", "prediction"]


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The directory relative paths of the notebooks are resolved against.

    Inside a clone of the project (a ``pyproject.toml`` beside ``notebooks/``) that is the clone's
    root, whether Jupyter runs in ``notebooks/`` or at the root; elsewhere (Colab, Kaggle) it is
    the working directory.
    """
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, here.parent):
        if (directory / "pyproject.toml").is_file() and (directory / "notebooks").is_dir():
            return directory
    return here


def resolve_dir(path: str | os.PathLike, create: bool = False) -> Path:
    """``path`` made absolute against :func:`project_root`; created when ``create``."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = project_root() / p
    if create:
        p.mkdir(parents=True, exist_ok=True)
    return p


def artifact_path(run_dir: str | os.PathLike, name: str) -> Path:
    """Path of an existing artifact, or a PipelineError naming the notebook to run first."""
    path = Path(run_dir) / name
    if not path.is_file():
        producer = PRODUCERS.get(name, "the previous notebook")
        raise PipelineError(
            f"{path} is missing. Run {producer} first with the same run_dir "
            f"(or the whole chain: `make run` / `python -m nbutils run --run-dir {run_dir}`)."
        )
    return path


def read_artifact_json(run_dir: str | os.PathLike, name: str) -> dict:
    """Load a JSON artifact (``data.json``, ``feature_spec.json``, ``metrics.json``)."""
    return read_json(artifact_path(run_dir, name))


def save_predictions(predictions: pd.DataFrame, run_dir: str | os.PathLike) -> Path:
    """Write ``predictions.parquet`` (index ``id``; columns era, data_type, prediction) atomically."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise PipelineError(f"predictions frame lacks columns {missing}; expected {PREDICTION_COLUMNS}")
    frame = predictions[PREDICTION_COLUMNS].copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "id"
    path = Path(run_dir) / "predictions.parquet"
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp)
    return path


def load_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Read ``predictions.parquet`` written by notebook 03."""
    return pd.read_parquet(artifact_path(run_dir, "predictions.parquet"))


# -- data.json: how notebook 01 loaded the data, so that 02..06 load exactly the same -------------
def save_data_info(
    run_dir: str | os.PathLike,
    data,
    dataset_dir: str | os.PathLike,
    *,
    data_source: str,
    feature_set: str | None,
    era_step: int,
) -> Path:
    """Write ``data.json``: layout, version, round, the dataset path and the load arguments."""
    from nbutils.util import write_json

    info = {
        "data_source": data_source,
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "layout": data.layout,
        "version": data.version,
        "round": data.round,
        "feature_set": feature_set,
        "era_step": era_step,
        "features": list(data.features),
        "feature_groups": {k: list(v) for k, v in data.feature_groups.items()},
        "targets": list(data.targets),
        "rows": {
            "train": len(data.train),
            "validation": len(data.validation),
            "live": len(data.live),
        },
    }
    return write_json(Path(run_dir) / "data.json", info)


def load_run_data(run_dir: str | os.PathLike, **overrides):
    """The ``NumeraiData`` notebook 01 loaded, reloaded with the same arguments from ``data.json``.

    Returns ``(data, info)``. ``overrides`` are passed to ``load_data`` (e.g. ``era_step=2``).
    """
    from nbutils.data import load_data

    info = read_artifact_json(run_dir, "data.json")
    kwargs = {
        "feature_set": info.get("feature_set"),
        "era_step": info.get("era_step", 1),
        "targets": info.get("targets"),
    }
    kwargs.update(overrides)
    return load_data(info["dataset_dir"], **kwargs), info


def save_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (with its index) as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp)
    return Path(path)


def save_figure(fig, path: str | os.PathLike):
    """Save a matplotlib Figure as PNG atomically and return it (so a cell can end with it and
    show it)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return fig
