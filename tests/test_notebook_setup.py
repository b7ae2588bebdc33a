"""The setup cell after the parameters cell: the parameters checked, the earlier artifacts made
when missing, one Japanese line each (nbutils.run.notebook_setup)."""

from __future__ import annotations

import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbutils.data import TINY_SIZES
from nbutils.errors import ParameterError, PipelineError
from nbutils.run import steps
from nbutils.run.notebook_setup import changed_parameters, parameters_line, setup_notebook
from nbutils.run.project import notebooks_dir, setup_cell_source


def _parameters_cell(name: str, run_dir) -> str:
    """The notebook's parameters cell, with ``run_dir`` (a test's temporary directory)."""
    nb = json.loads((notebooks_dir() / name).read_text(encoding="utf-8"))
    source = "".join(
        next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))["source"]
    )
    assert 'run_dir = "runs/latest"' in source
    return source.replace('run_dir = "runs/latest"', f"run_dir = {str(run_dir)!r}")


def _run(shell, source: str):
    """Run ``source`` as a notebook cell (kept in IPython's input history ``In``)."""
    return shell.run_cell(source, store_history=True)


@pytest.fixture
def shell(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def test_the_two_first_cells_of_notebook_01_print_one_line_each(shell, capsys, tmp_path):
    name = "01_load_data.ipynb"
    assert _run(shell, _parameters_cell(name, tmp_path / "run")).success
    capsys.readouterr()
    result = _run(shell, setup_cell_source(name))
    assert result.success and result.result is None  # nothing shown but the lines
    assert capsys.readouterr().out.splitlines() == [
        "インストール: nbutils はこの環境にあります",
        f"パラメータ: 10 個を確かめました（既定から変えたもの: run_dir={str(tmp_path / 'run')!r}）",
        "前のノートブックの成果物: いりません（01 はシリーズの最初です）",
    ]


def test_a_typo_in_the_parameters_cell_stops_at_the_setup_cell(shell, tmp_path):
    name = "03_training.ipynb"
    edited = _parameters_cell(name, tmp_path).replace("n_estimators = 300", "n_estimator = 30")
    assert _run(shell, edited).success
    result = _run(shell, setup_cell_source(name))
    assert isinstance(result.error_in_exec, ParameterError)
    assert "'n_estimator' in 03_training.ipynb: did you mean 'n_estimators'" in str(
        result.error_in_exec
    )
    assert list(tmp_path.iterdir()) == []  # stopped before making anything


def test_a_typo_injected_by_papermill_is_refused(shell, tmp_path):
    name = "05_submission.ipynb"
    assert _run(shell, _parameters_cell(name, tmp_path)).success
    assert _run(shell, "# Parameters\nuplod = True\n").success  # papermill's injected cell
    result = _run(shell, setup_cell_source(name))
    assert isinstance(result.error_in_exec, ParameterError)
    assert "'uplod' in 05_submission.ipynb: did you mean 'upload'" in str(result.error_in_exec)
    assert list(tmp_path.iterdir()) == []


def test_present_artifacts_are_reported_and_changed_parameters_named(tmp_path):
    run_dir = tmp_path / "run"
    steps.make_data_step(run_dir, data_dir=tmp_path / "data", synthetic_sizes=TINY_SIZES)
    namespace = {"run_dir": str(run_dir), "interaction_count": "2", "In": []}
    lines: list[str] = []
    setup_notebook("02_feature_engineering.ipynb", namespace, log=lines.append)
    assert namespace["interaction_count"] == 2  # coerced and written back
    assert lines == [
        f"パラメータ: 4 個を確かめました（既定から変えたもの: run_dir={str(run_dir)!r}, "
        "interaction_count=2）",
        "前のノートブックの成果物: run_dir にそろっています（data.json）",
    ]
    assert not (run_dir / "feature_spec.json").exists()  # nothing was made


def test_missing_artifacts_are_made_one_line_each(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    steps.make_data_step(run_dir, data_dir=tmp_path / "data", synthetic_sizes=TINY_SIZES)
    lines: list[str] = []
    setup_notebook("03_training.ipynb", {"run_dir": str(run_dir)}, log=lines.append)
    assert lines[1:] == ["02 の成果物がないので既定の設定で作ります (feature_spec.json)"]
    assert (run_dir / "feature_spec.json").is_file()


def test_changed_parameters_compare_with_the_declared_defaults():
    values = {"run_dir": "runs/latest", "proportion": 0.5, "per_era": False}
    assert changed_parameters("06_neutralization.ipynb", values) == {"proportion": 0.5}
    assert parameters_line("06_neutralization.ipynb", values) == (
        "パラメータ: 3 個を確かめました（既定から変えたもの: proportion=0.5）"
    )


def test_an_unknown_notebook_is_refused():
    with pytest.raises((ParameterError, PipelineError)):
        setup_notebook("07_extra.ipynb", {})
