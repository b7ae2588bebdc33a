"""Tests for ``export-model`` and ``upload-model`` (nbutils.daily.export, .upload_model).

The exported pickle runs in a fresh Python whose path has no nbutils, and its predictions equal
the run's own live predictions (notebook 06's neutralized, ranked values). Uploads use the real
numerapi client against the local stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nbutils.daily.errors import DailyError
from nbutils.daily.export import check_pickle, export_model, run_fingerprint
from nbutils.daily.run import DailySettings
from nbutils.daily.runner import python_mismatch
from nbutils.daily.standalone import engineer, neutralize_block
from nbutils.features import FeatureSpec
from nbutils.neutralize import neutralize
from tests import test_daily as base
from tests.factories import (
    BENCHMARK_COLUMNS,
    EXAMPLE_BENCHMARK,
    benchmark_models,
    write_benchmark_models,
)
from tests.test_daily import (
    MODEL,
    PUBLIC,
    SECRET,
    assert_no_keys_anywhere,
    build_run,
    copy_run,
    run_cli,
)

daily = base.daily  # the stand-in with an open round (a pytest fixture)
HERE = "Python " + ".".join(map(str, sys.version_info[:2]))
OTHER = "Python 3.12" if HERE != "Python 3.12" else "Python 3.11"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """test_daily's finished run (neutralized 50 % against features per era) on a dataset with
    ``*_benchmark_models.parquet`` files shaped like Numerai's (tests/factories.py)."""
    from nbutils.data import TINY_SIZES, make_synthetic_dataset

    root = tmp_path_factory.mktemp("export")
    dataset = make_synthetic_dataset(
        root / "data", layout="v5", seed=0, version="v5.2", **TINY_SIZES
    )
    write_benchmark_models(dataset)
    run_dir = root / "run"
    built = build_run(run_dir, dataset, base.NEUTRAL)
    return {"run_dir": run_dir, "dataset": dataset, **built}


def exported_metadata(path: Path) -> dict:
    import cloudpickle

    return cloudpickle.loads(path.read_bytes()).nbutils_export


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


