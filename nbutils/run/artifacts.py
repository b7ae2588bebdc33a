"""The run directory: which notebook writes which artifact, and how the next one reads it.

Each notebook of the chain reads what the previous ones wrote into ``run_dir`` (DESIGN.md,
"Artifacts of one run") and writes its own. A missing or corrupt artifact raises a
:class:`~nbutils.errors.PipelineError` that names the file and the notebook to rerun. Nothing is
pickled: artifacts are JSON, CSV, parquet and LightGBM's text format, so loading one never runs
code.

Fingerprints (``fingerprints.json``, one entry per artifact, see :mod:`nbutils.run.fingerprints`):
every artifact records the SHA-256 of its bytes, the notebook and parameters that wrote it, the
SHA-256 of the upstream artifacts it was made from, and (through ``data.json``) the dataset files'
fingerprint. Reading an artifact here checks that this run directory made it (an artifact without
a fingerprint, copied in by hand or from another run, is refused: :func:`adopt_artifact` adopts a
hand-made file on purpose) and that its upstream artifacts are still the ones it was made from, so
a run directory that mixes two runs (03 killed, then 04 rerun against a newer ``data.json``) is
refused with the mismatch and the notebook to rerun. ``predictions.parquet`` must also hold
exactly the validation and live ids of ``data.json``'s data.

Writing: every saver here checks and takes the run directory's lock before it writes anything
(:func:`nbutils.run.lock.writing`), so a notebook run by hand while a chain writes into the same
directory is refused before it replaces a file. The artifact functions do all this themselves:
notebook code only calls them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbutils.errors import PipelineError
from nbutils.run import fingerprints
from nbutils.run.catalog import PRODUCERS, producer_of, run_first_hint
from nbutils.run.fingerprints import begin_step, check_artifact, record_artifact  # noqa: F401
from nbutils.run.lock import writing
from nbutils.util import atomic_path, make_dir, read_json

if TYPE_CHECKING:  # only for annotations: importing these here would slow every import
    from matplotlib.figure import Figure

    from nbutils.data import NumeraiData


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
    if not str(path).strip():
        raise PipelineError(
            "run_dir/data_dir is empty (an unset variable?): give a directory, e.g. runs/latest"
        )
    if not p.is_absolute():
        p = project_root() / p
    if create:
        make_dir(p)
    elif p.exists() and not p.is_dir():
        raise PipelineError(f"{p} is a file, not a directory: give a directory (e.g. runs/latest)")
    return p


def _rerun_hint(run_dir: str | os.PathLike, name: str) -> str:
    producer = producer_of(name) or "the notebook that writes it"
    return (
        f"Run {producer} again with the same run_dir (or the whole chain: `make run` / "
        f"`python -m nbutils run --run-dir {run_dir}`)."
    )


def _existing(run_dir: str | os.PathLike, name: str) -> Path:
    path = Path(run_dir) / name
    if not path.is_file():
        producer = producer_of(name) or "the previous notebook"
        raise PipelineError(f"{path} is missing. {run_first_hint(run_dir, producer)}.")
    return path


def _check_content(path: Path, run_dir: str | os.PathLike, name: str) -> None:
    """The checks of ``name``'s content that need nothing but the file (JSON artifacts)."""
    if not name.endswith(".json"):
        return
    raw = _parse_json(path, run_dir, name)
    if not isinstance(raw, dict):
        raise PipelineError(
            f"{path} holds a {type(raw).__name__}, not a JSON object. {_rerun_hint(run_dir, name)}"
        )
    if name == "feature_spec.json":
        _check_feature_spec(path, run_dir)
    if name == "data.json" and not isinstance(raw.get("dataset_dir"), str):
        raise PipelineError(f"{path} has no dataset_dir. {_rerun_hint(run_dir, 'data.json')}")


def artifact_path(run_dir: str | os.PathLike, name: str) -> Path:
    """Path of an existing, readable artifact that this run directory made, from the upstream
    artifacts there now.

    Raises a PipelineError naming the notebook to run first when it is missing, the file and the
    notebook to rerun when it is corrupt (JSON artifacts are parsed; ``feature_spec.json`` is
    checked field by field), when it has no fingerprint of this run directory (origin unknown:
    how to adopt it is named) or when it was made from other upstream artifacts than the ones
    present.
    """
    path = _existing(run_dir, name)
    _check_content(path, run_dir, name)
    check_artifact(run_dir, name)
    return path


def _parse_json(path: Path, run_dir: str | os.PathLike, name: str) -> Any:
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PipelineError(
            f"{path} is not valid JSON ({err}); the notebook that wrote it was probably "
            f"interrupted or the file was edited. {_rerun_hint(run_dir, name)}"
        ) from None


