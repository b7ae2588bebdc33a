"""The setup cell, the install source and the badges: one constant, and every copy agrees with it.

The cell itself is executed here in-process with its environment faked (no network: pip is replaced
by a recorder); tests/test_packaging.py runs it for real in a bare kernel with a wheel.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from nbutils.errors import PipelineError
from nbutils.run import project

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


# -- one constant, every copy agrees -------------------------------------------------------------
@pytest.mark.parametrize("name", project.NOTEBOOK_NAMES)
def test_notebook_badges_and_setup_cell_agree_with_the_constant(name):
    assert project.notebook_problems(NOTEBOOKS / name) == []
    code = [c for c in _cells(name) if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"]["tags"]  # the parameters cell, then the setup cell
    setup = _source(code[1])
    assert setup == project.setup_cell_source(name).rstrip("\n")
    assert setup.endswith(f'setup_notebook("{name}", globals())')
    assert code[1]["metadata"].get("cellView") == "form"  # Colab shows it as a titled form
    # exactly one place in the notebook sets the install source, and it is the constant
    assigned = re.findall(r'^INSTALL_SOURCE = "([^"]*)"$', setup, flags=re.MULTILINE)
    assert assigned == [project.INSTALL_SOURCE]
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert text.count("INSTALL_SOURCE = ") == 1
    header = _source(next(c for c in _cells(name) if c["cell_type"] == "markdown"))
    assert project.colab_url(name) in header and project.kaggle_url(name) in header


def test_install_source_and_badges_point_at_the_same_repository():
    repo_url = f"https://github.com/{project.REPOSITORY}"
    assert f"nbutils @ git+{repo_url}" == project.INSTALL_SOURCE
    for name in project.NOTEBOOK_NAMES:
        assert f"github/{project.REPOSITORY}/blob/{project.BRANCH}/notebooks/{name}" in (
            project.colab_url(name)
        )
        assert project.kaggle_url(name).endswith(
            f"{repo_url}/blob/{project.BRANCH}/notebooks/{name}"
        )


def test_readme_has_both_badges_of_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in project.NOTEBOOK_NAMES:
        assert project.badge_line(name) in readme, name


def test_a_drifted_copy_is_found_and_sync_repairs_it(tmp_path):
    path = tmp_path / "03_training.ipynb"
    shutil.copyfile(NOTEBOOKS / "03_training.ipynb", path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("github.com/nbutils/nbutils", "github.com/someone/fork"), "utf-8")
    problems = project.notebook_problems(path)
    assert len(problems) == 2 and "markdown" in problems[0] and "code cell" in problems[1]
    assert project.sync_notebook(path) is True
    assert project.notebook_problems(path) == []
    assert path.read_text(encoding="utf-8") == text  # sync reproduces the committed notebook
    assert project.sync_notebook(path) is False


def test_install_source_with_a_quote_is_refused():
    with pytest.raises(PipelineError, match="quotes"):
        project.install_cell_source('x" ; import os')
    with pytest.raises(PipelineError, match="quotes"):
        project.setup_cell_source("01_load_data.ipynb", 'x" ; import os')


def test_a_setup_cell_for_an_unknown_notebook_is_refused():
    with pytest.raises(PipelineError, match="not one of the nine notebooks"):
        project.setup_cell_source("07_extra.ipynb")


def test_every_setup_cell_shares_one_install_part():
    install = project.install_cell_source()
    for name in project.NOTEBOOK_NAMES:
        cell = project.setup_cell_source(name)
        assert cell.startswith(install) and cell.count("install_nbutils(INSTALL_SOURCE)") == 1


def test_a_setup_cell_before_the_parameters_cell_is_found_and_sync_refuses(tmp_path):
    path = tmp_path / "02_feature_engineering.ipynb"
    nb = json.loads((NOTEBOOKS / path.name).read_text(encoding="utf-8"))
    code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    nb["cells"][code[0]], nb["cells"][code[1]] = nb["cells"][code[1]], nb["cells"][code[0]]
    path.write_text(json.dumps(nb, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    problems = project.notebook_problems(path)
    assert any("first code cell is not the cell tagged 'parameters'" in p for p in problems)
    assert any("after the parameters cell" in p for p in problems)
    with pytest.raises(PipelineError, match="must be the parameters cell"):
        project.sync_notebook(path)


# -- the cell's behaviour ------------------------------------------------------------------------
class _Pip:
    """Records pip calls; answers with ``returncode`` and ``stderr``."""

    def __init__(self, returncode=0, stderr="", stdout=""):
        self.calls: list[list[str]] = []
        self.returncode, self.stderr, self.stdout = returncode, stderr, stdout

    def __call__(self, args, **kwargs):
        self.calls.append(list(args))
        return subprocess.CompletedProcess(args, self.returncode, self.stdout, self.stderr)


def _run_cell(monkeypatch, *, kaggle: bool, importable: bool, pip: _Pip, source: str | None = None):
    if kaggle:
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    else:
        monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    if source is None:
        monkeypatch.delenv("NBUTILS_INSTALL_SOURCE", raising=False)
    else:
        monkeypatch.setenv("NBUTILS_INSTALL_SOURCE", source)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: real_find_spec(name, *a) if importable or name != "nbutils" else None,
    )
    monkeypatch.setattr(subprocess, "run", pip)
    exec(compile(project.install_cell_source(), "setup-cell", "exec"), {})


def test_outside_colab_and_kaggle_the_cell_installs_nothing(monkeypatch, capsys):
    pip = _Pip()
    _run_cell(monkeypatch, kaggle=False, importable=False, pip=pip)
    assert pip.calls == []
    assert capsys.readouterr().out == (
        "インストール: nbutils がありません（make setup をしてください）\n"
    )


def test_in_kaggle_with_nbutils_importable_the_cell_installs_nothing(monkeypatch, capsys):
    pip = _Pip()
    _run_cell(monkeypatch, kaggle=True, importable=True, pip=pip)
    assert pip.calls == []
    assert capsys.readouterr().out == "インストール: nbutils はこの環境にあります\n"


def test_in_kaggle_the_cell_installs_the_constant_or_the_override(monkeypatch, capsys):
    pip = _Pip()
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip)
    assert pip.calls[-1][-1] == project.INSTALL_SOURCE
    wheel = "/kaggle/input/nbutils/nbutils-0.1.0-py3-none-any.whl"
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip, source=wheel)
    assert pip.calls[-1][-2:] == ["install", wheel]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"インストール: nbutils をインストールしました（{project.INSTALL_SOURCE}）",
        f"インストール: nbutils をインストールしました（{wheel}）",
    ]  # one line per install


def _kaggle_dataset(root: Path) -> Path:
    """A folder like ``make kaggle-dataset``'s, as Kaggle mounts it: root/<dataset>/."""
    folder = root / "nbutils-offline"
    folder.mkdir(parents=True)
    (folder / "nbutils-0.1.0-py3-none-any.whl").write_bytes(b"")
    (folder / "numerapi-2.23.0-py3-none-any.whl").write_bytes(b"")
    return folder


