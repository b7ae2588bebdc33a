"""nbutils outside the clone: the wheel, a fresh virtual environment, a bare Kaggle-like kernel.

The quick tests use the editable install. The slow ones build the wheel once, install it into a
fresh venv once (dependencies from the package index and pip's cache), and make one bare venv with
only papermill and ipykernel; every command runs from an empty directory with a clean
environment (no PYTHONPATH, no keys), so nothing of the clone can leak in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nbutils.data import TINY_SIZES
from nbutils.errors import PipelineError
from nbutils.run.pipeline import main
from nbutils.run.project import NOTEBOOK_NAMES, copy_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parent.parent
PIP_QUIET = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]


# -- quick: the editable install -----------------------------------------------------------------
def test_packaged_notebooks_are_the_clones_notebooks():
    assert notebooks_dir().resolve() == (ROOT / "notebooks").resolve()
    import importlib.resources

    names = {p.name for p in importlib.resources.files("nbutils.notebooks").iterdir()}
    assert set(NOTEBOOK_NAMES) <= names


def test_notebooks_command_copies_them_all_and_refuses_to_overwrite(tmp_path, capsys):
    dest = tmp_path / "mine"
    assert main(["notebooks", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted(NOTEBOOK_NAMES)
    assert (dest / "03_training.ipynb").read_bytes() == (
        ROOT / "notebooks/03_training.ipynb"
    ).read_bytes()
    assert f"copied {len(NOTEBOOK_NAMES)} notebooks" in capsys.readouterr().out
    (dest / "01_load_data.ipynb").write_text("{}", encoding="utf-8")
    assert main(["notebooks", str(dest)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (dest / "01_load_data.ipynb").read_text(encoding="utf-8") == "{}"
    assert main(["notebooks", str(dest), "--overwrite"]) == 0
    assert (dest / "01_load_data.ipynb").read_bytes() == (
        ROOT / "notebooks/01_load_data.ipynb"
    ).read_bytes()


def test_notebooks_are_never_copied_onto_themselves():
    with pytest.raises(PipelineError, match="already are"):
        copy_notebooks(notebooks_dir(), overwrite=True)


# -- slow: the wheel in fresh environments ------------------------------------------------------
def _clean_env(**extra: str) -> dict[str, str]:
    drop = (
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "NUMERAI_PUBLIC_ID",
        "NUMERAI_SECRET_KEY",
        "KAGGLE_KERNEL_RUN_TYPE",
        "NBUTILS_INSTALL_SOURCE",
        "JUPYTER_PATH",
    )
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _run(args, cwd, env=None, timeout=900, check=True):
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", path], cwd=path.parent)
    return path / "bin" / "python"


def _kernel_dir(python: Path, root: Path, name: str) -> Path:
    """A JUPYTER_PATH directory whose kernel ``name`` runs ``python`` (and nothing else)."""
    spec = root / "kernels" / name
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"}), encoding="utf-8"
    )
    return root


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT], cwd=out)
    (path,) = out.glob("nbutils-*.whl")
    return path


@pytest.fixture(scope="session")
def fresh(tmp_path_factory, wheel) -> Path:
    """A fresh venv with the wheel installed (and its dependencies); its python."""
    root = tmp_path_factory.mktemp("fresh")
    python = _venv(root / "venv")
    _run([python, *PIP_QUIET, wheel], cwd=root)
    return python


@pytest.fixture(scope="session")
def bare(tmp_path_factory) -> Path:
    """A venv with only papermill and ipykernel (a bare Kaggle-like kernel); its python."""
    root = tmp_path_factory.mktemp("bare")
    python = _venv(root / "venv")
    _run([python, *PIP_QUIET, "papermill", "ipykernel"], cwd=root)
    return python


@pytest.mark.slow
def test_the_wheel_holds_the_nine_notebooks(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in NOTEBOOK_NAMES:
        assert f"nbutils/notebooks/{name}" in names


@pytest.mark.slow
def test_chain_runs_from_an_empty_directory_after_pip_install(fresh, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    done = _run(
        [
            fresh,
            "-m",
            "nbutils",
            "run",
            "--no-progress",
            "--no-html",
            "-p",
            "synthetic_sizes",
            json.dumps(TINY_SIZES),
            "-p",
            "n_estimators",
            "20",
        ],
        cwd=work,
    )
    assert "Validation Sharpe" in done.stdout
    assert (work / "runs" / "latest" / "submission.csv").is_file()
    assert (work / "data" / "synthetic").is_dir()  # relative data_dir: the working directory
    site = Path(
        _run([fresh, "-c", "import nbutils; print(nbutils.__file__)"], cwd=work).stdout.strip()
    )
    # nothing is written into the installed package (nbutils/data is its data subpackage)
    assert not (site.parent / "data" / "synthetic").exists()
    assert not (site.parent.parent / "data").exists()
    copied = _run([fresh, "-m", "nbutils", "notebooks", "nbs"], cwd=work)
    assert f"copied {len(NOTEBOOK_NAMES)} notebooks" in copied.stdout
    assert sorted(p.name for p in (work / "nbs").iterdir()) == sorted(NOTEBOOK_NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES[1:])
def test_each_later_notebook_runs_alone_in_an_empty_directory(fresh, tmp_path, name):
    work = tmp_path / "alone"
    work.mkdir()
    _run([fresh, "-m", "nbutils", "notebooks", tmp_path / "nbs"], cwd=work)
    jupyter = _kernel_dir(fresh, tmp_path / "jupyter", "fresh")
    done = _run(
        [
            fresh,
            "-m",
            "papermill",
            tmp_path / "nbs" / name,
            work / name,
            "-k",
            "fresh",
            "--cwd",
            work,
            "-p",
            "run_dir",
            work / "run",
            "--no-progress-bar",
        ],
        cwd=work,
        env=_clean_env(JUPYTER_PATH=str(jupyter)),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "の成果物がないので既定の設定で作ります" in (work / name).read_text(encoding="utf-8")


def _run_01_in_kernel(python, tmp_path, kernel: str, env):
    """Notebook 01 at the tiny sizes, run by ``python``'s papermill in a kernel named ``kernel``
    (its spec under ``tmp_path/jupyter``, added to ``env``'s JUPYTER_PATH) in ``tmp_path/kaggle``;
    the finished process and the executed notebook's path."""
    work = tmp_path / "kaggle"
    work.mkdir()
    jupyter = _kernel_dir(python, tmp_path / "jupyter", kernel)
    sizes = ", ".join(f"{k}: {v}" for k, v in TINY_SIZES.items())
    out = work / "01_load_data.ipynb"
    done = _run(
        [
            python,
            "-m",
            "papermill",
            ROOT / "notebooks" / "01_load_data.ipynb",
            out,
            "-k",
            kernel,
            "--cwd",
            work,
            "-y",
            f"synthetic_sizes: {{{sizes}}}",
            "--no-progress-bar",
        ],
        cwd=work,
        env={**env, "JUPYTER_PATH": str(jupyter)},
        check=False,
    )
    return done, out


def _run_in_bare_kernel(bare, tmp_path, source: str):
    env = _clean_env(
        KAGGLE_KERNEL_RUN_TYPE="Batch",
        NBUTILS_INSTALL_SOURCE=source,
        PIP_RETRIES="0",
        PIP_DEFAULT_TIMEOUT="10",
    )
    return _run_01_in_kernel(bare, tmp_path, "bare", env)


@pytest.mark.slow
def test_an_unreachable_install_source_stops_with_the_short_message(bare, tmp_path):
    _run([bare, "-m", "pip", "uninstall", "-q", "-y", "nbutils"], cwd=tmp_path, check=False)
    done, out = _run_in_bare_kernel(
        bare, tmp_path, "nbutils @ http://127.0.0.1:9/nbutils-0.1.0-py3-none-any.whl"
    )
    assert done.returncode != 0
    shown = done.stdout + done.stderr
    # papermill's command line reports the failed cell (its one traceback is its own
    # PapermillExecutionError); the cell's error carries no frames and nothing of subprocess
    assert "CalledProcessError" not in shown and "subprocess.py" not in shown, shown[-3000:]
    assert shown.count("most recent call last") <= 1 and "PapermillExecutionError" in shown
    assert "nbutils をインストールできませんでした" in shown and "Internet" in shown
    errors = [
        o
        for c in json.loads(out.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert len(errors) == 1 and errors[0]["ename"] == "SetupFailed"
    assert len(errors[0]["traceback"]) <= 8  # the message's lines, no traceback frames


@pytest.mark.slow
def test_a_bare_kaggle_kernel_installs_the_wheel_and_completes_notebook_01(bare, wheel, tmp_path):
    done, out = _run_in_bare_kernel(bare, tmp_path, str(wheel))
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "nbutils をインストールしました" in text
    assert (tmp_path / "kaggle" / "runs" / "latest" / "data.json").is_file()


# -- slow: Kaggle with Internet off ---------------------------------------------------------------
#: What Kaggle's image has that matters here (docs/versions.md): its pandas, numpy and nbconvert.
KAGGLE_IMAGE_PINS = ("pandas==2.2.2", "numpy==2.0.2", "nbconvert==6.4.5")


@pytest.fixture(scope="session")
def kaggle_input(tmp_path_factory, wheel) -> Path:
    """/kaggle/input with the folder of ``make kaggle-dataset`` (built for this Python) mounted
    as Kaggle mounts a dataset: <input>/<dataset>/."""
    root = tmp_path_factory.mktemp("kaggle_input")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    builder = ROOT / "tools" / "kaggle_dataset.py"
    out = root / "nbutils-offline"
    _run(
        [sys.executable, builder, "--out", out, "--python-version", version, "--wheel", wheel], root
    )
    return root


@pytest.fixture(scope="session")
def kaggle_like(tmp_path_factory) -> Path:
    """A venv like Kaggle's kernel before nbutils: papermill, ipykernel and the image's pins."""
    root = tmp_path_factory.mktemp("kaggle_like")
    python = _venv(root / "venv")
    _run([python, *PIP_QUIET, "papermill", "ipykernel", *KAGGLE_IMAGE_PINS], cwd=root)
    return python


def _offline_env(**extra: str) -> dict[str, str]:
    """No package index and no folder but the dataset's: pip's config files (this machine's name
    a local index and a wheel folder) are not read, PIP_FIND_LINKS is unset, PIP_NO_INDEX is on,
    and an index, if asked anyway, is an address where nothing listens."""
    env = _clean_env(
        PIP_NO_INDEX="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_RETRIES="0",
        PIP_DEFAULT_TIMEOUT="5",
        **extra,
    )
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        env.pop(name, None)
    return env


@pytest.mark.slow
def test_kaggle_without_internet_installs_from_the_dataset_folder(
    kaggle_like, kaggle_input, tmp_path
):
    env = _offline_env()
    config = _run([kaggle_like, "-m", "pip", "config", "list"], tmp_path, env=env).stdout
    assert "find-links" not in config and "index-url='file" not in config, config
    # nothing to find without the folder: the index is really out of reach
    lost = _run([kaggle_like, "-m", "pip", "install", "numerapi"], tmp_path, env=env, check=False)
    assert lost.returncode != 0
    done, out = _run_01_in_kernel(
        kaggle_like,
        tmp_path,
        "kaggle",
        _offline_env(KAGGLE_KERNEL_RUN_TYPE="Batch", NBUTILS_KAGGLE_INPUT=str(kaggle_input)),
    )
    work = tmp_path / "kaggle"
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "nbutils をインストールしました" in text
    assert str(kaggle_input / "nbutils-offline") in text
    assert (work / "runs" / "latest" / "data.json").is_file()
    # the image's releases satisfy requirements.txt, so pip kept them
    kept = _run(
        [
            kaggle_like,
            "-c",
            "import nbconvert, numpy, pandas, nbutils; "
            "print(pandas.__version__, numpy.__version__, nbconvert.__version__)",
        ],
        tmp_path,
        env=env,
    ).stdout.split()
    assert kept == [pin.split("==")[1] for pin in KAGGLE_IMAGE_PINS]
