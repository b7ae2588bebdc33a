"""Static checks of the six notebooks: stored without outputs, a parameters cell, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbutils.pipeline import NOTEBOOKS, declared_parameters, default_notebooks_dir
from nbutils.project import setup_cell_source

NB_DIR = default_notebooks_dir()
PATHS = [NB_DIR / name for name in NOTEBOOKS]


def stored_outputs(path: Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


def test_the_six_notebooks_exist_in_order():
    assert sorted(p.name for p in NB_DIR.glob("*.ipynb")) == list(NOTEBOOKS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    assert stored_outputs(path) == [], f"{path.name}: clear the outputs before committing"


def test_stored_outputs_are_detected(tmp_path):
    nb = nbformat.read(PATHS[0], as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
    cell.execution_count = 1
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    assert stored_outputs(dirty) != []


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_with_run_dir(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    # The setup cell (Colab/Kaggle install) may come first; the parameters cell right after it.
    assert tagged[0] is first_code or "google.colab" in first_code.source
    assert "run_dir" in declared_parameters(path)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_parameter_is_a_secret(path):
    for name in declared_parameters(path):
        assert not any(word in name.lower() for word in ("secret", "public_id", "key", "token"))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_prose_is_japanese_and_code_is_english(path):
    nb = nbformat.read(path, as_version=4)
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert any("\u3040" <= ch <= "\u30ff" for ch in prose), "markdown should be in Japanese"
    # The setup cell's failure message is Japanese on purpose: it is shown before nbutils exists
    # (tests/test_setup_cell.py checks that cell against nbutils.project).
    setup = setup_cell_source().rstrip("\n")
    code = " ".join(c.source for c in nb.cells if c.cell_type == "code" and c.source != setup)
    assert not any("\u3040" <= ch <= "\u30ff" for ch in code), "code and comments in English"


def test_first_notebook_declares_data_source_options():
    params = declared_parameters(PATHS[0])
    assert params["data_source"].strip("'\"") == "synthetic"
    assert {"data_dir", "run_dir", "feature_set", "era_step"} <= set(params)


def test_ruff_lints_the_notebooks():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "json", *map(str, PATHS)],
        capture_output=True,
        text=True,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], [f"{f['filename']}: {f['code']} {f['message']}" for f in findings]