def _check_feature_spec(path: Path, run_dir: str | os.PathLike) -> None:
    raw = _parse_json(path, run_dir, "feature_spec.json")
    types = {"group_stats": bool, "groups": (list, type(None)), "stats": list, "interactions": list}
    problem = None
    if not isinstance(raw, dict):
        problem = f"holds a {type(raw).__name__}, not an object"
    else:
        for key, value in raw.items():
            if key not in types:
                problem = f"has an unknown key {key!r}"
            elif not isinstance(value, types[key]):
                problem = f"has {key!r} = {value!r} of the wrong type"
            elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
                problem = f"has {key!r} with items that are not column names"
            if problem:
                break
    if problem:
        raise PipelineError(
            f"{path} {problem}; it was not written by notebook 02. "
            f"{_rerun_hint(run_dir, 'feature_spec.json')}"
        )


def read_artifact_json(run_dir: str | os.PathLike, name: str) -> dict:
    """Load a JSON artifact (``data.json``, ``feature_spec.json``, ``metrics.json``)."""
    return _parse_json(artifact_path(run_dir, name), run_dir, name)


def save_predictions(predictions: pd.DataFrame, run_dir: str | os.PathLike) -> Path:
    """Write ``predictions.parquet`` (index ``id``; columns era, data_type, prediction) atomically."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise PipelineError(
            f"predictions frame lacks columns {missing}; expected {PREDICTION_COLUMNS}"
        )
    frame = predictions[PREDICTION_COLUMNS].copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "id"
    path = Path(run_dir) / "predictions.parquet"
    with writing(run_dir):
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp)
        record_artifact(run_dir, "predictions.parquet")
    return path


def _read_predictions(path: Path, run_dir: str | os.PathLike) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise PipelineError(
            f"{path} cannot be read ({type(err).__name__}: {err}); it is damaged or not a "
            f"parquet file. {_rerun_hint(run_dir, 'predictions.parquet')}"
        ) from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise PipelineError(
            f"{path} lacks columns {missing} (expected {PREDICTION_COLUMNS}). "
            f"{_rerun_hint(run_dir, 'predictions.parquet')}"
        )
    return frame


def id_digest(ids: pd.Index | pd.Series) -> str:
    """An order-free digest of a set of row ids: the sum (mod 2**64) of pandas' 64-bit hash of
    each id, in hex. Equal sets give equal digests whatever their order."""
    hashes = pd.util.hash_pandas_object(pd.Series(ids, dtype="str"), index=False).to_numpy()
    return f"{int(hashes.sum(dtype='uint64')):016x}"


def _check_prediction_rows(frame: pd.DataFrame, path: Path, run_dir: str | os.PathLike) -> None:
    """``frame`` holds exactly the validation and live rows of ``data.json``'s data (row counts,
    and the ids' digests when ``data.json`` has them)."""
    data_json = Path(run_dir) / "data.json"
    if not data_json.is_file():
        return  # nothing to compare with (the notebooks load data.json first)
    info = read_artifact_json(run_dir, "data.json")
    rows = info.get("rows") or {}
    # v5's validation split is the whole validation.parquet: its "test" eras (no targets yet) at
    # the end included; the 2021 layout puts its "test" rows in the live split
    types = ("validation", "test") if info.get("layout") == "v5" else ("validation",)
    is_validation = np.isin(frame["data_type"].astype(str).to_numpy(), types)
    found = {"validation": int(is_validation.sum()), "live": int((~is_validation).sum())}
    expected = {k: rows.get(k) for k in found}
    problem = None
    if found != expected:
        problem = (
            f"{found['validation']:,} validation and {found['live']:,} live rows where the run's "
            f"data has {expected['validation']} and {expected['live']}"
        )
    elif isinstance(info.get("id_digest"), dict):
        parts = {"validation": frame.index[is_validation], "live": frame.index[~is_validation]}
        other = [k for k, ids in parts.items() if id_digest(ids) != info["id_digest"].get(k)]
        if other:
            problem = f"other {' and '.join(other)} ids than the run's data"
    if problem:
        raise PipelineError(
            f"{path} does not hold the predictions of this run's data ({problem}): it comes "
            f"from another run or was cut. {_rerun_hint(run_dir, 'predictions.parquet')}"
        )


