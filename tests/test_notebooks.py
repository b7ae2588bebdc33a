"""Static checks of the nine notebooks: stored without outputs, a parameters cell, no secrets."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest

from nbutils.run.pipeline import NOTEBOOKS, declared_parameters, default_notebooks_dir
from nbutils.run.project import setup_cell_source

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
def test_notebook_names_a_python_kernel(path):
    """papermill 2.5 (the minimum) reads the kernelspec of a notebook with a parameters cell even
    when the caller names the kernel, and fails with ``AttributeError: kernelspec`` without one."""
    spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") and spec.get("language") == "python", f"{path.name}: {spec}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_has_a_parameters_cell_with_run_dir(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    code = [c for c in nb.cells if c.cell_type == "code"]
    # The parameters cell is the first code cell (it needs nothing installed), the setup cell the
    # second: it checks the parameters, so it must run right after them (or papermill's cell).
    assert tagged[0] is code[0]
    assert code[1].source == setup_cell_source(path.name).rstrip("\n")
    assert "run_dir" in declared_parameters(path)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_the_first_screen_is_the_lesson(path):
    """Title, badges, three to six lines on what the notebook teaches, one line on the setup;
    then the parameters and the setup cell, and nothing else before the lesson."""
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    lines = [ln for ln in nb.cells[0].source.splitlines() if ln.strip()]
    assert lines[0].startswith(f"# {path.name[:2]} ") and "Open In Colab" in lines[1]
    assert lines[-1].startswith("**セットアップ**")
    assert 3 <= len(lines[2:-1]) <= 6, lines[2:-1]
    assert [c.cell_type for c in nb.cells[1:3]] == ["code", "code"]
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    assert len(nb.cells[1].source.splitlines()) <= 12  # short


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_parameter_is_a_secret(path):
    for name in declared_parameters(path):
        assert not any(word in name.lower() for word in ("secret", "public_id", "key", "token"))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_prose_is_japanese_and_code_is_english(path):
    nb = nbformat.read(path, as_version=4)
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert any(_is_kana(ch) for ch in prose), "markdown should be in Japanese"
    # The setup cell is Japanese on purpose (its title and messages are shown before nbutils
    # exists; tests/test_setup_cell.py checks it against nbutils.run.project). Elsewhere, what a
    # cell prints for the learner may be Japanese (string literals); names and comments are not.
    setup = setup_cell_source(path.name).rstrip("\n")
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source == setup:
            continue
        outside_strings = _code_outside_strings(cell.source)
        assert not any(_is_kana(ch) for ch in outside_strings), (
            f"code and comments in English: {cell.source[:200]}"
        )


def _is_kana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff"


# an f-string is one STRING token before Python 3.12, FSTRING_START/MIDDLE/END tokens since
_STRING_TOKENS = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _code_outside_strings(source: str) -> str:
    """The cell's names, operators and comments: everything but its string literals."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    kept = []
    for tok in tokens:
        if tok.type in _STRING_TOKENS:
            continue
        kept.append(tok.string)
    return " ".join(kept)


def test_japanese_in_a_comment_is_found_and_in_a_string_allowed():
    assert "テスト" in _code_outside_strings("x = 1  # テスト")
    assert "テスト" not in _code_outside_strings('print("テスト", f"{x} テスト")')
    assert "名前" in _code_outside_strings("名前 = 1")


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


