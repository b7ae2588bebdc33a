"""Which notebook writes which artifact, and what to tell a learner when one is missing.

A leaf of :mod:`nbutils.run`: it imports nothing from nbutils, so the artifact, fingerprint and
step modules can all use it without importing each other in a circle.
"""

from __future__ import annotations

import os

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
    "neutralization.json": "06_neutralization.ipynb",
    "benchmark_scores.csv": "07_benchmark_models.ipynb",
    "feature_risk.csv": "07_benchmark_models.ipynb",
    "benchmark_models.json": "07_benchmark_models.ipynb",
    "target_correlations.csv": "08_target_ensemble.ipynb",
    "ensemble_scores.csv": "08_target_ensemble.ipynb",
    "ensemble.json": "08_target_ensemble.ipynb",
    "ensemble_submission.csv": "08_target_ensemble.ipynb",
    "walk_forward_per_era.csv": "09_validation.ipynb",
    "param_search.csv": "09_validation.ipynb",
    "validation.json": "09_validation.ipynb",
}

#: directory of a run -> the notebook that writes every file in it (each file is an artifact of
#: its own, named ``<directory>/<file>`` in fingerprints.json)
ARTIFACT_DIRS: dict[str, str] = {"ensemble_models": "08_target_ensemble.ipynb"}


def producer_of(name: str) -> str | None:
    """The notebook that writes the artifact ``name`` (a file name of :data:`PRODUCERS`, or
    ``<directory>/<file>`` in one of :data:`ARTIFACT_DIRS`), or None when it is no artifact."""
    if name in PRODUCERS:
        return PRODUCERS[name]
    head, sep, tail = name.partition("/")
    if sep and tail and "/" not in tail and not tail.startswith("."):
        return ARTIFACT_DIRS.get(head)
    return None


def run_first_hint(run_dir: str | os.PathLike, producer: str) -> str:
    """What to do when an artifact of ``producer`` is missing, wherever the learner is.

    In Jupyter, Colab or Kaggle: run that notebook with the same ``run_dir`` (or just run this one:
    the library makes the missing steps). From a shell, in a clone or after ``pip install``:
    ``python -m nbutils run``, which runs the nine packaged notebooks.
    """
    return (
        f"Run {producer} first with run_dir={str(run_dir)!r}, or run the whole chain from a shell "
        f"(works in a clone and after `pip install nbutils`): "
        f"python -m nbutils run --run-dir {run_dir}"
    )


#: Notebooks that need today's v5 files (benchmark models, meta model, auxiliary targets): the
#: 2021 CSV layout has none, so the chain skips them there and says why.
NEEDS_V5: frozenset[str] = frozenset({"07_benchmark_models.ipynb", "08_target_ensemble.ipynb"})


def skip_reason(notebook: str, layout: str | None) -> str | None:
    """Why the chain does not run ``notebook`` on data of ``layout`` ("v5" or "legacy"), or None."""
    if notebook in NEEDS_V5 and layout == "legacy":
        return (
            "skipped: it needs today's v5 data (benchmark models, meta model, auxiliary "
            "targets), which the 2021 layout does not have"
        )
    return None
