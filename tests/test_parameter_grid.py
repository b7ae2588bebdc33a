"""Every parameter choice the notebooks' schemas declare runs (issue 16, deliverable 5).

One upstream run (01-03 on tiny synthetic data, few trees) is made once; each variant then runs
only its own notebook in a copy of it: 03 with each ``model_preset``, 05 with ``rank_per_era``
both ways, 06 with both ``neutralize_against``, both ``per_era`` and ``proportion`` 0, 0.5 and 1.
The 06 cases are pairwise over (``neutralize_against``, ``per_era``), so every value of every
choice runs at least once, and they include ``features, per_era, 0.5``, which crashed with an
IndexError in the cell ``chosen_name = ...`` (its row had the same name as today's variant).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from nbutils.data import TINY_SIZES, load_data
from nbutils.run.parameters import schema_for
from nbutils.run.pipeline import run_pipeline

pytestmark = pytest.mark.slow

GRID_06 = [  # (neutralize_against, per_era, proportion)
    ("features", True, 0.5),  # the IndexError of issue 16: same name as today's variant
    ("example_predictions", True, 0.0),
    ("features", False, 1.0),
    ("example_predictions", False, 0.5),
]


def run_notebooks(run_dir, notebooks, params=None):
    return run_pipeline(
        run_dir,
        params or {},
        notebooks=notebooks,
        progress=False,
        html=False,
        log=lambda *_: None,
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """01-03 once, on tiny v5 data with 20 trees: the run every variant copies."""
    root = tmp_path_factory.mktemp("grid")
    mp = pytest.MonkeyPatch()
    mp.delenv("MPLBACKEND", raising=False)
    try:
        run_notebooks(
            root / "run",
            ("01_load_data.ipynb", "02_feature_engineering.ipynb", "03_training.ipynb"),
            {
                "data_dir": str(root / "data"),
                "synthetic_sizes": dict(TINY_SIZES),
                "n_estimators": 20,
                "learning_rate": 0.1,
            },
        )
    finally:
        mp.undo()
    return root / "run"


@pytest.fixture
def run_copy(upstream, tmp_path):
    """A private copy of the upstream run (a notebook may overwrite its outputs)."""
    run = tmp_path / "run"
    shutil.copytree(upstream, run, ignore=shutil.ignore_patterns(".nbutils.lock"))
    return run


def choices(notebook: str, name: str) -> set:
    param = schema_for(notebook)[name]
    return set(param.choices) if param.choices else {True, False}


def test_the_grid_covers_every_declared_choice():
    """A choice added to a schema must be added here too."""
    against = {a for a, _, _ in GRID_06}
    assert against == choices("06_neutralization.ipynb", "neutralize_against")
    assert {p for _, p, _ in GRID_06} == {True, False}
    assert {p for _, _, p in GRID_06} == {0.0, 0.5, 1.0}
    assert {(a, p) for a, p, _ in GRID_06} == {(a, p) for a in against for p in (True, False)}
    assert choices("03_training.ipynb", "model_preset") == {"seed", "example"}


@pytest.mark.parametrize(("against", "per_era", "proportion"), GRID_06)
def test_06_runs_with_every_choice(run_copy, against, per_era, proportion):
    params = {"neutralize_against": against, "per_era": per_era, "proportion": proportion}
    run_notebooks(run_copy, ("06_neutralization.ipynb",), params)
    settings = json.loads((run_copy / "neutralization.json").read_text())
    assert (settings["neutralize_against"], settings["per_era"]) == (against, per_era)
    assert settings["proportion"] == proportion
    lesson = json.loads((run_copy / "neutralization_lesson.json").read_text())
    assert set(lesson) == {"before", "chosen", "today", "embargo_eras"}
    mean = next(k for k in lesson["before"] if "mean" in k)
    if proportion == 0.0:  # nothing removed: the chosen variant scores as the model itself
        assert lesson["chosen"][mean] == pytest.approx(lesson["before"][mean], abs=1e-12)
    else:
        assert lesson["chosen"][mean] != pytest.approx(lesson["before"][mean], abs=1e-9)
    sub = pd.read_csv(run_copy / "neutralized_submission.csv")
    assert sub["prediction"].between(0, 1).all() and sub["prediction"].nunique() > 1


@pytest.mark.parametrize("rank_per_era", [True, False])
def test_05_runs_with_rank_per_era_both_ways(run_copy, rank_per_era):
    run_notebooks(run_copy, ("05_submission.ipynb",), {"rank_per_era": rank_per_era})
    sub = pd.read_csv(run_copy / "submission.csv", dtype={"id": str}).set_index("id")
    predictions = pd.read_parquet(run_copy / "predictions.parquet")
    info = json.loads((run_copy / "data.json").read_text())
    live = load_data(info["dataset_dir"]).live
    eras = live["era"].reindex(sub.index)
    assert eras.notna().all()
    if rank_per_era:  # (rank - 0.5) / n within each era
        for _, values in sub["prediction"].groupby(eras):
            n = len(values)
            expected = (values.rank(method="average") - 0.5) / n
            np.testing.assert_allclose(values, expected, rtol=1e-12)
    else:  # the model's own live predictions, unchanged
        raw = predictions["prediction"].reindex(sub.index)
        np.testing.assert_allclose(sub["prediction"], raw, rtol=1e-6)


@pytest.mark.parametrize("preset", ["example", "seed"])
def test_03_runs_with_each_preset(run_copy, preset):
    from nbutils.run.fingerprints import read_manifest

    (run_copy / "model.txt").unlink()
    run_notebooks(run_copy, ("03_training.ipynb",), {"model_preset": preset, "n_estimators": 10})
    assert (run_copy / "model.txt").is_file()
    recorded = read_manifest(run_copy)["predictions.parquet"]["parameters"]
    assert recorded["model_preset"] == preset and recorded["n_estimators"] == 10