def _code_after(path: Path, tag: str) -> str:
    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", []))
    return nb.cells[i + 1].source


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_the_cell_after_the_parameters_checks_them_and_makes_missing_inputs(path):
    source = _code_after(path, "parameters")
    assert source.rstrip().endswith(f'setup_notebook("{path.name}", globals())')
    nb = nbformat.read(path, as_version=4)
    text = " ".join(c.source for c in nb.cells if c.cell_type == "code")
    # no second check or upstream call elsewhere in the notebook
    assert "check_notebook_parameters" not in text and "ensure_upstream" not in text


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_notebook_asks_to_share_run_dir_through_google_drive(path):
    nb = nbformat.read(path, as_version=4)
    text = " ".join(c.source for c in nb.cells)
    assert "drive.mount" not in text and "Google Drive" not in text
    setup_md = next(c for c in nb.cells if "**セットアップ**" in c.source)
    assert "1 本だけで開いて実行できます" in setup_md.source


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_notebook_01_checks_memory_before_loading():
    cells = _code_cells(PATHS[0])
    plan = next(i for i, s in enumerate(cells) if "check_memory(dataset_dir" in s)
    dataset = next(i for i, s in enumerate(cells) if "dataset_dir = make_synthetic_dataset" in s)
    load = next(i for i, s in enumerate(cells) if "load_data(dataset_dir" in s)
    assert dataset < plan < load


def _top_level_names(source: str, kind: type) -> set[str]:
    """Names a cell binds (``ast.Store``), reads (``ast.Load``) or deletes (``ast.Del``) in its
    own scope: a function's body (its local frames) is not looked into."""
    found: set[str] = set()
    todo: list[ast.AST] = [ast.parse(source)]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, kind):
            found.add(node.id)
        if not isinstance(node, (ast.FunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


#: notebook -> its tutorial check cells, the cell that follows with the notebook's peak, the
#: check's large objects, and the small values it may keep
CHECKS = {
    "02": (
        ("t02-02", "t02-04", "t02-06"),
        "quick = pd.DataFrame(",
        {"guide_stats", "lib_stats", "guide_val", "tournament", "wrong"},
        {"poly"},
    ),
    "03": (
        ("t03-02", "t03-04"),
        "model = train_lgbm(train_df",
        {"train", "dtrain", "valid_check", "guide_model", "lib_model"},
        {"_", "check_rounds", "check_rows", "best_config", "check_params", "zeros", "largest"}
        | {"feature_list"},
    ),
}


@pytest.mark.parametrize("number", sorted(CHECKS))
def test_the_tutorial_checks_free_their_frames_before_the_peak_cell(number):
    """02's and 03's tutorial checks delete their frames (and 03's its models) and hand the
    memory back before the notebook's heaviest cell (02's group-statistics comparison, 03's
    training): kept, they sat 200-500 MiB above the memory plan at Numerai's shape (issue 20)."""
    ids, marker, large, small = CHECKS[number]
    path = next(p for p in PATHS if p.name.startswith(number))
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    peak = next(i for i, c in enumerate(cells) if marker in c.source)
    checks = [i for i, c in enumerate(cells) if c.id in ids]
    assert len(checks) == len(ids) and max(checks) < peak
    check = "\n".join(cells[i].source for i in checks)
    later = set().union(*(_top_level_names(c.source, ast.Load) for c in cells[max(checks) + 1 :]))
    held = _top_level_names(check, ast.Store) - later - small
    assert large <= held
    assert held - _top_level_names(check, ast.Del) == set()
    between = "\n".join(c.source for c in cells[max(checks) : peak + 1])
    assert "release_memory()" in between.split(marker)[0]


def test_notebook_05_has_the_daily_round_and_the_notebook_secrets():
    nb = nbformat.read(PATHS[4], as_version=4)
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "毎ラウンドの提出" in prose and "python -m nbutils submit" in prose
    for word in ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY", "Add-ons > Secrets", "鍵のアイコン"):
        assert word in prose
    code = "\n".join(_code_cells(PATHS[4]))
    assert "import pandas as pd" in code and "read_log(run_path)" in code
    assert "-p upload True" in code and "upload = True" in code


def test_notebook_06_saves_the_settings_before_the_neutralized_submission():
    cells = _code_cells(PATHS[5])
    chosen = next(i for i, s in enumerate(cells) if "neutralizers = [" in s)
    saved = next(i for i, s in enumerate(cells) if "save_settings(run_path" in s)
    written = next(i for i, s in enumerate(cells) if "neutralized_submission.csv" in s)
    assert chosen < saved < written
    assert "rank_per_era=True" in cells[saved] and "rank_per_era=True" in cells[written]
