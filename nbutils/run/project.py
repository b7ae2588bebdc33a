"""Where nbutils comes from and where its notebooks are: the one install source, the badges, the
setup cell.

- :data:`INSTALL_SOURCE` is the ONE place the project's install source is written. The setup cell
  of each notebook carries a literal copy (nbutils is not importable before it is installed), the
  "Open in Colab" / "Open in Kaggle" badges of the notebooks and the README are built from
  :data:`REPOSITORY` and :data:`BRANCH`, and ``tests/test_setup_cell.py`` checks that all of them
  agree with this module. :func:`sync_notebooks` rewrites the badge line and the setup cell of each
  notebook from here; run it after changing the constants or the cell's template::

      python -c "from nbutils.run.project import sync_notebooks; sync_notebooks('notebooks')"

- The notebooks ship inside the package as ``nbutils.notebooks`` (pyproject.toml maps it to the
  clone's ``notebooks/``), so :func:`notebooks_dir` finds them in a clone, an editable install and
  a wheel alike.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
from pathlib import Path

from nbutils.errors import PipelineError
from nbutils.util import make_dir, write_error

#: GitHub ``owner/name`` of the project (a placeholder until the project is published).
REPOSITORY = "nbutils/nbutils"
#: the branch the badges open
BRANCH = "main"
#: the pip requirement the notebooks' setup cell installs (override: NBUTILS_INSTALL_SOURCE)
INSTALL_SOURCE = f"nbutils @ git+https://github.com/{REPOSITORY}"
#: environment variable that replaces INSTALL_SOURCE with any pip requirement
INSTALL_SOURCE_ENV = "NBUTILS_INSTALL_SOURCE"

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"

NOTEBOOK_NAMES: tuple[str, ...] = (
    "01_load_data.ipynb",
    "02_feature_engineering.ipynb",
    "03_training.ipynb",
    "04_evaluation.ipynb",
    "05_submission.ipynb",
    "06_neutralization.ipynb",
    "07_benchmark_models.ipynb",
    "08_target_ensemble.ipynb",
    "09_validation.ipynb",
)


# -- where the notebooks are ---------------------------------------------------------------------
def notebooks_dir() -> Path:
    """The directory holding the nine notebooks: the clone's ``notebooks/`` in a clone or editable
    install, ``site-packages/nbutils/notebooks`` in a wheel install."""
    return Path(str(importlib.resources.files("nbutils.notebooks")))


def clone_root() -> Path | None:
    """The root of the clone nbutils runs from (editable install), or ``None`` after a wheel
    install (then relative paths mean the working directory)."""
    root = notebooks_dir().parent
    if (root / "pyproject.toml").is_file() and (root / "nbutils").is_dir():
        return root
    return None


def copy_notebooks(dest: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Copy the nine notebooks into ``dest`` (created) for editing; return the copied paths.

    Refuses to overwrite an existing notebook unless ``overwrite``, and refuses to copy the
    notebooks onto themselves.
    """
    source = notebooks_dir().resolve()
    target = Path(dest).expanduser().resolve()
    if target == source:
        raise PipelineError(f"{target} is where the notebooks already are: choose another DIR")
    existing = [n for n in NOTEBOOK_NAMES if (target / n).exists()]
    if existing and not overwrite:
        raise PipelineError(
            f"{target} already has {', '.join(existing)}: choose an empty directory or pass "
            "--overwrite to replace them"
        )
    make_dir(target)
    copied = []
    for name in NOTEBOOK_NAMES:
        try:
            shutil.copyfile(source / name, target / name)
        except OSError as err:
            raise write_error(target / name, err) from None
        copied.append(target / name)
    return copied


# -- badges --------------------------------------------------------------------------------------
def github_notebook_path(name: str) -> str:
    """``owner/name/blob/branch/notebooks/<name>``: the notebook on GitHub."""
    return f"{REPOSITORY}/blob/{BRANCH}/notebooks/{name}"


