"""Tests for ``export-model`` and ``upload-model`` (nbutils.daily.export, .upload_model).

The exported pickle runs in a fresh Python whose path has no nbutils, and its predictions equal
the run's own live predictions (notebook 06's neutralized, ranked values). Uploads use the real
numerapi client against the local stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbutils.daily.errors import DailyError
from nbutils.daily.export import check_pickle, export_model, version_warnings
from nbutils.daily.run import DailySettings
from nbutils.daily.standalone import engineer, neutralize_block
from nbutils.features import FeatureSpec
from nbutils.neutralize import neutralize
from tests import test_daily as base
from tests.test_daily import (
    MODEL,
    PUBLIC,
    SECRET,
    assert_no_keys_anywhere,
    build_run,
    copy_run,
    run_cli,
)

finished_run = base.finished_run  # the module's finished run (a pytest fixture)
daily = base.daily  # the stand-in with an open round (a pytest fixture)


def test_pickle_runs_without_nbutils_and_equals_the_runs_live_predictions(finished_run, tmp_path):
    out = tmp_path / "model.pkl"
    export_model(finished_run["run_dir"], out)
    saved = tmp_path / "pickle_predictions.parquet"
    report = check_pickle(out, run_dir=finished_run["run_dir"], save_predictions=saved)
    assert report.ok, report.describe()
    assert not report.nbutils_importable
    assert report.rows == len(finished_run["data"].live)
    got = pd.read_parquet(saved)["prediction"]
    expected = finished_run["expected"].loc[got.index, "prediction"]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    assert list(got.index) == list(finished_run["data"].live.index)


def test_the_pickle_really_needs_no_nbutils(finished_run, tmp_path):
    """Loading it where importing nbutils fails, without our check's helper script."""
    out = tmp_path / "model.pkl"
    export_model(finished_run["run_dir"], out)
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'nbutils': raise ImportError('no nbutils here')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import cloudpickle, pandas as pd\n"
        f"f = cloudpickle.load(open({str(out)!r}, 'rb'))\n"
        f"live = pd.read_parquet({str(finished_run['dataset'] / 'live.parquet')!r})\n"
        "out = f(live[[c for c in live.columns if c.startswith('feature_')]])\n"
        "assert 'nbutils' not in sys.modules\n"
        "print(len(out), float(out['prediction'].min()) > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(len(finished_run["data"].live)), "True"]


def test_check_catches_a_bad_predict(tmp_path, finished_run):
    import cloudpickle

    def bad(live_features, live_benchmark_models=None):
        return pd.DataFrame(
            {"prediction": np.full(len(live_features), 2.0)}, index=live_features.index
        )

    path = tmp_path / "bad.pkl"
    path.write_bytes(cloudpickle.dumps(bad))
    report = check_pickle(path, live=finished_run["dataset"] / "live.parquet")
    assert not report.ok and any("outside [0, 1]" in e for e in report.errors)


def test_version_warnings_name_the_python_mismatch():
    here = ".".join(map(str, sys.version_info[:2]))
    other = "3.9" if here != "3.9" else "3.10"
    warned = version_warnings({"python": f"{here}.0"}, f"Python {other}")
    assert any(f"Python {here}" in w and other in w for w in warned)
    assert not any(
        "cloudpickle's functions" in w for w in version_warnings({"python": here}, f"Python {here}")
    )


def test_export_refuses_a_name_without_pkl(finished_run, tmp_path):
    with pytest.raises(DailyError, match=r"\.pkl"):
        export_model(finished_run["run_dir"], tmp_path / "model.pickle")


