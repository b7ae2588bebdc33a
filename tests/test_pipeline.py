"""The papermill chain's machinery, on small notebooks made by the tests (the full chain is in
test_chain.py)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from nbutils import artifacts, pipeline
from nbutils.errors import PipelineError


def write_notebook(path: Path, *sources: str, params: str = 'run_dir = "x"\nvalue = 1') -> Path:
    nb = nbformat.v4.new_notebook()
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
        run, {"value": 21, "undeclared": 5}, notebooks_dir=nb_dir, notebooks=("a.ipynb",),
        progress=False, log=lambda *_: None,
    )
    assert (run / "a.txt").read_text() == "42"
    executed = nbformat.read(run / "a.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "undeclared" not in json.dumps(executed.cells[1].source)
    assert result.executed == [run / "a.ipynb"]
    assert (run / "html" / "a.html").is_file()
    assert "a.html" in (run / "index.html").read_text()


def test_failing_notebook_names_notebook_and_cell_and_keeps_partial(nb_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(PipelineError) as info:
        pipeline.run_pipeline(
            run, {}, notebooks_dir=nb_dir, notebooks=("a.ipynb", "b.ipynb", "c.ipynb"),
            progress=False, log=lambda *_: None,
        )
    message = str(info.value)
    assert "b.ipynb" in message and "boom in b" in message
    assert "cell 4 of the executed notebook" in message  # injected parameters cell counts
    assert "raise RuntimeError('boom in b')" in message
    partial = nbformat.read(run / "b.ipynb", as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in partial.cells for o in c.get("outputs", []))
    assert not (run / "c.ipynb").exists(), "the chain stops at the failing notebook"


def test_secrets_from_environment_never_reach_saved_files(nb_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBLICIDXYZ123")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRETKEYXYZ987")
    run = tmp_path / "run"
    pipeline.run_pipeline(run, {}, notebooks_dir=nb_dir, notebooks=("c.ipynb",), progress=False,
                          log=lambda *_: None)
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
        pipeline.run_pipeline(tmp_path / "r", {}, notebooks_dir=tmp_path, notebooks=("zz.ipynb",),
                              log=lambda *_: None)


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


def test_cli_parses_parameters_as_json_or_strings(monkeypatch):
    seen = {}

    def fake_run(run_dir, params, **kwargs):
        seen.update(params, run_dir=run_dir)
        return pipeline.RunResult(run_dir=Path(run_dir))

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run)
    code = pipeline.main(
        ["run", "--run-dir", "r1", "--data-source", "numerai", "-p", "era_step", "4",
         "-p", "seeds", "[0, 1]", "-p", "model_name", "my_model", "-p", "upload", "true"]
    )
    assert code == 0
    assert seen == {"run_dir": "r1", "data_source": "numerai", "era_step": 4, "seeds": [0, 1],
                    "model_name": "my_model", "upload": True}


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


def test_project_root_is_found_from_notebooks_dir(monkeypatch):
    root = pipeline.default_notebooks_dir().parent
    assert artifacts.project_root(root / "notebooks") == root
    assert artifacts.project_root(root) == root
    monkeypatch.chdir(root / "notebooks")
    assert artifacts.resolve_dir("runs/x") == root / "runs" / "x"