def colab_url(name: str) -> str:
    """Colab's "open from GitHub" address of notebook ``name``."""
    return f"https://colab.research.google.com/github/{github_notebook_path(name)}"


def kaggle_url(name: str) -> str:
    """Kaggle's "new notebook from a GitHub file" address of notebook ``name``."""
    return f"https://kaggle.com/kernels/welcome?src=https://github.com/{github_notebook_path(name)}"


def badge_line(name: str) -> str:
    """The Markdown line with the "Open in Colab" and "Open in Kaggle" badges of ``name``."""
    return (
        f"[![Open In Colab]({COLAB_BADGE})]({colab_url(name)}) "
        f"[![Open In Kaggle]({KAGGLE_BADGE})]({kaggle_url(name)})"
    )


# -- the setup cell ------------------------------------------------------------------------------
#: The install part of the setup cell, delimited so that a change of the install logic touches
#: only this string: a literal copy of it opens every notebook's setup cell (nbutils is not
#: importable before it is installed). It defines and calls ``install_nbutils``; outside Colab and
#: Kaggle, or where nbutils already imports, it installs nothing. On Kaggle, a folder made by
#: ``make kaggle-dataset`` and added as a dataset (found under /kaggle/input, or
#: NBUTILS_KAGGLE_INPUT) is installed from with no package index. A failed pip stops with a short
#: Japanese message and no traceback (IPython shows ``_render_traceback_``).
_INSTALL_CODE = """\
# @title ここは実行するだけ（インストール、パラメータの確認、前のノートブックの成果物）
# any pip requirement; the environment variable NBUTILS_INSTALL_SOURCE overrides it
INSTALL_SOURCE = "{install_source}"


def install_nbutils(default_source):
    \"\"\"In Colab or Kaggle, pip-install nbutils unless it already imports.\"\"\"
    import glob
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("nbutils") is not None:
        return print("インストール: nbutils はこの環境にあります")
    in_kaggle = "KAGGLE_KERNEL_RUN_TYPE" in os.environ
    if "google.colab" not in sys.modules and not in_kaggle:
        return print("インストール: nbutils がありません（make setup をしてください）")
    override = os.environ.get("NBUTILS_INSTALL_SOURCE", "").strip()
    source = override or default_source
    args = [source]
    # Kaggle with Internet off: the folder of `make kaggle-dataset` added as a dataset
    # (nbutils and the wheels of its dependencies) is installed from, with no package index.
    kaggle_input = os.environ.get("NBUTILS_KAGGLE_INPUT", "/kaggle/input")
    wheels = glob.glob(f"{{kaggle_input}}/*/nbutils-*.whl") + glob.glob(
        f"{{kaggle_input}}/*/*/nbutils-*.whl"
    )
    if in_kaggle and wheels and not override:
        source = os.path.dirname(sorted(wheels)[-1])
        args = ["--no-index", "--find-links", source, "nbutils"]
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", *args], capture_output=True, text=True
    )
    if pip.returncode != 0:

        class SetupFailed(Exception):
            def _render_traceback_(self):
                return str(self).splitlines()

        last = (pip.stderr.strip().splitlines() or ["(pip printed nothing)"])[-1]
        raise SetupFailed(
            f"nbutils をインストールできませんでした（pip install {{' '.join(args)}}）。\\n"
            f"pip: {{last}}\\n"
            "直し方:\\n"
            "- Kaggle: 右のサイドバーの Session options で Internet をオンにして、もう一度実行します。\\n"
            "- Kaggle でインターネットなしで: make kaggle-dataset で作ったフォルダ "
            "(dist/kaggle-dataset) をデータセットとして追加すると、このセルがそこから入れます。\\n"
            "- Colab: ネットワークを確かめて、ランタイムを再起動してからもう一度実行します。"
        )
    importlib.invalidate_caches()
    print(f"インストール: nbutils をインストールしました（{{source}}）")
    done = [ln for ln in pip.stdout.splitlines() if ln.startswith("Successfully installed")]
    if done:
        print(done[-1])
    # a package this kernel has already imported keeps its old version until a restart
    names = [w.rsplit("-", 1)[0].replace("-", "_").lower() for w in " ".join(done).split()[2:]]
    if any(name in sys.modules for name in names if name != "nbutils"):
        print("読み込み済みのパッケージを入れ替えました: ランタイムを再起動してください")


install_nbutils(INSTALL_SOURCE)
"""