def test_in_kaggle_the_dataset_folder_is_installed_from_with_no_index(
    monkeypatch, tmp_path, capsys
):
    folder = _kaggle_dataset(tmp_path / "input")
    monkeypatch.setenv("NBUTILS_KAGGLE_INPUT", str(tmp_path / "input"))
    pip = _Pip()
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip)
    assert pip.calls[-1][-5:] == ["install", "--no-index", "--find-links", str(folder), "nbutils"]
    assert capsys.readouterr().out == f"インストール: nbutils をインストールしました（{folder}）\n"
    # one level deeper (a dataset whose files sit in a subfolder) is found too
    deeper = _kaggle_dataset(tmp_path / "input2" / "mine")
    monkeypatch.setenv("NBUTILS_KAGGLE_INPUT", str(tmp_path / "input2"))
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip)
    assert pip.calls[-1][-3:] == ["--find-links", str(deeper), "nbutils"]


def test_the_override_wins_over_the_dataset_folder_and_colab_ignores_it(monkeypatch, tmp_path):
    _kaggle_dataset(tmp_path / "input")
    monkeypatch.setenv("NBUTILS_KAGGLE_INPUT", str(tmp_path / "input"))
    pip = _Pip()
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip, source="nbutils==0.1.0")
    assert pip.calls[-1][-2:] == ["install", "nbutils==0.1.0"]
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    _run_cell(monkeypatch, kaggle=False, importable=False, pip=pip)
    assert pip.calls[-1][-2:] == ["install", project.INSTALL_SOURCE]
    assert "--no-index" not in pip.calls[-1]


def test_the_cell_says_what_pip_installed_and_when_to_restart(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "not_loaded_pkg", raising=False)
    pip = _Pip(stdout="Collecting x\nSuccessfully installed nbutils-0.1.0 not-loaded-pkg-2.0\n")
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip)
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["Successfully installed nbutils-0.1.0 not-loaded-pkg-2.0"]
    # nothing this kernel had imported was replaced: no restart asked
    monkeypatch.setitem(sys.modules, "loaded_pkg", types.ModuleType("loaded_pkg"))
    pip.stdout = "Successfully installed loaded-pkg-2.2.3 nbutils-0.1.0\n"
    _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip)
    assert "再起動" in capsys.readouterr().out.splitlines()[-1]  # loaded_pkg is imported here


def test_a_failed_install_stops_with_the_short_message_and_no_traceback(monkeypatch):
    pip = _Pip(1, "Collecting x\nERROR: Could not find a version that satisfies the requirement")
    with pytest.raises(Exception) as info:
        _run_cell(monkeypatch, kaggle=True, importable=False, pip=pip, source="nbutils==99")
    err = info.value
    assert type(err).__name__ == "SetupFailed"
    assert not isinstance(err, subprocess.CalledProcessError)
    shown = err._render_traceback_()  # what IPython shows instead of a traceback
    text = "\n".join(shown)
    assert "nbutils==99" in text and "Could not find a version" in text
    assert "Internet" in text and "make kaggle-dataset" in text and "Colab" in text
    assert len(shown) <= 8 and "Traceback" not in text


def test_ipython_shows_the_failure_without_a_traceback(monkeypatch, capsys):
    """IPython (the kernel's shell) prints only the message of the setup cell's error."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("NBUTILS_INSTALL_SOURCE", "nbutils==99")
    monkeypatch.setattr(subprocess, "run", _Pip(1, "ERROR: No matching distribution"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "nbutils" else real_find_spec(n, *a)
    )
    shell = InteractiveShell.instance()
    try:
        result = shell.run_cell(project.setup_cell_source("03_training.ipynb"))
    finally:
        InteractiveShell.clear_instance()
    out = capsys.readouterr()
    shown = out.out + out.err
    assert not result.success
    assert "インストールできませんでした" in shown and "Internet" in shown
    assert "Traceback" not in shown and "CalledProcessError" not in shown
