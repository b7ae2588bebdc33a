"""Fingerprints of a run's artifacts, so that a run directory never mixes two runs silently.

``<run_dir>/fingerprints.json`` holds one entry per artifact (``data.json``, ``predictions.parquet``...;
each file of ``ensemble_models/`` is one, named ``ensemble_models/<file>``):

- ``sha256``: of the artifact's bytes when it was written;
- ``notebook`` and ``parameters``: the notebook that wrote it and its checked parameters;
- ``upstream``: ``{artifact: sha256}`` of the artifacts that notebook reads (:data:`READS`), as
  they were when it wrote;
- ``fingerprint``: SHA-256 of the three above (and, for ``data.json``, of the dataset files'
  fingerprint it holds), the run's identity up to this artifact.

The dataset itself is fingerprinted in ``data.json`` (``data_fingerprint``): per file its size
and the SHA-256 of its last MiB (a parquet file's footer: schema and row-group statistics), which
is cheap on 5 GB and changes when the file is rebuilt with another seed or size.

Checks (:func:`check_artifact`, called whenever an artifact is read through
:mod:`nbutils.run.artifacts`): only the run directory's own artifacts are read. An artifact
without an entry (copied in by hand or from another run) or whose bytes no longer match its entry
(replaced or edited) has an unknown origin and is refused, naming the file, the notebook that
makes it and how to adopt a hand-made file on purpose (``python -m nbutils adopt FILE --run-dir
DIR``, :func:`nbutils.run.artifacts.adopt_artifact`, which records its fingerprint). An artifact
whose upstream artifacts have changed since it was written is refused, naming the mismatch and
the notebook to rerun.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nbutils.errors import PipelineError
from nbutils.run.catalog import ARTIFACT_DIRS, PRODUCERS, producer_of
from nbutils.util import read_json, write_json

MANIFEST = "fingerprints.json"

#: notebook -> the artifacts it reads (its outputs' upstream)
READS: dict[str, tuple[str, ...]] = {
    "01_load_data.ipynb": (),
    "02_feature_engineering.ipynb": ("data.json",),
    "03_training.ipynb": ("data.json", "feature_spec.json"),
    "04_evaluation.ipynb": ("data.json", "predictions.parquet"),
    "05_submission.ipynb": ("data.json", "predictions.parquet"),
    "06_neutralization.ipynb": ("data.json", "predictions.parquet"),
    "07_benchmark_models.ipynb": ("data.json", "predictions.parquet"),
    "08_target_ensemble.ipynb": ("data.json", "feature_spec.json", "predictions.parquet"),
    "09_validation.ipynb": ("data.json", "feature_spec.json", "predictions.parquet"),
}

_TAIL = 1 << 20
_step: dict[str, Any] = {}
_hash_cache: dict[tuple[str, int, int], str] = {}


def begin_step(notebook: str, parameters: Mapping[str, Any]) -> None:
    """Remember which notebook runs in this kernel and its checked parameters (recorded with
    every artifact it writes). Called by :func:`nbutils.run.parameters.check_notebook_parameters`."""
    _step.clear()
    _step.update(notebook=Path(notebook).name, parameters=dict(parameters))


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def dataset_fingerprint(dataset_dir: str | os.PathLike) -> dict[str, list]:
    """``{file: [size, sha256 of its last MiB]}`` for the dataset's files (hidden files skipped)."""
    root = Path(dataset_dir)
    out: dict[str, list] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(size - _TAIL, 0))
            tail = hashlib.sha256(fh.read()).hexdigest()
        out[rel.as_posix()] = [size, tail]
    return out


def check_dataset(run_dir: str | os.PathLike, info: Mapping[str, Any]) -> None:
    """Refuse a dataset whose files differ from the fingerprint ``data.json`` recorded."""
    recorded = info.get("data_fingerprint")
    if not isinstance(recorded, dict):
        return  # data.json from before fingerprints
    dataset = Path(info["dataset_dir"])
    now = dataset_fingerprint(dataset) if dataset.is_dir() else {}
    changed = sorted(name for name, fp in recorded.items() if now.get(name) != list(fp))
    if changed:
        raise PipelineError(
            f"the dataset {dataset} changed since notebook 01 loaded it into {run_dir} "
            f"({', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} differ: another run "
            "rebuilt or downloaded into the same directory). Rerun 01_load_data.ipynb and the "
            f"notebooks after it (or the whole chain: python -m nbutils run --run-dir {run_dir})."
        )