#: The rest of the setup cell: check the parameters and make the missing earlier artifacts
#: (:func:`nbutils.run.notebook_setup.setup_notebook`), one line each.
_SETUP_CALL = """
from nbutils.run.notebook_setup import setup_notebook

setup_notebook("{notebook}", globals())
"""


def install_cell_source(install_source: str = INSTALL_SOURCE) -> str:
    """The install part of every setup cell (the same in all nine notebooks)."""
    if '"' in install_source or "\\" in install_source:
        raise PipelineError(
            f"install source {install_source!r} must not contain quotes or backslashes"
        )
    return _INSTALL_CODE.format(install_source=install_source)


def setup_cell_source(notebook: str, install_source: str = INSTALL_SOURCE) -> str:
    """The source of notebook ``notebook``'s setup cell (the code cell right after its
    parameters cell): the install part, then ``setup_notebook``."""
    name = Path(notebook).name
    if name not in NOTEBOOK_NAMES:
        raise PipelineError(f"{name!r} is not one of the nine notebooks {NOTEBOOK_NAMES}")
    return install_cell_source(install_source) + _SETUP_CALL.format(notebook=name)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _is_parameters(cell: dict) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", [])


def notebook_problems(path: str | os.PathLike) -> list[str]:
    """What in notebook ``path`` disagrees with this module (badge line, the order of the first
    code cells, the setup cell); [] if none."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    markdown = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not markdown or badge_line(path.name) not in _source(markdown[0]).splitlines():
        problems.append(
            f"{path.name}: the first markdown cell lacks the line {badge_line(path.name)!r}"
        )
    if not code or not _is_parameters(code[0]):
        problems.append(f"{path.name}: the first code cell is not the cell tagged 'parameters'")
    if len(code) < 2 or _source(code[1]) != setup_cell_source(path.name).rstrip("\n"):
        problems.append(
            f"{path.name}: the code cell after the parameters cell is not "
            "nbutils.run.project.setup_cell_source()"
        )
    return problems


def sync_notebook(path: str | os.PathLike) -> bool:
    """Rewrite the badge line (second line of the first markdown cell) and the setup cell (the
    code cell right after the parameters cell, which must be the first code cell) of notebook
    ``path`` from this module. Returns whether the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    lines = [ln for ln in _source(first_md).splitlines() if COLAB_BADGE not in ln]
    title = lines[0] if lines else ""
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    md = "\n".join([title, "", badge_line(path.name), "", *rest])
    first_md["source"] = _as_lines(md)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code or not _is_parameters(code[0]) or len(code) < 2:
        raise PipelineError(
            f"{path.name}: the first code cell must be the parameters cell, the second the "
            "setup cell"
        )
    setup = code[1]
    setup["source"] = _as_lines(setup_cell_source(path.name).rstrip("\n"))
    setup["metadata"] = {**setup.get("metadata", {}), "cellView": "form"}  # Colab: a form
    new = json.dumps(nb, ensure_ascii=False, indent=1) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def sync_notebooks(directory: str | os.PathLike | None = None) -> list[Path]:
    """:func:`sync_notebook` on each of the nine notebooks; returns those that changed."""
    directory = Path(directory) if directory is not None else notebooks_dir()
    return [directory / n for n in NOTEBOOK_NAMES if sync_notebook(directory / n)]


def _as_lines(text: str) -> list[str]:
    """Notebook JSON stores a cell's source as lines that keep their newline."""
    lines = text.splitlines(keepends=True)
    return lines
