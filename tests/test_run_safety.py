"""Issue 21: the run lock is checked before any write, only the run directory's own artifacts are
read, and write failures name the real file and the fix.

References are independent of nbutils' readers: the files' bytes (hashlib), pandas/pyarrow for
the frames, the lock file written by hand as another chain's.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbutils.errors import FileWriteError, PipelineError
from nbutils.run import artifacts, pipeline
from nbutils.run.fingerprints import begin_step, read_manifest
from nbutils.run.lock import LOCK_NAME, TOKEN_ENV


def predictions_of(data, shift: float = 0.0) -> pd.DataFrame:
    rows = pd.concat([data.validation, data.live])
    values = np.linspace(0.1, 0.9, len(rows)) + shift
    return rows[["era", "data_type"]].assign(prediction=values)


@pytest.fixture
def run(tiny_v5_dir, tmp_path):
    """A run directory with what 01, 02 and 03 write (through the library, no kernel)."""
    from nbutils.data import load_data
    from nbutils.features import FeatureSpec
    from nbutils.train import train_lgbm

    run_dir = tmp_path / "run"
    data = load_data(tiny_v5_dir)
    begin_step("01_load_data.ipynb", {"era_step": 1})
    artifacts.save_data_info(
        run_dir, data, tiny_v5_dir, data_source="synthetic", feature_set=None, era_step=1
    )
    begin_step("02_feature_engineering.ipynb", {})
    FeatureSpec(group_stats=False).save(run_dir / "feature_spec.json")
    begin_step("03_training.ipynb", {"n_estimators": 3})
    model = train_lgbm(data.train, data.features, params={"n_estimators": 3}, progress=False)
    from nbutils.train import save_model

    save_model(model, run_dir / "model.txt")
    artifacts.save_predictions(predictions_of(data), run_dir)
    return run_dir, data, model


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def chain_lock(monkeypatch):
    """Make ``run_dir`` locked by another live chain (this process's pid, another token)."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)

    def lock(run_dir: Path) -> Path:
        body = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": 0,
            "token": "another-chain",
            "kind": "chain",
        }
        (run_dir / LOCK_NAME).write_text(json.dumps(body))
        return run_dir / LOCK_NAME

    return lock


# -- the lock before any write ----------------------------------------------------------------
def test_every_saver_refuses_a_locked_run_dir_before_writing(run, chain_lock):
    from nbutils.features import FeatureSpec
    from nbutils.submission import write_submission
    from nbutils.train import save_model

    run_dir, data, model = run
    chain_lock(run_dir)
    before = {p.name: sha(p) for p in run_dir.iterdir()}
    preds = predictions_of(data, 0.05)
    submission = pd.DataFrame(
        {"id": data.live.index, "prediction": np.linspace(0.1, 0.9, len(data.live))}
    )
    writes = {
        "predictions": lambda: artifacts.save_predictions(preds, run_dir),
        "model": lambda: save_model(model, run_dir / "model.txt"),
        "spec": lambda: FeatureSpec(group_stats=True).save(run_dir / "feature_spec.json"),
        "data.json": lambda: artifacts.save_data_info(
            run_dir, data, data.data_dir, data_source="synthetic", feature_set=None, era_step=2
        ),
        "csv": lambda: artifacts.save_csv(preds, run_dir / "per_era.csv"),
        "submission": lambda: write_submission(submission, run_dir / "submission.csv"),
    }
    for name, write in writes.items():
        with pytest.raises(PipelineError, match="being written by another chain"):
            write()
        after = {p.name: sha(p) for p in run_dir.iterdir()}
        assert after == before, f"{name} wrote into a locked run directory"


def test_a_figure_is_not_saved_into_a_locked_run_dir(run, chain_lock):
    import matplotlib.pyplot as plt

    run_dir, _, _ = run
    chain_lock(run_dir)
    fig = plt.figure()
    with pytest.raises(PipelineError, match="being written by another chain"):
        artifacts.save_figure(fig, run_dir / "per_era_corr.png")
    plt.close(fig)
    assert not (run_dir / "per_era_corr.png").exists()
    assert not list(run_dir.glob(".*.tmp"))


def test_the_parameter_check_refuses_a_locked_run_dir(tmp_path, chain_lock, monkeypatch):
    from nbutils.run.parameters import check_notebook_parameters

    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    check_notebook_parameters("03_training.ipynb", {"run_dir": str(run_dir), "In": []})
    chain_lock(run_dir)
    with pytest.raises(PipelineError, match="being written by another chain"):
        check_notebook_parameters("03_training.ipynb", {"run_dir": str(run_dir), "In": []})


