"""The papermill chain's machinery, on small notebooks made by the tests (the full chain is in
test_chain.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from nbutils.errors import PipelineError
from nbutils.run import artifacts, pipeline


def write_notebook(path: Path, *sources: str, params: str = 'run_dir = "x"\nvalue = 1') -> Path:
    nb = nbformat.v4.new_notebook()
    # as Jupyter writes every notebook; papermill 2.5 needs it (test_notebooks.py checks ours)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb_dir(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    write_notebook(
        d / "a.ipynb",
        "from pathlib import Path\nPath(run_dir, 'a.txt').write_text(str(value * 2))",
    )
    write_notebook(d / "b.ipynb", "x = 1", "raise RuntimeError('boom in b')", "y = 2")
    write_notebook(d / "c.ipynb", "import os\nprint(os.environ.get('NUMERAI_SECRET_KEY'))")
    return d


def test_run_passes_declared_parameters_and_saves_executed_notebooks(nb_dir, tmp_path):
    run = tmp_path / "run"
    result = pipeline.run_pipeline(
        run,
        {"value": 21},
        notebooks_dir=nb_dir,
        notebooks=("a.ipynb",),
        progress=False,
        log=lambda *_: None,
    )
    assert (run / "a.txt").read_text() == "42"
    executed = nbformat.read(run / "a.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert not list(run.glob(".*.tmp*")), "no temporary notebook is left behind"
    assert result.executed == [run / "a.ipynb"]
    assert (run / "html" / "a.html").is_file()
    assert "a.html" in (run / "index.html").read_text()


def test_failing_notebook_names_notebook_and_cell_and_keeps_partial(nb_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(PipelineError) as info:
        pipeline.run_pipeline(
            run,
            {},
            notebooks_dir=nb_dir,
            notebooks=("a.ipynb", "b.ipynb", "c.ipynb"),
            progress=False,
            log=lambda *_: None,
        )
    message = str(info.value)
    assert "b.ipynb" in message and "boom in b" in message
    assert "cell 4 of the executed notebook" in message  # injected parameters cell counts
    assert "raise RuntimeError('boom in b')" in message
    partial = nbformat.read(run / "b.ipynb", as_version=4)
    assert any(
        o.get("ename") == "RuntimeError" for c in partial.cells for o in c.get("outputs", [])
    )
    assert not (run / "c.ipynb").exists(), "the chain stops at the failing notebook"


def test_secrets_from_environment_never_reach_saved_files(nb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBLICIDXYZ123")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRETKEYXYZ987")
    run = tmp_path / "run"
    pipeline.run_pipeline(
        run, {}, notebooks_dir=nb_dir, notebooks=("c.ipynb",), progress=False, log=lambda *_: None
    )
    for path in run.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="ignore")
            assert "SECRETKEYXYZ987" not in text and "PUBLICIDXYZ123" not in text, path
    assert "***" in (run / "c.ipynb").read_text()


@pytest.mark.parametrize("name", ["secret_key", "NUMERAI_PUBLIC_ID", "api_token", "password"])
def test_secret_like_parameters_are_refused(name, tmp_path):
    with pytest.raises(PipelineError, match="never notebook parameters"):
        pipeline.run_pipeline(tmp_path, {name: "x"}, notebooks=(), log=lambda *_: None)


def test_missing_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        pipeline.run_pipeline(
            tmp_path / "r", {}, notebooks_dir=tmp_path, notebooks=("zz.ipynb",), log=lambda *_: None
        )


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "p.ipynb")
    with pytest.raises(PipelineError, match="parameters"):
        pipeline.declared_parameters(tmp_path / "p.ipynb")


def test_kernel_spec_points_at_this_interpreter():
    import sys

    root = pipeline.kernel_spec_dir()
    spec = json.loads((root / "kernels" / pipeline.KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    pipeline._remove_tree(root)
    assert not root.exists()


def test_kernels_draw_inline_even_when_the_caller_sets_mplbackend(tmp_path, monkeypatch):
    """A real kernel started by the chain under MPLBACKEND=Agg still has the inline backend, and
    a figure drawn in a cell is an output of the executed notebook (issue 13, item 12)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    code = (
        "import os\nimport matplotlib\nimport matplotlib.pyplot as plt\n"
        "print(os.environ['MPLBACKEND'], matplotlib.get_backend())\n"
        "plt.plot([0, 1], [1, 0])\nplt.show()"
    )
    write_notebook(nbs / "m.ipynb", code)
    run = tmp_path / "run"
    pipeline.run_pipeline(
        run,
        {},
        notebooks_dir=nbs,
        notebooks=("m.ipynb",),
        progress=False,
        html=False,
        log=lambda *_: None,
    )
    cell = next(c for c in nbformat.read(run / "m.ipynb", as_version=4).cells if "plt" in c.source)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert text.split()[0] == pipeline.INLINE_BACKEND
    assert "inline" in text.split()[1]
    assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.outputs


