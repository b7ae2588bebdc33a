"""Tests for ``python -m nbutils submit`` (nbutils.daily): the real numerapi client against the
local stand-in (tests/fake_numerai.py, ``enable_daily``); no internet.

A finished run is built cheaply with the library (tiny synthetic data, a 2-seed model of 15
trees), as notebooks 01, 02, 03 and 06 would write it, not by running the notebook chain.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numerapi.utils
import numpy as np
import pandas as pd
import pytest

import nbutils.daily.client
from nbutils.daily.errors import DailyError, KeysError, NumeraiUnavailableError, RoundClosedError
from nbutils.daily.run import DailySettings, load_settings, notebook_parameters, save_settings
from nbutils.daily.submit import LOG_NAME, read_log
from nbutils.data import load_data
from nbutils.features import FeatureSpec
from nbutils.neutralize import neutralize
from nbutils.run.artifacts import save_data_info, save_predictions
from nbutils.run.pipeline import main
from nbutils.submission import build_submission
from nbutils.train import SEED_PARAMS, predict, save_model, train_lgbm

PUBLIC = "PUBdaily7Qx"
SECRET = 'SEC$^.*+?()[]{}|\\"daily'  # regex and JSON special characters
MODEL = "my_model"


# -- a finished run ----------------------------------------------------------------------------
def build_run(run_dir: Path, dataset_dir: Path, settings: DailySettings | None) -> dict:
    """Write data.json, feature_spec.json, model.txt, predictions.parquet (and 06's submission)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(dataset_dir)
    save_data_info(
        run_dir, data, dataset_dir, data_source="synthetic", feature_set=None, era_step=1
    )
    spec = FeatureSpec(group_stats=True, interactions=list(data.features[:3]))
    spec.save(run_dir / "feature_spec.json")
    train_df, features = spec.apply(data.train, data.feature_groups)
    params = {**SEED_PARAMS, "n_estimators": 15, "learning_rate": 0.1}
    model = train_lgbm(train_df, features, params=params, seeds=(0, 1), progress=False)
    save_model(model, run_dir / "model.txt")
    frames = []
    for frame in (data.validation, data.live):
        out = frame[["era", "data_type"]].copy()
        out["prediction"] = predict(model, spec.apply(frame, data.feature_groups)[0])
        frames.append(out)
    predictions = pd.concat(frames)
    save_predictions(predictions, run_dir)
    expected = None
    if settings is not None:
        save_settings(run_dir, settings)
        if settings.neutralize:  # notebook 06's cells, on validation and live together
            unscored = pd.concat([data.validation, data.live])[["era", *data.features]]
            unscored["prediction"] = predictions["prediction"]
            neutralizers = data.features
            if settings.neutralize_against == "example_predictions":
                unscored["example_prediction"] = data.example_predictions.reindex(unscored.index)
                neutralizers = ["example_prediction"]
            era_col = "era" if settings.per_era else None
            unscored["neutralized"] = neutralize(
                unscored,
                ["prediction"],
                neutralizers,
                proportion=settings.proportion,
                era_col=era_col,
            )["prediction"]
            expected = build_submission(unscored["neutralized"], data, rank_per_era=True)
        else:
            expected = build_submission(predictions["prediction"], data, settings.rank_per_era)
    return {"data": data, "predictions": predictions, "expected": expected, "model": model}


NEUTRAL = DailySettings(
    neutralize=True,
    proportion=0.5,
    neutralize_against="features",
    per_era=True,
    rank_per_era=True,
    source="test",
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run on the tiny synthetic data, neutralized 50 % against features per era."""
    from nbutils.data import TINY_SIZES, make_synthetic_dataset

    root = tmp_path_factory.mktemp("daily")
    dataset = make_synthetic_dataset(
        root / "data", layout="v5", seed=0, version="v5.2", **TINY_SIZES
    )
    run_dir = root / "run"
    built = build_run(run_dir, dataset, NEUTRAL)
    return {"run_dir": run_dir, "dataset": dataset, **built}


def copy_run(finished_run, tmp_path) -> Path:
    """A private copy of the finished run's artifacts (the log and rounds start empty)."""
    import shutil

    target = tmp_path / "run"
    shutil.copytree(finished_run["run_dir"], target)
    return target


@pytest.fixture
def daily(fake_numerai, monkeypatch, finished_run, tmp_path):
    """The stand-in with an open round 1001 serving the run's dataset files; keys set."""
    server = fake_numerai
    state = server.enable_daily(public_id=PUBLIC, secret_key=SECRET, models={MODEL: "model-id-1"})
    state.open_round(1001)
    for path in finished_run["dataset"].iterdir():
        server.files[f"v5.2/{path.name}"] = path.read_bytes()
    monkeypatch.setattr(numerapi.utils, "time", types.SimpleNamespace(sleep=lambda s: None))
    monkeypatch.setattr(nbutils.daily.client, "sleep", lambda s: None)  # our client's retries
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", PUBLIC)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", SECRET)
    monkeypatch.chdir(tmp_path)  # no project .env in reach
    return state


def key_forms() -> list[str]:
    """The keys as they could leak: raw, JSON-escaped, and the Authorization header."""
    forms = [PUBLIC, SECRET, json.dumps(SECRET)[1:-1], f"{PUBLIC}${SECRET}"]
    return forms


def assert_no_keys_anywhere(*texts: str, dirs: tuple[Path, ...] = ()) -> None:
    for text in texts:
        for form in key_forms():
            assert form not in text
    for directory in dirs:
        for path in directory.rglob("*"):
            if path.is_file():
                blob = path.read_bytes()
                for form in key_forms():
                    assert form.encode() not in blob, path


def confirmed(run_dir: Path) -> list[dict]:
    """The log's confirmed uploads (each follows its pending line)."""
    return [e for e in read_log(run_dir) if e.get("status") == "confirmed"]


def run_cli(*args: str) -> int:
    return main(list(args))


def submit_args(run_dir: Path, tmp_path: Path, *extra: str) -> tuple[str, ...]:
    """The arguments of ``submit`` for the test model, data under ``tmp_path / "data"``."""
    data_dir = tmp_path / "data"
    return ("--run-dir", str(run_dir), "--model-name", MODEL, "--data-dir", str(data_dir), *extra)


def submit(run_dir: Path, tmp_path: Path, *extra: str) -> int:
    """``python -m nbutils submit`` for the test model, data under ``tmp_path / "data"``."""
    return run_cli("submit", *submit_args(run_dir, tmp_path, *extra))


# -- submit ------------------------------------------------------------------------------------
def test_submit_once_then_nothing_then_force(daily, finished_run, tmp_path, capsys, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    data_dir = tmp_path / "data"
    args = ("submit", "--run-dir", str(run_dir), "--model-name", MODEL, "--data-dir", str(data_dir))
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "submission id submission-1" in out
    assert len(daily.submissions) == 1
    sub = daily.submissions[0]
    assert sub["round"] == 1001 and sub["model_id"] == "model-id-1"
    uploaded = pd.read_csv(pd.io.common.BytesIO(sub["content"]), dtype={"id": str})
    expected = finished_run["expected"]
    live_ids = finished_run["data"].live.index
    # the same values the run's notebook 06 computed for its live rows
    np.testing.assert_allclose(
        uploaded.set_index("id")["prediction"], expected.loc[live_ids, "prediction"], atol=1e-9
    )
    assert list(uploaded["id"]) == list(live_ids)
    pending, entry = read_log(run_dir)  # logged pending before the upload, confirmed after
    assert pending["status"] == "pending" and "submission_id" not in pending
    assert entry["status"] == "confirmed" and entry["sha256"] == pending["sha256"]
    assert entry["round"] == 1001 and entry["model"] == MODEL
    assert entry["submission_id"] == "submission-1"
    import hashlib

    assert entry["sha256"] == hashlib.sha256(sub["content"]).hexdigest()
    assert entry["utc"].endswith("+00:00")

    # the same round again: nothing uploaded, exit 0, nothing downloaded again
    gets_before = len([r for r in daily._server.requests if r["method"] == "GET"])
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "already submitted round 1001" in out and "--force" in out
    assert len(daily.submissions) == 1
    assert len([r for r in daily._server.requests if r["method"] == "GET"]) == gets_before

    # --force uploads again, and the log keeps both lines
    assert run_cli(*args, "--force") == 0
    assert len(daily.submissions) == 2
    assert [e["submission_id"] for e in confirmed(run_dir)] == ["submission-1", "submission-2"]
    assert confirmed(run_dir)[1]["forced"] is True

    # the next round: a new live file is downloaded, features.json only compared
    daily.open_round(1002)
    assert run_cli(*args) == 0
    out = capsys.readouterr().out
    assert "features.json unchanged" in out and "downloaded" in out
    assert [e["round"] for e in confirmed(run_dir)] == [1001, 1001, 1002]
    assert_no_keys_anywhere(out, caplog.text, dirs=(run_dir, data_dir))


def test_closed_round_uploads_nothing_and_says_when_next_opens(
    daily, finished_run, tmp_path, capsys
):
    run_dir = copy_run(finished_run, tmp_path)
    daily.close_round(next_opens_in_hours=5)
    code = submit(run_dir, tmp_path)
    err = capsys.readouterr().err
    assert code == RoundClosedError.exit_code == 3
    assert "round 1001 closed" in err and "next round opens at" in err
    assert not daily.submissions and not (run_dir / LOG_NAME).exists()
    assert not [r for r in daily._server.requests if r["method"] in ("GET", "PUT")]


def test_dry_run_writes_the_file_and_uploads_nothing(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    code = submit(run_dir, tmp_path, "--dry-run")
    assert code == 0
    assert (run_dir / "rounds" / "1001" / "submission.csv").is_file()
    assert not daily.submissions and not (run_dir / LOG_NAME).exists()
    assert not [r for r in daily._server.requests if r["method"] == "PUT"]
    assert "nothing uploaded" in capsys.readouterr().out


def test_failed_put_is_an_error_not_a_success(daily, finished_run, tmp_path, capsys, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    daily.fail_put = [500]
    code = submit(run_dir, tmp_path)
    captured = capsys.readouterr()
    assert code == NumeraiUnavailableError.exit_code == 5
    assert "HTTP 500" in captured.err
    assert not daily.submissions  # create_submission never called
    assert not daily._server.graphql_requests("create_submission")
    assert [e["status"] for e in read_log(run_dir)] == ["pending"]  # nothing confirmed
    assert "pending line" in captured.err
    assert "submission id" not in captured.out
    assert_no_keys_anywhere(captured.out, captured.err, caplog.text, dirs=(run_dir,))
    # the rerun asks Numerai, which never got the file, and uploads it once
    assert submit(run_dir, tmp_path) == 0
    assert "never reached Numerai" in capsys.readouterr().out
    assert len(daily.submissions) == 1 and daily._server.graphql_requests("submissions")
    assert [e["status"] for e in read_log(run_dir)] == ["pending", "pending", "confirmed"]


def test_rejected_keys_exit_4_without_showing_them(
    daily, finished_run, tmp_path, monkeypatch, capsys, caplog
):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", SECRET + "x")
    code = submit(run_dir, tmp_path)
    captured = capsys.readouterr()
    assert code == KeysError.exit_code == 4
    assert "refused the keys" in captured.err
    assert not daily.submissions and not (run_dir / LOG_NAME).exists()
    for text in (captured.out, captured.err, caplog.text):
        assert SECRET + "x" not in text and PUBLIC not in text


def test_missing_keys_exit_4_and_say_how(daily, finished_run, tmp_path, monkeypatch, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    assert run_cli("submit", "--run-dir", str(run_dir), "--model-name", MODEL) == 4
    assert "NUMERAI_SECRET_KEY" in capsys.readouterr().err


def test_keys_from_dotenv(daily, finished_run, tmp_path, monkeypatch, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    (tmp_path / ".env").write_text(
        f"NUMERAI_PUBLIC_ID={PUBLIC}\nNUMERAI_SECRET_KEY='{SECRET}'\n", encoding="utf-8"
    )
    assert submit(run_dir, tmp_path) == 0
    assert len(daily.submissions) == 1


def test_server_error_exit_5_and_nothing_logged(daily, finished_run, tmp_path, capsys, caplog):
    run_dir = copy_run(finished_run, tmp_path)
    daily._server.fail_post = [500] * 3  # numerapi's own three tries of the first call
    code = submit(run_dir, tmp_path)
    captured = capsys.readouterr()
    assert code == 5
    assert "server error or did not answer" in captured.err
    assert not daily.submissions and not (run_dir / LOG_NAME).exists()
    assert_no_keys_anywhere(captured.out, captured.err, caplog.text)


def test_unknown_model_name_lists_the_account_models(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    code = run_cli(
        "submit",
        "--run-dir",
        str(run_dir),
        "--model-name",
        "nope",
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert code == 1
    assert "no model named 'nope'" in capsys.readouterr().err and not daily.submissions


def test_damaged_live_download_is_not_kept(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    daily._server.files["v5.2/live.parquet"] = b"PAR1" + b"x" * 100 + b"PAR1"
    code = submit(run_dir, tmp_path)
    assert code == 5 and "damaged" in capsys.readouterr().err
    assert not (tmp_path / "data" / "v5.2" / "rounds" / "1001" / "live.parquet").exists()


def test_not_a_run_directory(daily, tmp_path, capsys):
    assert run_cli("submit", "--run-dir", str(tmp_path / "none"), "--model-name", MODEL) == 1
    assert "not a directory" in capsys.readouterr().err


def test_help_lists_every_command_with_one_line(capsys):
    """``python -m nbutils --help`` lists the chain's and the daily round's commands (issue 11)."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "notebooks", "submit", "export-model", "upload-model", "scores"):
        lines = [line for line in out.splitlines() if line.strip().startswith(command + " ")]
        assert len(lines) == 1, (command, out)
        assert len(lines[0].split()) > 2, lines[0]  # the command, then its help text


# -- settings ----------------------------------------------------------------------------------
def _notebook(path: Path, defaults: str, injected: str | None) -> None:
    cells = [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": defaults,
            "outputs": [],
            "execution_count": None,
        }
    ]
    if injected is not None:
        cells.append(
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "source": injected,
                "outputs": [],
                "execution_count": None,
            }
        )
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
        encoding="utf-8",
    )


def test_settings_are_recovered_from_the_executed_notebooks_and_saved(tmp_path):
    _notebook(tmp_path / "05_submission.ipynb", "rank_per_era = False\n", None)
    _notebook(
        tmp_path / "06_neutralization.ipynb",
        'proportion = 0.5  # how much\nneutralize_against = "features"\nper_era = True\n',
        "proportion = 0.75\nper_era = True\n",
    )
    assert notebook_parameters(tmp_path / "06_neutralization.ipynb")["proportion"] == 0.75
    settings = load_settings(tmp_path)
    assert settings == DailySettings(True, 0.75, "features", True, True, "06_neutralization.ipynb")
    saved = json.loads((tmp_path / "neutralization.json").read_text())
    assert saved["proportion"] == 0.75 and saved["neutralize"] is True


def test_without_notebook_06_the_raw_predictions_are_submitted(tmp_path):
    _notebook(tmp_path / "05_submission.ipynb", "rank_per_era = False\n", "rank_per_era = True\n")
    settings = load_settings(tmp_path)
    assert not settings.neutralize and settings.rank_per_era


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"neutralize": true, "proportion": 2.0}', "proportion"),
        ('{"neutralize": true, "neutralize_against": "featurs"}', "neutralize_against"),
        ('{"neutralise": true}', "not valid"),
        ("{not json", "not valid"),
    ],
)
def test_bad_settings_file_is_refused_with_its_name(tmp_path, content, reason):
    (tmp_path / "neutralization.json").write_text(content, encoding="utf-8")
    with pytest.raises(DailyError, match=reason) as info:
        load_settings(tmp_path)
    assert "neutralization.json" in str(info.value)


# -- the round ---------------------------------------------------------------------------------
def test_round_status_between_rounds_names_the_next_opening(fake_numerai):
    from nbutils.daily.round import make_client, round_status

    state = fake_numerai.enable_daily()
    state.upcoming = {
        "number": 7,
        "openTime": "2030-01-01T13:00:00Z",
        "closeStakingTime": "2030-01-02T13:00:00Z",
        "closeTime": "2030-01-02T13:00:00Z",
        "payoutFactor": "1",
    }
    status = round_status(make_client(None))
    assert not status.is_open
    assert "2030-01-01 13:00 UTC" in status.describe()


def test_round_is_closed_once_the_staking_deadline_passed(fake_numerai):
    """numerapi's rule (check_round_open): open while openTime <= now < closeStakingTime."""
    from nbutils.daily.round import make_client, round_status

    state = fake_numerai.enable_daily()
    state.open_round(5)
    assert round_status(make_client(None)).is_open
    state.rounds[-1]["closeStakingTime"] = "2000-01-01T00:00:00Z"
    status = round_status(make_client(None))
    assert not status.is_open and status.number == 5
    assert "see numer.ai" in status.describe()  # no upcoming round announced yet


def test_log_is_append_only_and_a_broken_line_is_reported(tmp_path):
    from nbutils.daily.submit import append_log, previous_submission

    append_log(tmp_path, {"round": 1, "model": "a", "submission_id": "s1"})
    append_log(tmp_path, {"round": 2, "model": "a", "submission_id": "s2"})
    first = (tmp_path / LOG_NAME).read_text().splitlines()[0]
    append_log(tmp_path, {"round": 2, "model": "b", "submission_id": "s3"})
    assert (tmp_path / LOG_NAME).read_text().splitlines()[0] == first
    assert previous_submission(tmp_path, 2, "a")["submission_id"] == "s2"
    assert previous_submission(tmp_path, 3, "a") is None
    with open(tmp_path / LOG_NAME, "a") as handle:
        handle.write("{half\n")
    with pytest.raises(DailyError, match="line 4 is not JSON"):
        previous_submission(tmp_path, 2, "a")


def test_empty_model_name_is_refused(tmp_path, capsys):
    assert run_cli("submit", "--run-dir", str(tmp_path), "--model-name", " ") == 1
    assert "--model-name is empty" in capsys.readouterr().err


def test_a_round_announced_but_not_open_yet(fake_numerai):
    from nbutils.daily.round import make_client, round_status

    state = fake_numerai.enable_daily()
    state.open_round(6)
    state.rounds[-1]["openTime"] = "2031-05-06T13:00:00Z"
    status = round_status(make_client(None))
    assert not status.is_open
    assert status.describe() == "round 6 is not open yet: it opens at 2031-05-06 13:00 UTC"