def test_a_write_waits_for_another_notebooks_single_write_then_takes_the_lock(tmp_path):
    """A lock of kind "write" (another notebook writing one file) is waited for, not refused."""
    import threading

    from nbutils.run.lock import run_lock, writing

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    released = threading.Event()

    def hold() -> None:
        with run_lock(run_dir, kind="write"):
            released.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    while not (run_dir / LOCK_NAME).exists():
        pass
    threading.Timer(0.3, released.set).start()
    old = os.environ.pop(TOKEN_ENV, None)  # the thread's token is not ours
    try:
        with writing(run_dir):
            assert json.loads((run_dir / LOCK_NAME).read_text())["kind"] == "write"
    finally:
        if old is not None:
            os.environ[TOKEN_ENV] = old
    other.join()
    assert released.is_set() and not (run_dir / LOCK_NAME).exists()


def test_notebook_03_run_by_hand_with_papermill_into_a_locked_run_dir_writes_nothing(
    run, chain_lock, monkeypatch, tmp_path
):
    """The real notebook 03 in a real kernel: refused in its parameter check cell, before it
    trains; model.txt and predictions.parquet keep their bytes (issue 21)."""
    run_dir, _, _ = run
    chain_lock(run_dir)
    kept = {name: sha(run_dir / name) for name in ("model.txt", "predictions.parquet")}
    spec_root = pipeline.kernel_spec_dir()
    monkeypatch.setenv("JUPYTER_PATH", str(spec_root))
    out = tmp_path / "by_hand"
    out.mkdir()
    try:
        with pytest.raises(PipelineError) as info:
            pipeline.execute_notebook(
                pipeline.default_notebooks_dir() / "03_training.ipynb",
                out,
                {"run_dir": str(run_dir), "n_estimators": 20},
                None,
                progress=False,
            )
    finally:
        pipeline._remove_tree(spec_root)
    import nbformat

    assert "being written by another chain" in str(info.value)
    source = nbformat.read(pipeline.default_notebooks_dir() / "03_training.ipynb", as_version=4)
    setup = next(
        c
        for c in source.cells
        if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
    )  # the cell right after the parameters cell: it checks them, before any training
    assert repr(setup.source.strip().splitlines()[0][:80]) in str(info.value)
    assert {name: sha(run_dir / name) for name in kept} == kept


# -- only our own artifacts ---------------------------------------------------------------------
def test_predictions_copied_in_by_hand_are_refused_naming_the_file_and_notebook(run):
    run_dir, data, _ = run
    path = run_dir / "predictions.parquet"
    hand = predictions_of(data).loc[data.validation.index[:100]]
    hand.index.name = "id"
    hand.to_parquet(path)  # 100 of 360 validation rows, written by hand
    with pytest.raises(
        PipelineError,
        match=r"predictions.parquet is not the file 03_training.ipynb wrote .*origin unknown.*"
        r"Rerun 03_training.ipynb.*python -m nbutils adopt predictions.parquet --run-dir",
    ):
        artifacts.load_predictions(run_dir)


def test_an_artifact_without_any_fingerprint_is_refused(run, tmp_path):
    run_dir, _, _ = run
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("data.json", "predictions.parquet"):  # copied without fingerprints.json
        (fresh / name).write_bytes((run_dir / name).read_bytes())
    with pytest.raises(
        PipelineError, match=r"data.json has no fingerprint.*origin is unknown.*01_load_data"
    ):
        artifacts.load_run_data(fresh)
    with pytest.raises(PipelineError, match=r"predictions.parquet has no fingerprint.*03_train"):
        artifacts.load_predictions(fresh)