def test_cli_parses_parameters_as_json_or_strings(monkeypatch):
    seen = {}

    def fake_run(run_dir, params, **kwargs):
        seen.update(params, run_dir=run_dir)
        return pipeline.RunResult(run_dir=Path(run_dir))

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run)
    code = pipeline.main(
        [
            "run",
            "--run-dir",
            "r1",
            "--data-source",
            "numerai",
            "-p",
            "era_step",
            "4",
            "-p",
            "seeds",
            "[0, 1]",
            "-p",
            "model_name",
            "my_model",
            "-p",
            "upload",
            "true",
        ]
    )
    assert code == 0
    assert seen == {
        "run_dir": "r1",
        "data_source": "numerai",
        "era_step": 4,
        "seeds": [0, 1],
        "model_name": "my_model",
        "upload": True,
    }


def test_cli_returns_nonzero_and_prints_the_error(monkeypatch, capsys):
    def failing(*args, **kwargs):
        raise PipelineError("03_training.ipynb failed in cell 7")

    monkeypatch.setattr(pipeline, "run_pipeline", failing)
    assert pipeline.main(["run"]) == 1
    assert "03_training.ipynb failed in cell 7" in capsys.readouterr().err


def test_summary_reads_diagnostics_before_and_after(tmp_path):
    pd.DataFrame(
        {
            "metric": ["Validation Sharpe", "Validation Mean", "Max Drawdown", "MMC Mean"],
            "before": [1.5, 0.03, -0.02, 0.001],
            "after": [1.8, 0.025, -0.01, 0.002],
        }
    ).to_csv(tmp_path / "diagnostics.csv", index=False)
    (tmp_path / "submission.csv").write_text("id,prediction\n")
    summary = pipeline.summarize(tmp_path)
    assert summary["Validation Sharpe"] == {"before": 1.5, "after": 1.8}
    assert summary["Max Drawdown"] == {"before": -0.02, "after": -0.01}
    assert summary["submission.csv"] == str(tmp_path / "submission.csv")
    assert summary["neutralized_submission.csv"] is None
    text = pipeline.format_summary(summary)
    assert "Validation Mean" in text and "0.0300" in text and "0.0250" in text


def test_missing_artifact_names_the_notebook_to_run_first(tmp_path):
    with pytest.raises(PipelineError, match="Run 03_training.ipynb first"):
        artifacts.load_predictions(tmp_path)
    with pytest.raises(PipelineError, match="Run 01_load_data.ipynb first"):
        artifacts.load_run_data(tmp_path)


def test_predictions_round_trip_and_reject_missing_columns(tmp_path):
    frame = pd.DataFrame(
        {"era": ["0001", "0002"], "data_type": ["validation", "live"], "prediction": [0.25, 0.75]},
        index=pd.Index(["n1", "n2"], name="id"),
    )
    artifacts.save_predictions(frame, tmp_path)
    back = artifacts.load_predictions(tmp_path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_index_type=False)
    with pytest.raises(PipelineError, match="prediction"):
        artifacts.save_predictions(frame.drop(columns="prediction"), tmp_path)


def test_training_target_is_what_03_recorded_else_the_main_target(tmp_path):
    from nbutils.run import fingerprints
    from nbutils.run.fingerprints import begin_step

    assert artifacts.training_target(tmp_path) == "target"  # nothing recorded yet
    frame = pd.DataFrame(
        {"era": ["0001"], "data_type": ["validation"], "prediction": [0.5]},
        index=pd.Index(["a"], name="id"),
    )
    begin_step("03_training.ipynb", {"target": "target_cyrus_v4_60"})
    try:
        artifacts.save_predictions(frame, tmp_path)
    finally:
        fingerprints._step.clear()  # no notebook runs in this process
    assert artifacts.training_target(tmp_path) == "target_cyrus_v4_60"