# -- the manifest --------------------------------------------------------------------------------
def read_manifest(run_dir: str | os.PathLike) -> dict[str, dict]:
    """``fingerprints.json`` of ``run_dir`` ({} when absent); a damaged one is a PipelineError."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        manifest = err
    if not isinstance(manifest, dict):
        raise PipelineError(
            f"{path} is damaged ({manifest}); delete it and rerun the whole chain "
            f"(python -m nbutils run --run-dir {run_dir})."
        )
    return manifest


def _producer(name: str) -> str:
    return producer_of(name) or ""


def record_artifact(
    run_dir: str | os.PathLike,
    name: str,
    notebook: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    adopted: bool = False,
) -> dict[str, Any]:
    """Record ``name``'s fingerprint in ``fingerprints.json`` (after the artifact was written).

    ``notebook``/``parameters`` default to the step begun in this kernel (:func:`begin_step`)
    when it is the artifact's producer. ``adopted`` marks a hand-made file the user vouched for
    (:func:`nbutils.run.artifacts.adopt_artifact`).
    """
    from nbutils.run.lock import check_not_locked_by_another

    run_path = Path(run_dir)
    check_not_locked_by_another(run_path)
    producer = notebook or _producer(name) or _step.get("notebook", "")
    if parameters is None and _step.get("notebook") == producer:
        parameters = _step.get("parameters")
    upstream = {
        u: file_sha256(run_path / u) for u in READS.get(producer, ()) if (run_path / u).is_file()
    }
    entry: dict[str, Any] = {
        "sha256": file_sha256(run_path / name),
        "notebook": producer,
        "parameters": dict(parameters) if parameters is not None else None,
        "upstream": upstream,
    }
    if adopted:
        entry["adopted"] = True
    identity = {k: entry[k] for k in ("notebook", "parameters", "upstream")}
    if name == "data.json":
        identity["data"] = read_json(run_path / name).get("data_fingerprint")
    entry["fingerprint"] = hashlib.sha256(
        json.dumps(identity, sort_keys=True, default=str).encode()
    ).hexdigest()
    manifest = read_manifest(run_path)
    manifest[name] = entry
    write_json(run_path / MANIFEST, manifest)
    return entry


def record_outputs(
    run_dir: str | os.PathLike, notebook: str, parameters: Mapping[str, Any], since: float
) -> list[str]:
    """Record every artifact ``notebook`` wrote after ``since`` (a ``time.time()``); used by the
    chain after each notebook, so artifacts saved by other functions are recorded too."""
    run_path = Path(run_dir)
    manifest = read_manifest(run_path)
    done = []
    for name, producer in _artifact_names(run_path):
        path = run_path / name
        if producer != Path(notebook).name or not path.is_file() or path.stat().st_mtime < since:
            continue
        if manifest.get(name, {}).get("sha256") == file_sha256(path):
            continue  # recorded by the notebook's own kernel, with all its checked parameters
        record_artifact(run_path, name, producer, parameters)
        done.append(name)
    return done


def _artifact_names(run_path: Path) -> list[tuple[str, str]]:
    """``(name, producer)`` of every artifact a run directory can hold: the names of
    :data:`PRODUCERS` and the files now in the :data:`ARTIFACT_DIRS` (``ensemble_models/...``)."""
    names = list(PRODUCERS.items())
    for directory, producer in ARTIFACT_DIRS.items():
        if (run_path / directory).is_dir():
            for path in sorted((run_path / directory).iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    names.append((f"{directory}/{path.name}", producer))
    return names


def adopt_hint(run_dir: str | os.PathLike, name: str) -> str:
    """How to rerun the producer of ``name``, or adopt a hand-made ``name`` on purpose."""
    producer = _producer(name) or "the notebook that writes it"
    return (
        f"Rerun {producer} with run_dir={str(run_dir)!r} (or the whole chain: python -m nbutils "
        f"run --run-dir {run_dir}). If you made this file yourself on purpose, adopt it: "
        f"python -m nbutils adopt {name} --run-dir {run_dir} (in Python: "
        "nbutils.run.artifacts.adopt_artifact); its fingerprint is then recorded."
    )


def check_artifact(run_dir: str | os.PathLike, name: str) -> None:
    """Refuse ``name`` unless this run directory made it, and made it from the upstream artifacts
    there now.

    Refused: an artifact without an entry in ``fingerprints.json`` (copied in by hand, or from
    another run: origin unknown), one whose bytes differ from its entry (edited or replaced after
    it was written), and one made from another version of an upstream artifact (mixed runs).
    """
    run_path = Path(run_dir)
    path = run_path / name
    producer = _producer(name) or "the notebook that writes it"
    entry = read_manifest(run_path).get(name)
    if not entry:
        raise PipelineError(
            f"{path} has no fingerprint in {run_path / MANIFEST}: its origin is unknown (copied "
            f"in by hand or from another run, not written by {producer} into this run "
            f"directory), so nbutils does not read it. {adopt_hint(run_path, name)}"
        )
    if file_sha256(path) != entry.get("sha256"):
        raise PipelineError(
            f"{path} is not the file {entry.get('notebook') or producer} wrote (its bytes differ "
            f"from its fingerprint in {MANIFEST}: replaced or edited since, origin unknown), so "
            f"nbutils does not read it. {adopt_hint(run_path, name)}"
        )
    for upstream, sha in (entry.get("upstream") or {}).items():
        upath = run_path / upstream
        if upath.is_file() and file_sha256(upath) != sha:
            made_by = entry.get("notebook") or "the notebook that wrote it"
            raise PipelineError(
                f"{name} in {run_path} was made by {made_by} from another {upstream} than the "
                f"one there now ({upstream} was rewritten later by {_producer(upstream) or 'another notebook'}"
                f"): the run directory mixes two runs, e.g. after a chain stopped in {made_by}. "
                f"Rerun {made_by} and the notebooks after it, or the whole chain "
                f"(python -m nbutils run --run-dir {run_path})."
            )


def artifact_of(path: str | os.PathLike) -> tuple[Path, str] | None:
    """``(run directory, artifact name)`` when ``path`` is one of the run's artifacts: a file
    named in :data:`~nbutils.run.catalog.PRODUCERS` in a run directory (:func:`is_run_dir`), or
    a file of one of its :data:`~nbutils.run.catalog.ARTIFACT_DIRS` (``ensemble_models/
    model_target.txt``); None otherwise."""
    target = Path(path)
    if target.name in PRODUCERS and is_run_dir(target.parent):
        return target.parent, target.name
    name = f"{target.parent.name}/{target.name}"
    if (
        target.parent.name in ARTIFACT_DIRS
        and producer_of(name)
        and is_run_dir(target.parent.parent)
    ):
        return target.parent.parent, name
    return None


def record_if_artifact(path: str | os.PathLike) -> None:
    """Record ``path``'s fingerprint when it is one of the run's artifacts (:func:`artifact_of`):
    the savers of the tutorial's modules (``FeatureSpec.save``, ``save_model``,
    ``write_submission``, ``save_json``) call this after writing, so a notebook run by hand
    records what it wrote as the chain does."""
    found = artifact_of(path)
    if found is not None and Path(path).is_file():
        record_artifact(*found)


def is_run_dir(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a run directory: notebook 01 wrote ``data.json`` there, an
    artifact was recorded there, or a chain holds its lock."""
    from nbutils.run.lock import LOCK_NAME

    path = Path(directory)
    return any((path / name).exists() for name in ("data.json", MANIFEST, LOCK_NAME))


@contextlib.contextmanager
def saving(path: str | os.PathLike) -> Iterator[Path]:
    """Write a run artifact as the chain would: under the run directory's lock, then recorded.

    For one of the run's artifacts (:func:`artifact_of`: a file named like one of
    :data:`~nbutils.run.catalog.PRODUCERS` in a run directory, or a file of its
    ``ensemble_models/``), the lock is checked and taken before the ``with`` block writes
    anything (:func:`nbutils.run.lock.writing`) and the fingerprint is recorded after it; any
    other file is just written. Used by ``FeatureSpec.save``, ``save_model``,
    ``write_submission`` and :func:`nbutils.run.artifacts.save_json`.
    """
    from nbutils.run.lock import writing

    target = Path(path)
    found = artifact_of(target)
    if found is None:
        yield target
        return
    with writing(found[0]):
        yield target
        if target.is_file():
            record_artifact(*found)