def test_export_model_cli_with_check(finished_run, tmp_path, capsys):
    out = tmp_path / "m.pkl"
    assert (
        run_cli(
            "export-model", "--run-dir", str(finished_run["run_dir"]), "--out", str(out), "--check"
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "check passed" in text and "limit 600 s" in text and "MiB" in text


# -- standalone steps against nbutils -----------------------------------------------------------
def test_standalone_feature_engineering_equals_feature_spec(finished_run):
    data = finished_run["data"]
    spec = FeatureSpec(group_stats=True, interactions=list(data.features[:4]))
    frame, features = spec.apply(data.live, data.feature_groups)
    mine = engineer(
        data.live,
        {"groups": data.feature_groups, "stats": spec.stats, "interactions": spec.interactions},
    )
    new = features[len(data.features) :]
    assert list(mine.columns) == new
    pd.testing.assert_frame_equal(mine, frame[new])


def test_standalone_neutralization_equals_nbutils(finished_run):
    live = finished_run["data"].live.copy()
    rng = np.random.default_rng(0)
    live["prediction"] = rng.normal(size=len(live))
    ref = neutralize(
        live, ["prediction"], finished_run["data"].features, proportion=0.3, era_col=None
    )
    mine = neutralize_block(
        live["prediction"].to_numpy(), live[finished_run["data"].features].to_numpy(), 0.3
    )
    np.testing.assert_allclose(mine, ref["prediction"].to_numpy(), atol=1e-10)


# -- upload-model ------------------------------------------------------------------------------
def _upload_args(run_dir, *extra):
    return ("upload-model", "--run-dir", str(run_dir), "--model-name", MODEL, *extra)


def test_upload_model_exports_checks_and_uploads(daily, finished_run, tmp_path, capsys, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    image = "Python " + ".".join(map(str, sys.version_info[:2]))
    daily.docker_images[image] = "44444444-4444-4444-8444-444444444444"
    assert run_cli(*_upload_args(run_dir)) == 0
    captured = capsys.readouterr()
    assert "check passed" in captured.out and "model upload id model-upload-1" in captured.out
    (upload,) = daily.model_uploads
    assert upload["model_id"] == "model-id-1"
    assert upload["docker_image"] == daily.docker_images[image]
    assert upload["data_version"] == daily.data_versions["v5.2"]
    assert upload["content"] == (run_dir / "model.pkl").read_bytes()
    fields = [r["field"] for r in daily._server.requests if r["method"] == "POST"]
    assert fields.index("computePickleUploadAuth") < fields.index("createComputePickleUpload")
    (entry,) = [
        json.loads(line) for line in (run_dir / "model_uploads.log").read_text().splitlines()
    ]
    assert entry["upload_id"] == "model-upload-1"
    assert entry["sha256"] == hashlib.sha256(upload["content"]).hexdigest()
    assert_no_keys_anywhere(captured.out, captured.err, caplog.text, dirs=(run_dir,))


def test_upload_model_sends_what_numerapis_model_upload_sends(daily, tmp_path):
    """Our checked steps (``upload_model_checked``) post the same GraphQL fields, in the same order
    and with the same variable names, as numerapi's own ``model_upload`` (the reference)."""
    import numerapi

    from nbutils.daily.upload_model import upload_model_checked

    pkl = tmp_path / "given.pkl"
    pkl.write_bytes(b"a pickle")
    napi = numerapi.NumerAPI(PUBLIC, SECRET, show_progress_bars=False)
    image, version = daily.docker_images["Python 3.11"], daily.data_versions["v5.2"]

    def posts(start: int) -> list[tuple[str, list[str]]]:
        new = [r for r in daily._server.requests[start:] if r["method"] == "POST"]
        return [(r["field"], sorted(r["variables"])) for r in new]

    start = len(daily._server.requests)
    reference = napi.model_upload(
        str(pkl), model_id="model-id-1", data_version=version, docker_image=image
    )
    theirs = posts(start)
    start = len(daily._server.requests)
    ours = upload_model_checked(napi, pkl, "model-id-1", version, image)
    assert posts(start) == theirs
    assert [f for f, _ in theirs] == ["computePickleUploadAuth", "createComputePickleUpload"]
    first, second = daily.model_uploads
    assert (first["id"], second["id"]) == (reference, ours)
    assert first["content"] == second["content"] == b"a pickle"
    assert (second["docker_image"], second["data_version"]) == (image, version)


def test_upload_model_refuses_an_unknown_image_with_the_offered_names(
    daily, finished_run, tmp_path, capsys
):
    run_dir = copy_run(finished_run, tmp_path)
    code = run_cli(*_upload_args(run_dir, "--docker-image", "Python 3.1l"))
    err = capsys.readouterr().err
    assert code == 1 and "Python 3.11" in err and "Did you mean" in err
    assert not daily.model_uploads


def test_upload_model_failed_put_is_an_error(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    pkl = export_model(run_dir, tmp_path / "given.pkl")
    daily.fail_put = [503]
    code = run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", "Python 3.11"))
    assert code == 5 and "HTTP 503" in capsys.readouterr().err
    assert not daily.model_uploads and not (run_dir / "model_uploads.log").exists()


def test_upload_model_rejected_keys(daily, finished_run, tmp_path, monkeypatch, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", PUBLIC + "Z")
    code = run_cli(*_upload_args(run_dir, "--docker-image", "Python 3.11"))
    captured = capsys.readouterr()
    assert code == 4 and "refused the keys" in captured.err
    assert PUBLIC not in captured.err + captured.out and SECRET not in captured.err + captured.out


# -- every way the run can turn predictions into a submission ----------------------------------
VARIANTS = {
    "raw": DailySettings(neutralize=False, rank_per_era=False),
    "ranked": DailySettings(neutralize=False, rank_per_era=True),
    "features-full": DailySettings(True, 1.0, "features", True, True),
    "example-predictions": DailySettings(True, 0.5, "example_predictions", True, True),
    "one-block": DailySettings(True, 0.5, "features", False, True),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pickle_and_submit_agree_with_the_run_for_each_setting(name, finished_run, daily, tmp_path):
    """The pickle (no nbutils), ``submit --dry-run`` and the run's own notebook-05/06 values.

    ``one-block`` (per_era=False) is the documented exception: the run neutralized validation and
    live together, a new round has only live, so there pickle and submit agree with each other."""
    settings = VARIANTS[name]
    run_dir = tmp_path / "run"
    built = build_run(run_dir, finished_run["dataset"], settings)
    pkl = export_model(run_dir, tmp_path / "m.pkl")
    saved = tmp_path / "p.parquet"
    report = check_pickle(pkl, run_dir=run_dir, save_predictions=saved)
    assert report.ok, report.describe()
    from_pickle = pd.read_parquet(saved)["prediction"]
    assert (
        run_cli(
            "submit",
            "--run-dir",
            str(run_dir),
            "--model-name",
            MODEL,
            "--data-dir",
            str(tmp_path / "data"),
            "--dry-run",
        )
        == 0
    )
    submitted = pd.read_csv(run_dir / "rounds" / "1001" / "submission.csv", dtype={"id": str})
    submitted = submitted.set_index("id")["prediction"]
    np.testing.assert_allclose(
        from_pickle.to_numpy(), submitted[from_pickle.index].to_numpy(), atol=1e-12
    )
    if name != "one-block":
        expected = built["expected"].loc[from_pickle.index, "prediction"]
        np.testing.assert_allclose(from_pickle.to_numpy(), expected.to_numpy(), atol=1e-12)


def test_benchmark_models_are_aligned_by_id_and_must_cover_live(finished_run, tmp_path):
    import cloudpickle

    run_dir = tmp_path / "run"
    build_run(run_dir, finished_run["dataset"], VARIANTS["example-predictions"])
    predict = cloudpickle.loads(export_model(run_dir, tmp_path / "m.pkl").read_bytes())
    live = pd.read_parquet(finished_run["dataset"] / "live.parquet")
    features = live[[c for c in live.columns if c.startswith("feature_")]]
    bench = pd.read_parquet(finished_run["dataset"] / "live_example_preds.parquet")
    ordered = predict(features, bench)
    shuffled = predict(features, bench.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(ordered, shuffled)
    with pytest.raises(ValueError, match="no value for 1 of the live ids"):
        predict(features, bench.iloc[1:])
    with pytest.raises(ValueError, match="live_benchmark_models"):
        predict(features)


def test_the_pickle_holds_no_local_path(finished_run, tmp_path):
    blob = export_model(finished_run["run_dir"], tmp_path / "m.pkl").read_bytes()
    assert str(finished_run["run_dir"]).encode() not in blob
    assert str(tmp_path).encode() not in blob
    assert str(Path(__file__).resolve().parent.parent).encode() not in blob  # the project's path
    assert re.search(rb"nbutils[./]", blob) is None  # no module or file of nbutils


def test_check_catches_the_pickle_of_another_model(finished_run, tmp_path):
    """example-scripts #150: a notebook pickled the wrong model."""
    other = tmp_path / "other"
    build_run(other, finished_run["dataset"], VARIANTS["ranked"])
    wrong = export_model(other, tmp_path / "wrong.pkl")
    report = check_pickle(wrong, run_dir=finished_run["run_dir"])
    assert not report.ok
    assert any("differ from the run's own" in e for e in report.errors)
    assert check_pickle(
        export_model(finished_run["run_dir"], tmp_path / "right.pkl"),
        run_dir=finished_run["run_dir"],
    ).ok
