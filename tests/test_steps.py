"""nbutils.run.steps: a notebook opened alone makes the earlier steps with the library."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import numerai_corr

from nbutils.data import TINY_SIZES
from nbutils.errors import PipelineError
from nbutils.features import FeatureSpec
from nbutils.run import catalog, steps
from nbutils.run.artifacts import load_predictions, load_run_data, read_artifact_json
from nbutils.run.pipeline import declared_parameters
from nbutils.run.project import notebooks_dir
from nbutils.train import load_model, predict

FAST = {"01": {"synthetic_sizes": TINY_SIZES}, "03": {"n_estimators": 10}}


@pytest.mark.parametrize("step", sorted(steps.STEP_DEFAULTS))
def test_step_defaults_are_the_notebooks_defaults(step):
    declared = declared_parameters(notebooks_dir() / steps.NOTEBOOK_OF_STEP[step])
    for name, value in steps.STEP_DEFAULTS[step].items():
        assert name in declared, f"{name} is no longer a parameter of notebook {step}"
        assert eval(declared[name]) == value, name  # papermill gives the default's source text


@pytest.fixture(scope="module")
def made_run(tmp_path_factory):
    """Notebook 04 opened alone in an empty run directory: 01, 02 and 03 are made."""
    root = tmp_path_factory.mktemp("alone")
    lines: list[str] = []
    made = steps.ensure_upstream(
        root / "run",
        "04_evaluation.ipynb",
        data_dir=root / "data",
        overrides=FAST,
        log=lines.append,
    )
    return root / "run", made, lines


def test_missing_steps_are_made_and_announced_in_one_line_each(made_run):
    run_dir, made, lines = made_run
    assert made == ["01", "02", "03"]
    assert lines == [
        "01 の成果物がないので既定の設定で作ります (data.json)",
        "02 の成果物がないので既定の設定で作ります (feature_spec.json)",
        "03 の成果物がないので既定の設定で作ります (model.txt, predictions.parquet)",
    ]
    for name in ("data.json", "feature_spec.json", "model.txt", "predictions.parquet"):
        assert (run_dir / name).is_file()
    assert steps.missing_steps(run_dir, 6) == []
    assert steps.ensure_upstream(run_dir, "06", log=lines.append) == []
    assert len(lines) == 3


def test_step_01_is_notebook_01_on_the_default_synthetic_data(made_run):
    run_dir, _, _ = made_run
    info = read_artifact_json(run_dir, "data.json")
    assert info["data_source"] == "synthetic" and info["layout"] == "v5"
    assert info["feature_set"] == "all" and info["era_step"] == 1
    assert info["rows"]["train"] == TINY_SIZES["n_train_eras"] * TINY_SIZES["rows_per_era"]


def test_step_02_picks_the_features_most_correlated_with_the_target(made_run):
    run_dir, _, _ = made_run
    data, _ = load_run_data(run_dir)
    # independent reference: numerai-tools' numerai_corr era by era, mean, top 3 by |value|
    means = {
        f: np.mean(
            [
                numerai_corr(g[[f]].astype(float), g["target"])[f]
                for _, g in data.train.groupby("era")
            ]
        )
        for f in data.features
    }
    top = sorted(means, key=lambda f: -abs(means[f]))[:3]
    spec = FeatureSpec.load(run_dir / "feature_spec.json")
    assert spec.group_stats is True
    assert sorted(spec.interactions) == sorted(top)


def test_step_03_predictions_are_the_saved_models_on_validation_and_live(made_run):
    run_dir, _, _ = made_run
    data, _ = load_run_data(run_dir)
    preds = load_predictions(run_dir)
    ids = pd.Index(list(data.validation.index) + list(data.live.index))
    assert preds.index.equals(ids)
    # v5's validation split holds the test eras at the end of validation.parquet (issue 16): the
    # predictions' check counts them as validation rows, not live ones
    assert set(preds.loc[data.validation.index, "data_type"]) == {"validation", "test"}
    model = load_model(run_dir / "model.txt")
    assert len(model.boosters) == 1 and model.boosters[0].num_trees() == 10
    spec = FeatureSpec.load(run_dir / "feature_spec.json")
    again = predict(model, spec.apply(data.validation, data.feature_groups)[0])
    np.testing.assert_allclose(preds.loc[data.validation.index, "prediction"], again)


def test_only_the_first_missing_step_and_the_later_ones_are_remade(tmp_path, made_run):
    run_dir, _, _ = made_run
    copy = tmp_path / "run"
    copy.mkdir()
    # 02's spec is missing; the fingerprints come along (files copied without them are refused)
    for name in ("data.json", "model.txt", "predictions.parquet", "fingerprints.json"):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    data_json = (copy / "data.json").read_bytes()
    lines: list[str] = []
    made = steps.ensure_upstream(copy, 5, overrides=FAST, log=lines.append)
    assert made == ["02", "03"] and len(lines) == 2
    assert (copy / "data.json").read_bytes() == data_json  # 01 kept
    assert (copy / "feature_spec.json").is_file()


def test_notebook_09_needs_the_steps_of_03(tmp_path):
    assert steps.missing_steps(tmp_path, "09") == ["01", "02", "03"]
    assert steps.missing_steps(tmp_path, "09_validation.ipynb") == ["01", "02", "03"]


def test_notebook_01_needs_nothing(tmp_path):
    assert steps.ensure_upstream(tmp_path / "run", "01", log=print) == []
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("bad", ["10", 0, True, "abc", "10_x.ipynb"])
def test_unknown_notebooks_are_refused(bad, tmp_path):
    with pytest.raises(PipelineError, match="not one of the notebooks"):
        steps.ensure_upstream(tmp_path, bad)


def test_unknown_step_parameters_and_non_synthetic_sources_are_refused(tmp_path):
    with pytest.raises(PipelineError, match=r"unknown parameter\(s\) \['n_estimator'\]"):
        steps.ensure_upstream(
            tmp_path / "r",
            "04",
            overrides={"03": {"n_estimator": 5}},
            data_dir=tmp_path / "d",
            log=lambda s: None,
        )
    with pytest.raises(PipelineError, match="only from synthetic data"):
        steps.make_data_step(tmp_path / "r", data_source="numerai")


def test_run_first_hint_gives_a_command_that_works_after_pip_install():
    hint = catalog.run_first_hint("runs/x", "02_feature_engineering.ipynb")
    assert "python -m nbutils run --run-dir runs/x" in hint and "make" not in hint


def test_missing_artifacts_say_what_works_after_pip_install(tmp_path):
    from nbutils.run.artifacts import load_predictions

    with pytest.raises(PipelineError) as info:
        load_predictions(tmp_path)
    message = str(info.value)
    assert "Run 03_training.ipynb first" in message and "make run" not in message
    assert f"python -m nbutils run --run-dir {tmp_path}" in message


def test_made_artifacts_are_recorded_as_their_notebooks_record_them(made_run):
    from nbutils.run.fingerprints import file_sha256, read_manifest

    run_dir, _, _ = made_run
    manifest = read_manifest(run_dir)
    producers = {
        "data.json": "01_load_data.ipynb",
        "feature_spec.json": "02_feature_engineering.ipynb",
        "model.txt": "03_training.ipynb",
        "predictions.parquet": "03_training.ipynb",
    }
    for name, notebook in producers.items():
        entry = manifest[name]
        assert entry["sha256"] == file_sha256(run_dir / name), name
        assert entry["notebook"] == notebook and entry["parameters"]["run_dir"] == str(run_dir)
    assert manifest["data.json"]["parameters"]["synthetic_sizes"] == TINY_SIZES
    assert manifest["data.json"]["parameters"]["feature_set"] == "all"
    assert manifest["feature_spec.json"]["parameters"]["interaction_count"] == 3
    assert manifest["model.txt"]["parameters"]["n_estimators"] == 10
    assert manifest["predictions.parquet"]["parameters"]["learning_rate"] == 0.02
    assert manifest["predictions.parquet"]["upstream"] == {
        "data.json": file_sha256(run_dir / "data.json"),
        "feature_spec.json": file_sha256(run_dir / "feature_spec.json"),
    }
    assert manifest["feature_spec.json"]["upstream"] == {
        "data.json": file_sha256(run_dir / "data.json")
    }


def test_made_artifacts_are_not_mixed_with_another_runs_data(made_run, tmp_path):
    """Steps made alone, then 01 remade on other data: the old predictions are refused."""
    import shutil

    from nbutils.run.artifacts import load_predictions

    run_dir, _, _ = made_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    load_predictions(copy)  # consistent as made
    steps.make_data_step(copy, data_dir=tmp_path / "data", synthetic_sizes=TINY_SIZES, seed=1)
    with pytest.raises(PipelineError, match="made by 03_training.ipynb from another data.json"):
        load_predictions(copy)
    # the notebooks' own rule: 02 is there, so nothing is remade and the mix stays refused
    assert steps.ensure_upstream(copy, "04", log=lambda _: None) == []
    with pytest.raises(PipelineError, match="Rerun 03_training.ipynb"):
        load_predictions(copy)


def test_a_step_parameter_of_the_wrong_type_is_refused_before_recording(tmp_path):
    from nbutils.run.parameters import ParameterError

    with pytest.raises(ParameterError, match="n_estimators"):
        steps.ensure_upstream(
            tmp_path / "r",
            "04",
            data_dir=tmp_path / "d",
            overrides={"01": {"synthetic_sizes": TINY_SIZES}, "03": {"n_estimators": "many"}},
            log=lambda _: None,
        )