def test_project_root_is_found_from_notebooks_dir(monkeypatch):
    root = pipeline.default_notebooks_dir().parent
    assert artifacts.project_root(root / "notebooks") == root
    assert artifacts.project_root(root) == root
    monkeypatch.chdir(root / "notebooks")
    assert artifacts.resolve_dir("runs/x") == root / "runs" / "x"


# -- reliability (issue 13) -------------------------------------------------------------------
@pytest.fixture
def fake_execute(monkeypatch):
    """Replace the kernel run by a recorder: run_pipeline's checks run, no kernel starts."""
    calls = {}

    def execute(source, run_path, params, keys, progress=True):
        calls[source.name] = dict(params)
        out = run_path / source.name
        out.write_text(source.read_text())
        return out

    monkeypatch.setattr(pipeline, "execute_notebook", execute)
    return calls


def run_cli(*args):
    return pipeline.main(["run", "--no-html", "--no-progress", *args])


def test_cli_booleans_are_booleans_and_false_never_uploads(fake_execute, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert (
        run_cli(
            "--run-dir",
            run,
            "-p",
            "upload",
            "False",
            "-p",
            "model_name",
            "m",
            "-p",
            "group_stats",
            "False",
            "-p",
            "per_era",
            "no",
        )
        == 0
    )
    assert fake_execute["05_submission.ipynb"]["upload"] is False
    assert fake_execute["02_feature_engineering.ipynb"]["group_stats"] is False
    assert fake_execute["06_neutralization.ipynb"]["per_era"] is False
    for text, expected in [
        ("True", True),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
    ]:
        assert run_cli("--run-dir", run, "-p", "upload", text) == 0
        assert fake_execute["05_submission.ipynb"]["upload"] is expected, text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("n_estimator", "10", "unknown parameter 'n_estimator': did you mean 'n_estimators'"),
        ("model_preset", "sed", "'model_preset' .* is 'sed': did you mean 'seed'"),
        ("n_estimators", "-5", "'n_estimators' of 03_training.ipynb must be >= 1, got -5"),
        ("upload", "maybe", "'upload' of 05_submission.ipynb must be a boolean"),
        ("proportion", "1.5", "'proportion' .* must be <= 1"),
        ("seeds", "[]", "'seeds' .* needs at least 1 item"),
        ("data_source", "synthetc", "did you mean 'synthetic'"),
        ("era_step", "0", "'era_step' .* must be >= 1"),
        ("learning_rate", "nan", "'learning_rate' .* must be a number"),
    ],
)
def test_cli_refuses_bad_parameters_clearly(fake_execute, tmp_path, capsys, name, value, message):
    assert run_cli("--run-dir", str(tmp_path / "r"), "-p", name, value) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not fake_execute, "nothing runs"


def test_schemas_match_the_notebooks_parameters_cells():
    import ast

    from nbutils.run.parameters import SCHEMAS

    assert sorted(SCHEMAS) == sorted(pipeline.NOTEBOOKS)
    for name in pipeline.NOTEBOOKS:
        declared = pipeline.declared_parameters(pipeline.default_notebooks_dir() / name)
        schema = {p.name: p for p in SCHEMAS[name]}
        assert list(declared) == list(schema), name
        for key, source in declared.items():
            assert ast.literal_eval(source) == schema[key].default, (name, key)


def test_notebook_cell_check_coerces_and_refuses_typos_and_keys(monkeypatch):
    from nbutils.run.parameters import ParameterError, check_notebook_parameters

    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    ns = {"run_dir": "r", "rank_per_era": "false", "upload": "False", "model_name": "m", "In": []}
    values = check_notebook_parameters("05_submission.ipynb", ns)
    assert ns["upload"] is False and values["rank_per_era"] is False
    history = ["", 'run_dir = "r"\nn_estimators = 300', "# Parameters\nn_estimator = 10\n", ""]
    typo = {"run_dir": "r", "n_estimator": 10, "In": history}
    with pytest.raises(ParameterError, match="'n_estimator' in 03_training.ipynb: did you mean"):
        check_notebook_parameters("03_training.ipynb", typo)
    edited = {"In": ["", 'run_dir = "r"\nn_estimator = 10', ""]}  # a typo in the cell itself
    with pytest.raises(ParameterError, match="'n_estimator' in 03_training.ipynb: did you mean"):
        check_notebook_parameters("03_training.ipynb", edited)
    later = {"In": ["", 'run_dir = "r"', "seed = 3\ntargets = []", ""], "seed": 3}
    check_notebook_parameters("03_training.ipynb", later)  # a later cell rerun: not parameters
    with pytest.raises(ParameterError, match="'model_preset' .* did you mean 'seed'"):
        check_notebook_parameters("03_training.ipynb", {"model_preset": "sed"})
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBxyz123")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECxyz987")
    with pytest.raises(ParameterError, match="'model_name' holds your Numerai API key"):
        check_notebook_parameters("05_submission.ipynb", {"model_name": "SECxyz987"})