def test_predictions_copied_from_another_run_are_a_clear_error(run, tmp_path, capsys):
    """Another run's predictions.parquet: a PipelineError, never a bare AssertionError later."""
    from nbutils.data import TINY_SIZES, load_data, make_synthetic_dataset

    run_dir, _, _ = run
    other_data_dir = make_synthetic_dataset(tmp_path / "other", seed=7, **TINY_SIZES)
    other = tmp_path / "other_run"
    other_data = load_data(other_data_dir)
    artifacts.save_data_info(
        other, other_data, other_data_dir, data_source="synthetic", feature_set=None, era_step=1
    )
    artifacts.save_predictions(predictions_of(other_data), other)
    (run_dir / "predictions.parquet").write_bytes((other / "predictions.parquet").read_bytes())
    with pytest.raises(PipelineError, match="predictions.parquet is not the file"):
        artifacts.load_predictions(run_dir)
    # adopting it does not help: its ids are another dataset's
    assert pipeline.main(["adopt", "predictions.parquet", "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "does not hold the predictions of this run's data (other validation and live ids" in err
    with pytest.raises(PipelineError, match="predictions.parquet is not the file"):
        artifacts.load_predictions(run_dir)  # still refused: nothing was recorded


def test_predictions_with_fewer_rows_than_the_run_are_refused_even_when_recorded(run):
    """100 of 360 validation rows scored silently (CORR on a subset) before issue 21."""
    run_dir, data, _ = run
    part = pd.concat([data.validation.iloc[:100], data.live])[["era", "data_type"]]
    artifacts.save_predictions(part.assign(prediction=0.5), run_dir)
    n_live = len(data.live)
    with pytest.raises(
        PipelineError,
        match=rf"100 validation and {n_live} live rows where the run's data has "
        rf"{len(data.validation)} and {n_live}",
    ):
        artifacts.load_predictions(run_dir)


def test_predictions_with_other_ids_of_the_same_count_are_refused(run):
    run_dir, data, _ = run
    frame = predictions_of(data)
    frame.index = [f"x{i}" for i in range(len(frame))]
    artifacts.save_predictions(frame, run_dir)
    with pytest.raises(PipelineError, match="other validation and live ids than the run's data"):
        artifacts.load_predictions(run_dir)


def test_a_hand_made_file_is_adopted_on_purpose_and_then_read(run, tmp_path, capsys):
    run_dir, data, _ = run
    hand = predictions_of(data, 0.01)
    hand.index.name = "id"
    elsewhere = tmp_path / "mine" / "predictions.parquet"
    elsewhere.parent.mkdir()
    hand.to_parquet(elsewhere)
    assert pipeline.main(["adopt", str(elsewhere), "--run-dir", str(run_dir)]) == 0
    assert "adopted" in capsys.readouterr().out
    assert sha(run_dir / "predictions.parquet") == sha(elsewhere)
    entry = read_manifest(run_dir)["predictions.parquet"]
    assert entry["adopted"] is True and entry["notebook"] == "03_training.ipynb"
    back = artifacts.load_predictions(run_dir)
    np.testing.assert_allclose(back["prediction"], hand["prediction"])


def test_a_bad_file_from_elsewhere_is_refused_before_it_replaces_anything(run, tmp_path, capsys):
    run_dir, data, _ = run
    before = sha(run_dir / "predictions.parquet")
    part = predictions_of(data).iloc[:100]
    part.index.name = "id"
    elsewhere = tmp_path / "mine" / "predictions.parquet"
    elsewhere.parent.mkdir()
    part.to_parquet(elsewhere)
    assert pipeline.main(["adopt", str(elsewhere), "--run-dir", str(run_dir)]) == 1
    assert "100 validation and 0 live rows" in capsys.readouterr().err
    assert sha(run_dir / "predictions.parquet") == before
    artifacts.load_predictions(run_dir)  # the run's own file, still recorded


def test_adopt_refuses_unknown_names_missing_files_and_bad_content(run, tmp_path, capsys):
    run_dir, _, _ = run
    assert pipeline.main(["adopt", "data.json", "--run-dir", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert pipeline.main(["adopt", "notes.txt", "--run-dir", str(run_dir)]) == 1
    assert "not one of the run's artifacts" in capsys.readouterr().err
    (run_dir / "model.txt").unlink()
    assert pipeline.main(["adopt", "model.txt", "--run-dir", str(run_dir)]) == 1
    assert "nothing to adopt" in capsys.readouterr().err
    (run_dir / "model.txt").write_text("not a model")
    assert pipeline.main(["adopt", "model.txt", "--run-dir", str(run_dir)]) == 1
    assert "model.txt" in capsys.readouterr().err
    assert read_manifest(run_dir)["model.txt"].get("adopted") is None


def test_a_notebook_run_by_hand_records_what_it_saves(run):
    """feature_spec.json and model.txt saved outside the chain are recorded, so the next
    notebook run by hand reads them."""
    run_dir, _, _ = run
    manifest = read_manifest(run_dir)
    for name in ("feature_spec.json", "model.txt"):
        assert manifest[name]["sha256"] == sha(run_dir / name), name
    assert artifacts.artifact_path(run_dir, "model.txt") == run_dir / "model.txt"


# -- raw errors become NbutilsErrors naming the path and the fix ----------------------------
def test_a_full_disk_names_the_real_file_not_the_temporary_one(run, monkeypatch):
    run_dir, data, _ = run

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    before = sha(run_dir / "predictions.parquet")
    with pytest.raises(FileWriteError) as info:
        artifacts.save_predictions(predictions_of(data), run_dir)
    message = str(info.value)
    assert str(run_dir / "predictions.parquet") in message and ".tmp" not in message
    assert "disk is full" in message and info.value.errno == errno.ENOSPC
    assert sha(run_dir / "predictions.parquet") == before
    assert not list(run_dir.glob(".*.tmp"))


def test_a_permission_error_on_the_temporary_file_names_the_target(tmp_path, monkeypatch):
    """Run as root too: the refusal is simulated at os.open (what a read-only disk raises)."""
    from nbutils.util import atomic_write_text

    real_open = os.open

    def refuse(path, flags, mode=0o777, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FileWriteError) as info:
        atomic_write_text(tmp_path / "metrics.json", "{}")
    assert str(tmp_path / "metrics.json") in str(info.value) and ".tmp" not in str(info.value)
    assert "read-only or not yours to write" in str(info.value)


def test_an_output_path_that_is_a_directory_is_named(tmp_path):
    from nbutils.submission import write_submission

    (tmp_path / "submission.csv").mkdir()
    frame = pd.DataFrame({"id": ["a"], "prediction": [0.5]})
    with pytest.raises(FileWriteError, match=r"submission.csv is a directory: remove it"):
        write_submission(frame, tmp_path / "submission.csv")


def test_a_run_dir_that_is_a_file_is_named(tmp_path, capsys):
    file = tmp_path / "run"
    file.write_text("I am a file")
    assert pipeline.main(["run", "--run-dir", str(file), "--no-html", "--no-progress"]) == 1
    assert f"--run-dir {file} is a file, not a directory" in capsys.readouterr().err
    with pytest.raises(PipelineError, match="is a file, not a directory"):
        artifacts.resolve_dir(file)
    with pytest.raises(FileWriteError, match="is a file, not a directory"):
        artifacts.resolve_dir(file, create=True)
    with pytest.raises(FileWriteError, match=rf"{file} is a file, not a directory"):
        artifacts.save_csv(pd.DataFrame({"a": [1]}), file / "per_era.csv")
    assert pipeline.main(["notebooks", str(file)]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_zero_byte_or_non_parquet_data_file_is_a_data_error(tiny_v5_dir, tmp_path):
    import shutil

    from nbutils.data import check_memory, load_data
    from nbutils.errors import DataError

    copy = shutil.copytree(tiny_v5_dir, tmp_path / "v5.2")
    for content in (b"", b"id,era\n1,2\n"):
        (copy / "validation.parquet").write_bytes(content)
        with pytest.raises(DataError, match="validation.parquet is not a readable parquet file"):
            load_data(copy)
        with pytest.raises(DataError, match="validation.parquet is not a readable parquet file"):
            check_memory(copy, available=2**40)


def test_a_read_only_run_dir_is_named_before_the_chain_starts(tmp_path, monkeypatch, capsys):
    """The lock is the chain's first write: a read-only disk is named there (simulated at
    os.open, since the tests may run as root, who writes anywhere)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kwargs):
        if Path(path).parent == run_dir and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert pipeline.main(["run", "--run-dir", str(run_dir), "--no-html", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"{run_dir / LOCK_NAME}" in err and "read-only or not yours to write" in err
    assert "Traceback" not in err


def test_every_test_named_in_the_readme_reliability_table_exists():
    """The README's reliability table names the test behind each guarantee: each one exists."""
    import re

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## 信頼性 / Reliability") : readme.index("## 速さとメモリ")]
    named = re.findall(r"`(test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`", table)
    assert len(named) >= 40
    for file, name in named:
        source = (root / "tests" / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{file}::{name}"


def test_an_empty_run_dir_is_refused_where_the_notebooks_resolve_it(monkeypatch):
    """An unset variable gives run_dir=""; it must not mean the project root."""
    from nbutils.run.parameters import check_notebook_parameters

    with pytest.raises(PipelineError, match="run_dir/data_dir is empty"):
        artifacts.resolve_dir("", create=True)
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    with pytest.raises(PipelineError, match="run_dir/data_dir is empty"):
        check_notebook_parameters("04_evaluation.ipynb", {"run_dir": " ", "In": []})


def test_help_lists_the_adopt_command(capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--help"])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("adopt ")]
    assert len(lines) == 1 and "hand-made artifact" in lines[0]


def test_a_lock_without_a_token_is_not_taken_for_ours(tmp_path, monkeypatch):
    """A live owner's lock file without a token (hand-made, older) still refuses writes."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "kind": "chain"})
    )
    with pytest.raises(PipelineError, match="being written by another chain"):
        artifacts.save_csv(pd.DataFrame({"a": [1]}), tmp_path / "per_era.csv")
    assert not (tmp_path / "per_era.csv").exists()