def test_python_mismatch_names_both_versions():
    here = ".".join(map(str, sys.version_info[:2]))
    other = "3.9" if here != "3.9" else "3.10"
    message = python_mismatch({"python": here}, f"Python {other}")
    assert f"Python {here}" in message and f"Python {other}" in message
    assert python_mismatch({"versions": {"python": f"{here}.1"}}, f"Python {other}") == message
    assert python_mismatch({"python": here}, f"Python {here}") is None
    assert python_mismatch({"python": here}, None) is None


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
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    daily.fail_put = [503]
    code = run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", HERE))
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
    # run as numerai-predict does: the whole live frame, then each era with its benchmark rows
    assert report.eras == finished_run["data"].live["era"].nunique()
    assert report.per_era_gap is not None and report.per_era_gap <= 1e-9
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
    bench = pd.read_parquet(finished_run["dataset"] / "live_benchmark_models.parquet")
    assert "prediction" not in bench.columns  # Numerai's file has none (issue 16)
    ordered = predict(features, bench)
    shuffled = predict(features, bench.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(ordered, shuffled)
    with pytest.raises(ValueError, match="no value for 1 of the live ids"):
        predict(features, bench.iloc[1:])
    with pytest.raises(ValueError, match="live_benchmark_models"):
        predict(features)
    with pytest.raises(ValueError, match=EXAMPLE_BENCHMARK):
        predict(features, bench.drop(columns=[EXAMPLE_BENCHMARK]))


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


# -- the benchmark column (issue 16) -----------------------------------------------------------
def test_export_neutralizes_against_the_benchmark_model_behind_the_example_predictions(
    finished_run, tmp_path, capsys
):
    """The runner passes live_benchmark_models (no 'prediction' column), never the example
    predictions: the pickle reads the benchmark column equal to them, by its real name."""
    run_dir = tmp_path / "run"
    build_run(run_dir, finished_run["dataset"], VARIANTS["example-predictions"])
    pkl = export_model(run_dir, tmp_path / "m.pkl")
    assert f"live_benchmark_models['{EXAMPLE_BENCHMARK}']" in capsys.readouterr().out
    meta = exported_metadata(pkl)
    assert meta["benchmark_column"] == EXAMPLE_BENCHMARK and meta["needs_benchmark"]
    bench = pd.read_parquet(finished_run["dataset"] / "live_benchmark_models.parquet")
    assert EXAMPLE_BENCHMARK in bench.columns and "prediction" not in bench.columns
    report = check_pickle(pkl, run_dir=run_dir)
    assert report.ok, report.describe()
    # a features-neutralized run reads no column
    assert (
        exported_metadata(export_model(finished_run["run_dir"], tmp_path / "f.pkl"))[
            "benchmark_column"
        ]
        is None
    )


def test_export_refuses_when_no_benchmark_column_is_the_example_model(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    build_run(run_dir, finished_run["dataset"], VARIANTS["example-predictions"])
    bench = pd.read_parquet(finished_run["dataset"] / "live_benchmark_models.parquet")
    others = tmp_path / "others.parquet"
    bench.drop(columns=[EXAMPLE_BENCHMARK]).to_parquet(others)
    with pytest.raises(DailyError, match="no column of .* matches them") as err:
        export_model(run_dir, tmp_path / "m.pkl", benchmark_models=others)
    assert "v52_lgbm_cyrusd20" in str(err.value) and "--benchmark-column" in str(err.value)
    with pytest.raises(DailyError, match=r"'v52_lgbm_ender2' is not a column") as err:
        export_model(run_dir, tmp_path / "m.pkl", column="v52_lgbm_ender2")
    assert EXAMPLE_BENCHMARK in str(err.value)
    with pytest.raises(DailyError, match="download_dataset") as err:
        export_model(run_dir, tmp_path / "m.pkl", benchmark_models=tmp_path / "none.parquet")
    assert not (tmp_path / "m.pkl").exists()
    # a named column that exists is taken as given
    named = export_model(run_dir, tmp_path / "n.pkl", column="v5_lgbm_ct_blend")
    assert exported_metadata(named)["benchmark_column"] == "v5_lgbm_ct_blend"


def test_benchmark_models_factory_is_shaped_like_numerais():
    example = pd.Series(np.linspace(0, 1, 50), index=[f"n{i}" for i in range(50)])
    frame = benchmark_models(example)
    assert frame.index.name == "id" and "prediction" not in frame.columns
    np.testing.assert_array_equal(frame[EXAMPLE_BENCHMARK].to_numpy(), example.to_numpy())
    for name in set(BENCHMARK_COLUMNS) - {EXAMPLE_BENCHMARK}:
        assert 0.3 < frame[name].corr(example) < 0.95


# -- the runner harness: whole frame and per era ---------------------------------------------
def _multi_era_live(finished_run, tmp_path) -> tuple[Path, Path]:
    """Validation rows as a live file of several eras, with their benchmark models."""
    validation = pd.read_parquet(finished_run["dataset"] / "validation.parquet")
    live = tmp_path / "live.parquet"
    validation.to_parquet(live)
    bench = tmp_path / "live_benchmark_models.parquet"
    shutil.copy(finished_run["dataset"] / "validation_benchmark_models.parquet", bench)
    return live, bench


def test_one_block_runs_say_the_two_calls_differ(finished_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    build_run(run_dir, finished_run["dataset"], VARIANTS["one-block"])
    pkl = export_model(run_dir, tmp_path / "m.pkl")
    note = capsys.readouterr().out
    assert "one block" in note and "live data has 1 era(s)" in note
    assert exported_metadata(pkl)["calls_differ"]
    live, bench = _multi_era_live(finished_run, tmp_path)
    report = check_pickle(pkl, live=live, benchmark=bench, run_dir=run_dir)
    assert report.ok, report.describe()  # the whole-frame call is submit's
    assert report.eras > 1 and report.per_era_gap > 1e-3
    assert any("different predictions" in w for w in report.warnings)
    # per-era neutralization: the two calls agree, nothing to say
    per_era = export_model(finished_run["run_dir"], tmp_path / "e.pkl")
    assert "one block" not in capsys.readouterr().out
    report = check_pickle(per_era, live=live, benchmark=bench, run_dir=finished_run["run_dir"])
    assert report.ok and report.per_era_gap <= 1e-9, report.describe()
    assert not any("different predictions" in w for w in report.warnings)


def _pickled(tmp_path, name, func) -> Path:
    import cloudpickle

    path = tmp_path / f"{name}.pkl"
    module = sys.modules[__name__]  # the helpers travel by value: no `tests` where it runs
    cloudpickle.register_pickle_by_value(module)
    try:
        path.write_bytes(cloudpickle.dumps(func))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    return path


def _as_frame(live, values):
    return pd.DataFrame({"prediction": values}, index=live.index)


BAD_PREDICTS = {
    "series": (lambda live, b: _as_frame(live, 0.5)["prediction"], "instead of a pandas DataFrame"),
    "empty": (lambda live, b: _as_frame(live, 0.5).iloc[:0], "returned 0 predictions"),
    "nan": (lambda live, b: _as_frame(live, np.nan), "NaN prediction"),
    "range": (lambda live, b: _as_frame(live, 1.5), r"outside \[0, 1\]"),
    "lost-id": (lambda live, b: _as_frame(live, 0.5).iloc[1:], "1 live id"),
    "twice": (lambda live, b: pd.concat([_as_frame(live, 0.5)] * 2), "id\\(s\\) twice"),
    "none": (lambda live, b: None, "returned None"),
    "raises": (lambda live, b: live["no_such_column"], "KeyError"),
    "three": (lambda live, b, c: _as_frame(live, 0.5), "1 or 2 parameters"),
}


@pytest.mark.parametrize("name", list(BAD_PREDICTS))
def test_harness_applies_the_runners_checks(name, finished_run, tmp_path):
    func, message = BAD_PREDICTS[name]
    report = check_pickle(
        _pickled(tmp_path, name, func), live=finished_run["dataset"] / "live.parquet"
    )
    assert not report.ok and any(re.search(message, e) for e in report.errors), report.errors


def test_harness_passes_a_one_parameter_predict_and_the_first_column_any_name(
    finished_run, tmp_path
):
    """numerai-predict calls a 1-parameter function with live_features alone and checks the
    first column, whatever its name."""
    report = check_pickle(
        _pickled(tmp_path, "one", lambda live: pd.DataFrame({"p": 0.5}, index=live.index)),
        live=finished_run["dataset"] / "live.parquet",
    )
    assert report.ok, report.describe()


def test_harness_catches_a_predict_that_fails_only_per_era(finished_run, tmp_path):
    def whole_only(live, bench):
        value = np.nan if live["era"].nunique() == 1 else 0.5
        return pd.DataFrame({"prediction": value}, index=live.index)

    live, bench = _multi_era_live(finished_run, tmp_path)
    report = check_pickle(_pickled(tmp_path, "w", whole_only), live=live, benchmark=bench)
    assert not report.ok
    assert all(e.startswith("era ") for e in report.errors) and len(report.errors) == report.eras


# -- the Python version ------------------------------------------------------------------------
def test_check_fails_for_another_pythons_image_unless_forced(finished_run, tmp_path, capsys):
    out = tmp_path / "m.pkl"
    args = ("export-model", "--run-dir", str(finished_run["run_dir"]), "--out", str(out))
    assert exported_metadata(export_model(finished_run["run_dir"], out))["python"] == HERE[7:]
    assert run_cli(*args, "--check", "--docker-image", OTHER) == 1
    captured = capsys.readouterr()
    assert f"made with {HERE}" in captured.err and "check FAILED" in captured.err
    assert run_cli(*args, "--check", "--docker-image", OTHER, "--force") == 0
    captured = capsys.readouterr().out
    assert "warning: the pickle was made with" in captured and "check passed" in captured
    assert run_cli(*args, "--check", "--docker-image", HERE) == 0


# -- upload-model checks what it sends (issue 21) ------------------------------------------------
def _refused(daily, run_dir, capsys, pkl, *extra) -> str:
    code = run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", HERE, *extra))
    err = capsys.readouterr().err
    assert code == 1, err
    assert not daily.model_uploads and not (run_dir / "model_uploads.log").exists()
    return err


def test_upload_model_refuses_a_truncated_pickle(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    good = export_model(run_dir, tmp_path / "good.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good[: len(good) // 2])
    err = _refused(daily, run_dir, capsys, cut)
    assert str(cut) in err and "does not unpickle" in err and "export-model" in err


def test_upload_model_refuses_a_csv_renamed_pkl(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    csv = tmp_path / "predictions.pkl"
    csv.write_text("id,prediction\nn1,0.5\n", encoding="utf-8")
    err = _refused(daily, run_dir, capsys, csv)
    assert str(csv) in err and "does not unpickle" in err and "export-model" in err


def test_upload_model_refuses_a_function_of_three_parameters(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    pkl = _pickled(tmp_path, "three", BAD_PREDICTS["three"][0])
    err = _refused(daily, run_dir, capsys, pkl)
    assert str(pkl) in err and "one or two parameters" in err


def test_upload_model_refuses_another_runs_export_unless_forced(
    daily, finished_run, tmp_path, capsys
):
    """example-scripts #150: the export of another run is the wrong model."""
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    other = tmp_path / "other"
    build_run(other, finished_run["dataset"], VARIANTS["ranked"])
    wrong = export_model(other, tmp_path / "wrong.pkl")
    assert run_fingerprint(other) != run_fingerprint(run_dir)
    err = _refused(daily, run_dir, capsys, wrong)
    assert str(wrong) in err and "another run" in err and "--force" in err
    # a pickle not made by export-model at all
    foreign = _pickled(tmp_path, "foreign", lambda live: pd.DataFrame({"p": 0.5}, index=live.index))
    err = _refused(daily, run_dir, capsys, foreign)
    assert "not written by export-model" in err
    # --force sends it (it still passes the runner's checks) and says so
    args = _upload_args(run_dir, "--pickle", str(wrong), "--docker-image", HERE, "--force")
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "warning (--force)" in out and "check passed" in out
    (entry,) = [json.loads(x) for x in (run_dir / "model_uploads.log").read_text().splitlines()]
    assert entry["forced"] is True and entry["run_fingerprint"] == run_fingerprint(other)


def test_upload_model_refuses_another_pythons_image_unless_forced(
    daily, finished_run, tmp_path, capsys
):
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    pkl = export_model(run_dir, tmp_path / "m.pkl")
    code = run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", OTHER))
    err = capsys.readouterr().err
    assert code == 1 and f"made with {HERE}" in err and str(pkl) in err
    assert not daily.model_uploads
    assert run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", HERE)) == 0
    assert len(daily.model_uploads) == 1
    (entry,) = [json.loads(x) for x in (run_dir / "model_uploads.log").read_text().splitlines()]
    assert entry["run_fingerprint"] == run_fingerprint(run_dir) and entry["forced"] is False


def test_upload_model_checks_an_example_predictions_run_with_numerais_benchmark_file(
    daily, finished_run, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    build_run(run_dir, finished_run["dataset"], VARIANTS["example-predictions"])
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    assert run_cli(*_upload_args(run_dir, "--docker-image", HERE)) == 0
    out = capsys.readouterr().out
    assert EXAMPLE_BENCHMARK in out and "check passed" in out
    assert daily.model_uploads[0]["content"] == (run_dir / "model.pkl").read_bytes()


def test_check_runs_with_the_python_it_is_given(finished_run, tmp_path, capsys):
    """--runner-python: e.g. a venv with the pins of Numerai's image; the report names the
    versions of the Python that ran it."""
    out = tmp_path / "m.pkl"
    args = ("export-model", "--run-dir", str(finished_run["run_dir"]), "--out", str(out), "--check")
    assert run_cli(*args, "--runner-python", sys.executable) == 0
    assert f"with python {sys.version.split()[0]}" in capsys.readouterr().out
    assert run_cli(*args, "--runner-python", str(tmp_path / "no-python")) == 1
    assert "--runner-python" in capsys.readouterr().err


# -- notebook 08's target ensemble ---------------------------------------------------------------
def _write_ensemble(run_dir: Path, data, weights) -> dict:
    """What notebook 08 writes: one small model per target, ensemble_submission.csv and
    ensemble.json (with the same savers, so each is fingerprinted as 08 records it)."""
    from nbutils.ensemble import target_ensemble
    from nbutils.run.artifacts import save_json
    from nbutils.submission import build_submission, write_submission
    from nbutils.train import SEED_PARAMS, predict, save_target_models, train_targets

    spec = FeatureSpec.load(run_dir / "feature_spec.json")
    train_x, features = spec.apply(data.train, data.feature_groups)
    targets = ["target", "target_cyrusd_20"]
    params = {**SEED_PARAMS, "n_estimators": 8, "learning_rate": 0.1}
    models = train_targets(train_x, features, targets, params=params, seeds=(0,), progress=False)
    paths = save_target_models(models, run_dir / "ensemble_models")
    live = data.live[["era"]].copy()
    live_x = spec.apply(data.live, data.feature_groups)[0]
    for target, model in models.items():
        live[target] = predict(model, live_x).to_numpy()
    if all(w >= 0 for w in weights):
        ensemble = target_ensemble(live, targets, weights=weights)
        submission = build_submission(ensemble, data, rank_per_era=True)
        write_submission(submission, run_dir / "ensemble_submission.csv")
    save_json(
        {
            "targets": targets,
            "weights": weights,
            "model_dir": "ensemble_models",
            "model_files": {t: p.name for t, p in paths.items()},
        },
        run_dir / "ensemble.json",
    )
    return {"models": models, "spec": spec}


def test_the_ensembles_pickle_passes_the_harness_and_is_the_ranked_weighted_mean(
    finished_run, tmp_path
):
    from scipy.stats import rankdata

    from nbutils.train import predict

    run_dir = copy_run(finished_run, tmp_path)
    data = finished_run["data"]
    made = _write_ensemble(run_dir, data, [1.0, 3.0])
    out = tmp_path / "ensemble.pkl"
    export_model(run_dir, out, ensemble=True)
    assert exported_metadata(out)["ensemble"] is True
    saved = tmp_path / "pickle_predictions.parquet"
    report = check_pickle(out, run_dir=run_dir, save_predictions=saved)  # compares with submit's
    assert report.ok, report.describe()
    got = pd.read_parquet(saved)["prediction"]
    live_x = made["spec"].apply(data.live, data.feature_groups)[0]
    expected = np.zeros(len(data.live))
    for model, weight in zip(made["models"].values(), [1.0, 3.0], strict=True):
        raw = predict(model, live_x).to_numpy()
        expected += weight * (rankdata(raw) - 0.5) / len(raw)  # the live data is one era
    expected /= 4.0
    submitted = (rankdata(expected) - 0.5) / len(expected)  # 08's submission: ranked again
    values = got.loc[data.live.index].to_numpy()
    # rows whose weighted mean ties another's in exact arithmetic may be ordered by the last bit
    group = np.isclose(expected[:, None], expected[None, :], rtol=0, atol=1e-12).sum(axis=1)
    tied = group > 1
    assert (~tied).sum() > len(expected) // 2
    np.testing.assert_allclose(values[~tied], submitted[~tied], atol=1e-12)
    # a tie group takes the same ranks however its rows are ordered: equal sums
    for value in np.unique(expected[tied].round(12)):
        rows = np.isclose(expected, value, rtol=0, atol=1e-12)
        assert values[rows].sum() == pytest.approx(submitted[rows].sum(), abs=1e-12)
    plain = tmp_path / "model.pkl"
    export_model(run_dir, plain)
    assert exported_metadata(plain)["ensemble"] is False


def test_the_ensemble_without_ensemble_json_or_with_bad_weights_is_refused(finished_run, tmp_path):
    from nbutils.daily.run import load_run

    run_dir = copy_run(finished_run, tmp_path)
    with pytest.raises(DailyError, match="run 08_target_ensemble.ipynb"):
        load_run(run_dir, ensemble=True)
    _write_ensemble(run_dir, finished_run["data"], [1.0, -1.0])
    with pytest.raises(DailyError, match="ensemble.json is not valid"):
        export_model(run_dir, tmp_path / "x.pkl", ensemble=True)


# -- upload-model --ensemble, and the ensemble's fingerprints -----------------------------------
ENSEMBLE_FILES = (
    "ensemble.json",
    "ensemble_models/model_target.txt",
    "ensemble_models/model_target_cyrusd_20.txt",
    "ensemble_submission.csv",
)


@pytest.fixture(scope="module")
def ensemble_run(finished_run, tmp_path_factory):
    """The finished run with notebook 08's outputs, written by the savers 08 uses."""
    root = tmp_path_factory.mktemp("ensemble")
    run_dir = copy_run(finished_run, root)
    _write_ensemble(run_dir, finished_run["data"], [1.0, 3.0])
    return {**finished_run, "run_dir": run_dir}


def test_notebook_08s_outputs_are_fingerprinted_when_written(ensemble_run):
    from nbutils.run.fingerprints import file_sha256, read_manifest

    run_dir = ensemble_run["run_dir"]
    manifest = read_manifest(run_dir)
    for name in ENSEMBLE_FILES:
        assert manifest[name]["notebook"] == "08_target_ensemble.ipynb", name
        assert manifest[name]["sha256"] == file_sha256(run_dir / name), name


def test_upload_model_ensemble_exports_checks_and_uploads_the_ensemble(
    daily, ensemble_run, tmp_path, capsys
):
    run_dir = copy_run(ensemble_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    assert run_cli(*_upload_args(run_dir, "--docker-image", HERE, "--ensemble")) == 0
    out = capsys.readouterr().out
    assert "check passed" in out and "model upload id model-upload-1" in out
    pkl = run_dir / "ensemble.pkl"
    (upload,) = daily.model_uploads
    assert upload["content"] == pkl.read_bytes() and not (run_dir / "model.pkl").exists()
    assert exported_metadata(pkl)["ensemble"] is True
    (entry,) = [json.loads(x) for x in (run_dir / "model_uploads.log").read_text().splitlines()]
    assert entry["ensemble"] is True and entry["forced"] is False
    assert entry["run_fingerprint"] == run_fingerprint(run_dir, ensemble=True)
    assert run_fingerprint(run_dir, ensemble=True) != run_fingerprint(run_dir)
    assert entry["sha256"] == hashlib.sha256(upload["content"]).hexdigest()


def test_upload_model_ensemble_checks_a_given_pickle_like_a_single_model(
    daily, ensemble_run, tmp_path, capsys
):
    run_dir = copy_run(ensemble_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    pkl = export_model(run_dir, tmp_path / "ens.pkl", ensemble=True)
    args = _upload_args(run_dir, "--pickle", str(pkl), "--docker-image", HERE, "--ensemble")
    assert run_cli(*args) == 0
    assert "check passed" in capsys.readouterr().out
    assert daily.model_uploads[0]["content"] == pkl.read_bytes()
    # a truncated copy of it is refused before anything is sent, as for a single model
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(pkl.read_bytes()[:1000])
    err = _refused_again(daily, run_dir, capsys, cut, "--ensemble")
    assert str(cut) in err and "does not unpickle" in err


def _refused_again(daily, run_dir, capsys, pkl, *extra) -> str:
    """Like ``_refused``, for a run that may already have uploaded: nothing more is sent."""
    before = len(daily.model_uploads)
    log = run_dir / "model_uploads.log"
    lines = log.read_text() if log.exists() else ""
    code = run_cli(*_upload_args(run_dir, "--pickle", str(pkl), "--docker-image", HERE, *extra))
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(daily.model_uploads) == before
    assert (log.read_text() if log.exists() else "") == lines
    return err


def test_upload_model_ensemble_refuses_a_run_without_an_ensemble(
    daily, finished_run, tmp_path, capsys
):
    run_dir = copy_run(finished_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    code = run_cli(*_upload_args(run_dir, "--docker-image", HERE, "--ensemble"))
    err = capsys.readouterr().err
    assert code == 1 and "ensemble.json" in err and "run 08_target_ensemble.ipynb" in err
    assert "leave out --ensemble" in err
    assert not daily.model_uploads and not (run_dir / "ensemble.pkl").exists()


def test_upload_model_ensemble_refuses_a_missing_ensemble_json(
    daily, ensemble_run, tmp_path, capsys
):
    run_dir = copy_run(ensemble_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    pkl = export_model(run_dir, tmp_path / "ens.pkl", ensemble=True)
    (run_dir / "ensemble.json").unlink()
    code = run_cli(*_upload_args(run_dir, "--docker-image", HERE, "--ensemble"))
    err = capsys.readouterr().err
    assert code == 1 and f"no {run_dir / 'ensemble.json'}" in err
    assert "run 08_target_ensemble.ipynb" in err
    # a pickle exported before it went is refused too: the run has no ensemble to compare with
    err = _refused_again(daily, run_dir, capsys, pkl, "--ensemble")
    assert "ensemble.json" in err
    assert not daily.model_uploads


@pytest.mark.parametrize("name", ENSEMBLE_FILES)
def test_every_daily_command_refuses_an_ensemble_file_changed_since_notebook_08(
    name, daily, ensemble_run, tmp_path, capsys
):
    """A model under ensemble_models/ replaced by another valid model, ensemble.json with other
    weights, an edited ensemble_submission.csv: submit, export-model and upload-model --ensemble
    name the file, notebook 08 and ``adopt``. (Before, the changed file was used silently.)"""
    run_dir = copy_run(ensemble_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    exported = export_model(run_dir, tmp_path / "before.pkl", ensemble=True)
    path = run_dir / name
    if name == "ensemble.json":
        raw = json.loads(path.read_text())
        raw["weights"] = [3.0, 1.0]
        path.write_text(json.dumps(raw))
    elif name.startswith("ensemble_models/"):
        other = next(f for f in ENSEMBLE_FILES[1:3] if f != name)
        shutil.copyfile(run_dir / other, path)  # a valid model, but not this target's
    else:
        path.write_text(path.read_text().replace("0.", "0.9", 1))

    def refused(*args: str) -> str:
        code = run_cli(*args)
        err = capsys.readouterr().err
        assert code == 1, err
        assert name in err and "08_target_ensemble.ipynb" in err
        assert f"python -m nbutils adopt {name} --run-dir" in err
        return err

    refused("submit", *base.submit_args(run_dir, tmp_path, "--ensemble"))
    assert not daily.submissions and not (run_dir / "submissions.log").exists()
    out = tmp_path / "after.pkl"
    refused("export-model", "--run-dir", str(run_dir), "--out", str(out), "--ensemble")
    assert not out.exists()
    refused(*_upload_args(run_dir, "--docker-image", HERE, "--ensemble"))
    refused(*_upload_args(run_dir, "--pickle", str(exported), "--docker-image", HERE, "--ensemble"))
    assert not daily.model_uploads and not (run_dir / "model_uploads.log").exists()
    # the single model is not concerned
    assert export_model(run_dir, tmp_path / "single.pkl").is_file()
    # adopting the file on purpose records it; the pickle exported before is then another run's
    assert run_cli("adopt", name, "--run-dir", str(run_dir)) == 0
    assert f"recorded in {run_dir / 'fingerprints.json'}" in capsys.readouterr().out
    if name != "ensemble_submission.csv":  # the submission file does not make the pickle
        err = _refused_again(daily, run_dir, capsys, exported, "--ensemble")
        assert "the run changed since" in err
    assert run_cli(*_upload_args(run_dir, "--docker-image", HERE, "--ensemble")) == 0
    assert len(daily.model_uploads) == 1


def test_upload_model_refuses_the_single_model_for_the_ensemble_and_back_even_forced(
    daily, ensemble_run, tmp_path, capsys
):
    run_dir = copy_run(ensemble_run, tmp_path)
    daily.docker_images.setdefault(HERE, "44444444-4444-4444-8444-444444444444")
    single = export_model(run_dir, tmp_path / "single.pkl")
    ensemble = export_model(run_dir, tmp_path / "ensemble.pkl", ensemble=True)
    err = _refused_again(daily, run_dir, capsys, single, "--ensemble", "--force")
    assert str(single) in err and "holds the run's model.txt, not notebook 08's ensemble" in err
    assert "--ensemble" in err
    err = _refused_again(daily, run_dir, capsys, ensemble, "--force")
    assert str(ensemble) in err and "holds notebook 08's ensemble, not the run's model.txt" in err
    assert "add --ensemble" in err


def test_adopt_checks_an_ensemble_model_before_recording_it(ensemble_run, tmp_path, capsys):
    from nbutils.run.fingerprints import read_manifest

    run_dir = copy_run(ensemble_run, tmp_path)
    name = "ensemble_models/model_target.txt"
    before = read_manifest(run_dir)[name]
    (run_dir / name).write_text("not a model", encoding="utf-8")
    assert run_cli("adopt", name, "--run-dir", str(run_dir)) == 1
    assert "model_target.txt" in capsys.readouterr().err
    assert read_manifest(run_dir)[name] == before
    # a file outside ensemble_models/ is no artifact of the run
    (run_dir / "ensemble_models" / "notes").mkdir()
    (run_dir / "ensemble_models" / "notes" / "x.txt").write_text("x", encoding="utf-8")
    assert run_cli("adopt", "ensemble_models/notes/x.txt", "--run-dir", str(run_dir)) == 1
    assert "not one of the run's artifacts" in capsys.readouterr().err


def test_submit_ensemble_sends_notebook_08s_submission(daily, ensemble_run, tmp_path, capsys):
    """``submit --ensemble`` on the round's live data (the run's own live here) gives the values
    of 08's ``ensemble_submission.csv`` (written by target_ensemble and build_submission)."""
    from nbutils.submission import read_submission

    run_dir = copy_run(ensemble_run, tmp_path)
    args = base.submit_args(run_dir, tmp_path, "--ensemble", "--dry-run")
    assert run_cli("submit", *args) == 0, capsys.readouterr().err
    sent = read_submission(run_dir / "rounds" / "1001" / "submission.csv").set_index("id")
    written = read_submission(run_dir / "ensemble_submission.csv").set_index("id")
    assert sorted(sent.index) == sorted(written.index)
    np.testing.assert_allclose(
        sent["prediction"].to_numpy(), written.loc[sent.index, "prediction"].to_numpy(), atol=1e-12
    )


def test_an_ensemble_json_naming_models_outside_ensemble_models_is_refused(
    ensemble_run, tmp_path, capsys
):
    """Even adopted, ensemble.json may name only files of ensemble_models/ (each fingerprinted
    as 08's), never e.g. the run's model.txt or a path that leaves the run directory."""
    run_dir = copy_run(ensemble_run, tmp_path)
    path = run_dir / "ensemble.json"
    raw = json.loads(path.read_text())
    for model_dir in (".", "../other_run/ensemble_models"):
        raw["model_dir"] = model_dir
        raw["model_files"] = {t: "model.txt" for t in raw["targets"]}
        path.write_text(json.dumps(raw))
        assert run_cli("adopt", "ensemble.json", "--run-dir", str(run_dir)) == 0
        capsys.readouterr()
        out = tmp_path / "x.pkl"
        code = run_cli("export-model", "--run-dir", str(run_dir), "--out", str(out), "--ensemble")
        err = capsys.readouterr().err
        assert code == 1 and "are not files of ensemble_models/" in err and str(path) in err
        assert not out.exists()