def test_cli_refuses_a_key_as_a_parameter_value(fake_execute, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBxyz123")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECxyz987")
    assert run_cli("--run-dir", str(tmp_path / "r"), "-p", "model_name", "SECxyz987") == 1
    out, err = capsys.readouterr()
    assert "holds your Numerai API key" in err
    assert "SECxyz987" not in out + err and not fake_execute


def test_run_dir_with_the_source_notebooks_or_in_the_package_is_refused(fake_execute, tmp_path):
    import nbutils

    with pytest.raises(PipelineError, match="overwrite them"):
        pipeline.run_pipeline(pipeline.default_notebooks_dir(), {}, log=lambda *_: None)
    with pytest.raises(PipelineError, match="inside the nbutils package"):
        pipeline.run_pipeline(Path(nbutils.__file__).parent / "runs", {}, log=lambda *_: None)
    assert not fake_execute
    assert not (Path(nbutils.__file__).parent / "runs").exists()


def test_run_dir_and_data_dir_resolve_against_the_working_directory(
    fake_execute, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert run_cli("--run-dir", "r", "--data-dir", "d") == 0
    params = fake_execute["01_load_data.ipynb"]
    assert params["run_dir"] == str(tmp_path / "r") and params["data_dir"] == str(tmp_path / "d")


def test_a_second_chain_into_a_locked_run_dir_fails_and_stale_locks_are_replaced(
    fake_execute, tmp_path
):
    import subprocess
    import sys

    from nbutils.run.lock import LOCK_NAME, run_lock

    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run), pytest.raises(PipelineError, match="being written by another chain"):
        pipeline.run_pipeline(run, {}, html=False, log=lambda *_: None)
    assert not fake_execute and not (run / LOCK_NAME).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    pipeline.run_pipeline(run, {}, html=False, log=lambda *_: None)  # stale: replaced
    assert len(fake_execute) == len(pipeline.NOTEBOOKS) and not (run / LOCK_NAME).exists()


def test_a_kernels_writes_into_a_dir_locked_by_another_chain_are_refused(tmp_path, monkeypatch):
    from nbutils.run.lock import TOKEN_ENV, run_lock

    (tmp_path / "data.json").write_text("{}")
    with run_lock(tmp_path):
        artifacts.record_artifact(tmp_path, "data.json")  # the chain's own kernel: fine
        monkeypatch.setenv(TOKEN_ENV, "someone-else")
        with pytest.raises(PipelineError, match="being written by another chain"):
            artifacts.record_artifact(tmp_path, "data.json")


def test_a_full_disk_leaves_no_truncated_notebook(nb_dir, tmp_path, monkeypatch):
    import errno

    import papermill

    run = tmp_path / "run"
    run.mkdir()
    (run / "a.ipynb").write_text("previous output")

    def half_written(source, output, **kwargs):
        Path(output).write_text('{"cells": [')  # papermill writes in place, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(papermill, "execute_notebook", half_written)
    with pytest.raises(PipelineError, match="No space left on device.*free space"):
        pipeline.run_pipeline(
            run, {}, notebooks_dir=nb_dir, notebooks=("a.ipynb",), log=lambda *_: None
        )
    assert (run / "a.ipynb").read_text() == "previous output"
    assert sorted(p.name for p in run.iterdir()) == ["a.ipynb"]