def load_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Read ``predictions.parquet`` written by notebook 03 into this run directory.

    A corrupt file, one this run directory did not make (origin unknown), one made from other
    upstream artifacts, or one whose rows are not exactly the run's validation and live rows is
    a PipelineError naming the file and the fix.
    """
    path = _existing(run_dir, "predictions.parquet")
    frame = _read_predictions(path, run_dir)
    check_artifact(run_dir, "predictions.parquet")
    _check_prediction_rows(frame, path, run_dir)
    return frame


def adopt_artifact(file: str | os.PathLike, run_dir: str | os.PathLike) -> Path:
    """Adopt a hand-made artifact on purpose: check it, put it in ``run_dir`` and record its
    fingerprint, so that the later notebooks read it (``python -m nbutils adopt FILE --run-dir
    DIR``).

    ``file`` is the artifact's name in ``run_dir`` (``model.txt``, ``ensemble_models/
    model_target.txt``) or a path elsewhere, copied in under its file name. Its name must be one
    of the run's artifacts, and its content is checked as a reader checks it (JSON artifacts
    parsed, ``model.txt`` and the models of ``ensemble_models/`` loaded,
    ``predictions.parquet`` read and compared with ``data.json``'s rows). Artifacts made from its previous version are refused
    afterwards (mixed runs), as after a rerun of its notebook.
    """
    import shutil

    run_path = resolve_dir(run_dir)
    if not run_path.is_dir():
        raise PipelineError(
            f"run directory {run_path} does not exist: adopt a file into a run directory that "
            "notebook 01 has written (data.json)"
        )
    source = Path(file).expanduser()
    if not source.is_absolute() and not source.exists():
        source = run_path / source
    name = _artifact_name(source, run_path)
    if producer_of(name) is None:
        raise PipelineError(
            f"{file} is not one of the run's artifacts: adopt one of {sorted(PRODUCERS)} or a "
            "file of ensemble_models/ (e.g. ensemble_models/model_target.txt)"
        )
    if not source.is_file():
        raise PipelineError(f"{source} does not exist or is not a file: nothing to adopt")
    target = run_path / name
    # checked where it is, before it replaces anything in the run directory
    _check_content(source, run_path, name)
    if name == "predictions.parquet":
        _check_prediction_rows(_read_predictions(source, run_path), source, run_path)
    elif name == "model.txt" or (name.startswith("ensemble_models/") and name.endswith(".txt")):
        from nbutils.train import load_model

        load_model(source)
    with writing(run_path):
        if source.resolve() != target.resolve():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        record_artifact(run_path, name, producer_of(name), adopted=True)
    return target


def _artifact_name(source: Path, run_path: Path) -> str:
    """The artifact name of ``source``: its path relative to the run directory when it lies in
    it (``ensemble_models/model_target.txt``), else its file name."""
    try:
        relative = source.resolve().relative_to(run_path.resolve()).as_posix()
    except ValueError:
        return source.name
    return relative if producer_of(relative) else source.name


# -- data.json: how notebook 01 loaded the data, so that 02..06 load exactly the same -------------
def training_target(run_dir: str | os.PathLike) -> str:
    """The target column notebook 03 trained on: its ``target`` parameter as recorded with
    ``predictions.parquet`` in fingerprints.json; ``"target"`` (03's default) when not recorded.

    Notebooks 04 and 06 choose their embargo from it (:func:`nbutils.eras.embargo_eras`).
    """
    entry = fingerprints.read_manifest(run_dir).get("predictions.parquet") or {}
    return str((entry.get("parameters") or {}).get("target", "target"))


def save_data_info(
    run_dir: str | os.PathLike,
    data: NumeraiData,
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
        "id_digest": {
            "validation": id_digest(data.validation.index),
            "live": id_digest(data.live.index),
        },
        "data_fingerprint": fingerprints.dataset_fingerprint(dataset_dir),
    }
    with writing(run_dir):
        path = write_json(Path(run_dir) / "data.json", info)
        record_artifact(run_dir, "data.json")
    return path


def load_run_data(
    run_dir: str | os.PathLike, **overrides: Any
) -> tuple[NumeraiData, dict[str, Any]]:
    """The ``NumeraiData`` notebook 01 loaded, reloaded with the same arguments from ``data.json``.

    Returns ``(data, info)``. ``overrides`` are passed to ``load_data`` (e.g. ``era_step=2``).
    Refuses a dataset whose files changed since notebook 01 loaded it (another run rebuilt or
    downloaded into the same directory).
    """
    from nbutils.data import load_data

    info = read_artifact_json(run_dir, "data.json")
    fingerprints.check_dataset(run_dir, info)
    kwargs = {
        "feature_set": info.get("feature_set"),
        "era_step": info.get("era_step", 1),
        "targets": info.get("targets"),
    }
    kwargs.update(overrides)
    return load_data(info["dataset_dir"], **kwargs), info


def save_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (with its index) as CSV atomically, under the run directory's lock; an
    artifact of the run is recorded."""
    target = Path(path)
    with writing(target.parent):
        with atomic_path(target) as tmp:
            frame.to_csv(tmp)
        if target.name in PRODUCERS:
            record_artifact(target.parent, target.name)
    return target


def save_json(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON (:func:`nbutils.util.write_json`: sorted keys, atomically) under
    the run directory's lock; an artifact of the run (``ensemble.json``...) is recorded in
    fingerprints.json, so a later edit of the file is detected."""
    from nbutils.run.fingerprints import saving
    from nbutils.util import write_json

    with saving(path) as target:
        return write_json(target, obj)


def save_figure(fig: Figure, path: str | os.PathLike) -> Figure:
    """Save a matplotlib Figure as PNG atomically and return it (so a cell can end with it and
    show it). The run directory's lock is checked and taken first."""
    with writing(Path(path).parent), atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return fig