def test_a_kernel_killed_by_the_os_says_out_of_memory(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "k.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(PipelineError, match="kernel running k.ipynb died.*out of memory"):
        pipeline.run_pipeline(
            tmp_path / "run",
            {},
            notebooks_dir=nbs,
            notebooks=("k.ipynb",),
            progress=False,
            log=lambda *_: None,
        )
    assert not list((tmp_path / "run").glob(".*tmp*"))


# -- artifacts: corrupt files and mixed runs --------------------------------------------------
def fake_predictions(data, shift: float = 0.0) -> pd.DataFrame:
    rows = pd.concat([data.validation, data.live])
    return rows[["era", "data_type"]].assign(prediction=0.5 + shift)


@pytest.fixture
def run_of_three(tiny_v5_dir, tmp_path):
    """What 01 and 03 write, through the artifacts functions (no kernel)."""
    from nbutils.data import load_data
    from nbutils.run.fingerprints import begin_step

    run = tmp_path / "run"
    run.mkdir()
    data = load_data(tiny_v5_dir)
    begin_step("01_load_data.ipynb", {"era_step": 1})
    artifacts.save_data_info(
        run, data, tiny_v5_dir, data_source="synthetic", feature_set=None, era_step=1
    )
    begin_step("03_training.ipynb", {"n_estimators": 10})
    artifacts.save_predictions(fake_predictions(data), run)
    return run, data, tiny_v5_dir


def test_a_later_notebook_refuses_an_artifact_made_from_an_older_data_json(run_of_three):
    """03 killed after 01 was rerun: 04 must not score the old model against the new data."""
    from nbutils.run.fingerprints import begin_step, read_manifest

    run, data, dataset = run_of_three
    artifacts.load_predictions(run)  # consistent
    entry = read_manifest(run)["predictions.parquet"]
    assert entry["notebook"] == "03_training.ipynb"
    assert entry["parameters"] == {"n_estimators": 10} and set(entry["upstream"]) == {"data.json"}
    begin_step("01_load_data.ipynb", {"era_step": 2})
    artifacts.save_data_info(
        run, data, dataset, data_source="synthetic", feature_set=None, era_step=2
    )
    with pytest.raises(
        PipelineError,
        match=r"predictions.parquet .* made by 03_training.ipynb "
        r"from another data.json .* Rerun 03_training.ipynb",
    ):
        artifacts.load_predictions(run)
    begin_step("03_training.ipynb", {"n_estimators": 10})
    artifacts.save_predictions(fake_predictions(data, 0.1), run)  # 03 rerun: consistent again
    assert artifacts.load_predictions(run)["prediction"].iloc[0] == pytest.approx(0.6)


def test_a_dataset_rebuilt_under_the_run_is_refused(tiny_v5_dir, tmp_path):
    import shutil

    from nbutils.data import load_data

    dataset = tmp_path / "v5.2"
    shutil.copytree(tiny_v5_dir, dataset)
    run = tmp_path / "run"
    artifacts.save_data_info(
        run, load_data(dataset), dataset, data_source="synthetic", feature_set=None, era_step=1
    )
    artifacts.load_run_data(run)
    live = pd.read_parquet(dataset / "live.parquet")
    live.iloc[::-1].to_parquet(dataset / "live.parquet")  # another seed's file, same path
    with pytest.raises(PipelineError, match=r"dataset .* changed since notebook 01.*live.parquet"):
        artifacts.load_run_data(run)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.json", '{"layout": "v5", "dataset_dir', "data.json is not valid JSON.*01_load_data"),
        ("data.json", "[1, 2]", "data.json holds a list.*01_load_data"),
        ("data.json", '{"layout": "v5"}', "data.json has no dataset_dir.*01_load_data"),
        ("feature_spec.json", '{"group_stats": tr', "feature_spec.json is not valid JSON.*02_"),
        ("feature_spec.json", '{"groups": 5}', "'groups' = 5 of the wrong type.*02_feature"),
        ("feature_spec.json", '{"interactions": [1, 2]}', "not column names.*02_feature"),
        ("feature_spec.json", '{"extra": 1}', "unknown key 'extra'.*02_feature"),
    ],
)
def test_corrupt_json_artifacts_name_the_file_and_the_notebook(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(PipelineError, match=message):
        if name == "data.json":
            artifacts.load_run_data(tmp_path)
        else:
            artifacts.artifact_path(tmp_path, name)


def test_corrupt_predictions_name_the_file_and_the_notebook(run_of_three):
    run, _, _ = run_of_three
    path = run / "predictions.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PipelineError, match="predictions.parquet cannot be read.*03_training"):
        artifacts.load_predictions(run)
    pd.DataFrame({"era": ["1"]}, index=pd.Index(["a"], name="id")).to_parquet(path)
    with pytest.raises(PipelineError, match=r"lacks columns \['data_type', 'prediction'\]"):
        artifacts.load_predictions(run)


def test_a_damaged_fingerprints_file_says_what_to_do(run_of_three):
    run, _, _ = run_of_three
    (run / "fingerprints.json").write_text("{")
    with pytest.raises(PipelineError, match="fingerprints.json is damaged.*delete it"):
        artifacts.load_predictions(run)
