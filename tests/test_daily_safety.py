"""The daily commands under concurrency, faults and careless names (issue 21, deliverables 3
and 5): the real numerapi client against the local stand-in (tests/fake_numerai.py); no internet.

Faults are the stand-in's knobs (GraphQL posts that are never answered, stalled file bodies) or,
for a full disk after the upload, our own log writer made to fail; numerapi is never mocked
(the "old numerapi" case removes one method from the real client class, as an older release
lacks it).
"""

# ruff: noqa: F811  (the fixtures imported from tests.test_daily are test parameters)
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numerapi.base_api
import pytest

import nbutils.daily.submit as submit_module
from nbutils.daily.client import MIN_NUMERAPI, TIMEOUT_ENV, numerapi_too_old
from nbutils.daily.errors import BusyError, UploadNotRecordedError
from nbutils.daily.names import check_model_name
from nbutils.daily.submit import read_log
from nbutils.run.pipeline import build_parser
from tests.test_daily import (  # noqa: F401  (fixtures)
    MODEL,
    NEUTRAL,
    build_run,
    copy_run,
    daily,
    finished_run,
    run_cli,
    submit,
)


def statuses(run_dir: Path) -> list[str]:
    return [e["status"] for e in read_log(run_dir)]


def run_in_thread(target, limit: float = 20.0) -> tuple[dict, float]:
    """Run ``target()`` in a thread for at most ``limit`` s; its result and the seconds it took."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(code=target()), daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still blocked after {limit} s"
    return result, time.monotonic() - start


@pytest.fixture
def lock_holder():
    """Start a process that holds a run directory's lock (as a concurrent submit would)."""
    started: list[subprocess.Popen] = []

    def hold(run_dir: Path) -> subprocess.Popen:
        code = (
            "import sys, time\nfrom pathlib import Path\n"
            "from nbutils.daily.lock import command_lock\n"
            "with command_lock(Path(sys.argv[1]), 'submit'):\n"
            "    print('locked', flush=True)\n    time.sleep(120)\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


# -- once per round is atomic ------------------------------------------------------------------
def test_two_submits_at_once_upload_once(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--dry-run") == 0  # the round's files are here already
    both = threading.Event()
    calls: list[int] = []
    rounds = daily._server.graphql["rounds"]

    def meet_then_answer(variables: dict, headers: dict):
        """Hold the first caller until a second asks too (at most 2 s): both are past any check
        made before asking for the round."""
        calls.append(1)
        if len(calls) >= 2:
            both.set()
        both.wait(2)
        return rounds(variables, headers)

    daily._server.graphql["rounds"] = meet_then_answer
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda: codes.append(submit(run_dir, tmp_path))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes) == [0, BusyError.exit_code] == [0, 6]
    assert len(daily.submissions) == 1
    assert statuses(run_dir) == ["pending", "confirmed"]
    err = capsys.readouterr().err
    assert "busy" in err and ".nbutils.lock" in err and "submit again" in err


def test_a_busy_run_directory_exits_6_before_writing_anything(
    daily, finished_run, tmp_path, capsys, lock_holder
):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "neutralization.json").unlink()  # submit would recover and write it
    before = sorted(p.name for p in run_dir.iterdir())
    holder = lock_holder(run_dir)
    assert submit(run_dir, tmp_path) == 6
    err = capsys.readouterr().err
    assert f"pid {holder.pid}" in err and "busy" in err
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*before, ".nbutils.lock"])
    assert not (tmp_path / "data").exists()
    assert not daily.submissions and not daily._server.requests  # not even the round was asked


def test_upload_model_takes_the_same_lock(daily, finished_run, tmp_path, capsys, lock_holder):
    run_dir = copy_run(finished_run, tmp_path)
    lock_holder(run_dir)
    code = run_cli("upload-model", "--run-dir", str(run_dir), "--model-name", MODEL)
    assert code == 6 and "upload-model" in capsys.readouterr().err
    assert not (run_dir / "model.pkl").exists() and not daily.model_uploads


def test_uploaded_but_not_recorded_exits_7_and_the_rerun_uploads_nothing(
    daily, finished_run, tmp_path, capsys, monkeypatch
):
    """The disk fills after Numerai accepted the file: said so (exit 7), and the next call asks
    Numerai, records the upload and uploads nothing."""
    run_dir = copy_run(finished_run, tmp_path)
    write = submit_module.append_log

    def disk_full_after_upload(run: Path, entry: dict) -> None:
        if entry["status"] == "confirmed":
            raise OSError(errno.ENOSPC, "No space left on device")
        write(run, entry)

    monkeypatch.setattr(submit_module, "append_log", disk_full_after_upload)
    assert submit(run_dir, tmp_path) == UploadNotRecordedError.exit_code == 7
    err = capsys.readouterr().err
    assert "Numerai accepted the upload of round 1001" in err and "submission-1" in err
    assert "No space left" in err and "Do not upload again" in err
    assert len(daily.submissions) == 1 and statuses(run_dir) == ["pending"]

    monkeypatch.setattr(submit_module, "append_log", write)  # space freed
    assert submit(run_dir, tmp_path) == 0
    assert "did reach Numerai (submission submission-1)" in capsys.readouterr().out
    assert len(daily.submissions) == 1
    pending, confirmed = read_log(run_dir)
    assert confirmed["status"] == "confirmed" and confirmed["submission_id"] == "submission-1"
    assert confirmed["recovered"] is True and confirmed["sha256"] == pending["sha256"]
    assert submit(run_dir, tmp_path) == 0  # and from now on: already submitted
    assert "already submitted round 1001" in capsys.readouterr().out
    assert len(daily.submissions) == 1


def test_a_log_that_cannot_be_written_uploads_nothing(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "submissions.log").mkdir()  # not writable as a file: an OSError on append
    assert submit(run_dir, tmp_path) == 1
    err = capsys.readouterr().err
    assert "submissions.log" in err and "nothing uploaded" in err
    assert not daily.submissions and not daily._server.graphql_requests("submission_upload_auth")


# -- names never become paths ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../submission", "../../../x", "a/b", "my model", "", "  "])
def test_model_names_are_checked_and_never_paths(daily, finished_run, tmp_path, capsys, name):
    run_dir = copy_run(finished_run, tmp_path)
    (run_dir / "submission.csv").write_text("the run's own file\n")
    code = run_cli(
        "submit", "--run-dir", str(run_dir), "--model-name", name, "--data-dir", str(tmp_path / "d")
    )
    err = capsys.readouterr().err
    assert code == 1 and "--model-name" in err
    assert (run_dir / "submission.csv").read_text() == "the run's own file\n"
    assert not (run_dir / "rounds").exists() and not (tmp_path / "x.csv").exists()
    assert not list(tmp_path.glob("*.csv")) and not daily._server.requests
    for command in (
        ["scores", "--out", str(tmp_path / "s.png")],
        ["upload-model", "--run-dir", str(run_dir)],
    ):
        assert run_cli(*command, "--model-name", name) == 1
        assert "--model-name" in capsys.readouterr().err


def test_model_name_rules():
    assert check_model_name("my_model_2") == "my_model_2"
    with pytest.raises(Exception, match="lowercase: did you mean 'my_model'"):
        check_model_name("MY_MODEL")
    with pytest.raises(Exception, match="only lowercase letters, digits and underscores"):
        check_model_name("my-model")


def test_the_submission_file_does_not_carry_the_model_name(daily, finished_run, tmp_path):
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    assert [p.name for p in (run_dir / "rounds" / "1001").iterdir()] == ["submission.csv"]


def test_run_refuses_an_empty_run_dir(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "--run-dir", ""])
    assert info.value.code == 2
    assert "--run-dir: is empty" in capsys.readouterr().err


def test_submit_refuses_an_empty_run_dir(daily, tmp_path, capsys):
    assert run_cli("submit", "--run-dir", "", "--model-name", MODEL) == 1
    assert "--run-dir is empty" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # the working directory (tmp_path) is untouched


def test_submit_refuses_an_empty_data_dir(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--data-dir", "") == 1  # the last --data-dir wins
    assert "--data-dir is empty" in capsys.readouterr().err
    assert not (run_dir / "rounds").exists() and not daily._server.requests


# -- per-round downloads apart from the run's dataset ------------------------------------------
def test_submit_never_edits_the_runs_dataset(daily, finished_run, tmp_path, capsys):
    dataset = tmp_path / "own" / "v5.2"
    shutil.copytree(finished_run["dataset"], dataset)
    run_dir = tmp_path / "run"
    build_run(run_dir, dataset, NEUTRAL)
    before = {p.name: p.read_bytes() for p in dataset.iterdir()}
    changed = json.loads(daily._server.files["v5.2/features.json"])
    changed["feature_sets"]["new_set"] = []
    daily._server.files["v5.2/features.json"] = json.dumps(changed).encode()

    assert run_cli("submit", "--run-dir", str(run_dir), "--model-name", MODEL) == 0
    out = capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in dataset.iterdir()} == before  # nothing added either
    here = run_dir / "rounds" / "1001"
    assert sorted(p.name for p in here.iterdir()) == [
        "features.json",
        "live.parquet",
        "submission.csv",
    ]
    assert json.loads((here / "features.json").read_text()) == changed
    assert "differs from the run's dataset" in out and len(daily.submissions) == 1


# -- timeouts ----------------------------------------------------------------------------------
def test_a_server_that_never_answers_fails_within_the_timeout(
    daily, finished_run, tmp_path, capsys, monkeypatch
):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    daily._server.hang_post = True
    result, seconds = run_in_thread(lambda: submit(run_dir, tmp_path))
    assert result["code"] == 5 and seconds < 10
    err = capsys.readouterr().err
    assert "did not answer within 1 s" in err and TIMEOUT_ENV in err
    assert not daily.submissions and not (run_dir / "submissions.log").exists()


def test_a_stalled_download_fails_within_the_timeout(
    daily, finished_run, tmp_path, capsys, monkeypatch
):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    daily._server.stall["/files/v5.2/live.parquet"] = 100
    result, seconds = run_in_thread(lambda: submit(run_dir, tmp_path))
    assert result["code"] == 5 and seconds < 10
    err = capsys.readouterr().err
    assert "live.parquet" in err and "within the timeout" in err
    assert not list((tmp_path / "data").rglob("*live*"))  # nothing partial kept


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_a_bad_timeout_setting_is_refused(
    daily, finished_run, tmp_path, capsys, monkeypatch, value
):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.setenv(TIMEOUT_ENV, value)
    assert submit(run_dir, tmp_path) == 1
    assert f"{TIMEOUT_ENV}={value!r}" in capsys.readouterr().err


# -- damaged cache -----------------------------------------------------------------------------
def test_a_truncated_cached_live_file_is_downloaded_again(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    live = tmp_path / "data" / "v5.2" / "rounds" / "1001" / "live.parquet"
    whole = live.read_bytes()
    live.write_bytes(whole[: len(whole) // 2])
    capsys.readouterr()
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"{live} is damaged" in out and "downloading it again" in out
    assert live.read_bytes() == whole


def test_a_cached_live_file_that_does_not_decode_is_named(daily, finished_run, tmp_path, capsys):
    """The footer reads but the pages do not: the error names the file and the fix."""
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    live = tmp_path / "data" / "v5.2" / "rounds" / "1001" / "live.parquet"
    body = bytearray(live.read_bytes())
    body[4:2004] = bytes(2000)  # the first column chunks zeroed, the footer intact
    live.write_bytes(bytes(body))
    capsys.readouterr()
    assert submit(run_dir, tmp_path, "--dry-run") == 1
    err = capsys.readouterr().err
    assert str(live) in err and "Delete it and run submit again" in err


# -- an old numerapi ---------------------------------------------------------------------------
def test_an_api_missing_from_an_old_numerapi_is_not_a_server_error(
    daily, finished_run, tmp_path, capsys, monkeypatch
):
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.delattr(numerapi.base_api.Api, "list_rounds")  # numerapi < 2.23 has none
    assert submit(run_dir, tmp_path) == 1
    err = capsys.readouterr().err
    assert "too old" in err and f"numerapi >= {MIN_NUMERAPI}" in err and "'list_rounds'" in err
    assert "server error" not in err


def test_an_old_numerapi_outside_a_call_is_reported_too(
    daily, finished_run, tmp_path, capsys, monkeypatch
):
    """``upload-model`` reads ``napi.model_upload_docker_images`` before calling it."""
    run_dir = copy_run(finished_run, tmp_path)
    monkeypatch.delattr(numerapi.base_api.Api, "model_upload_docker_images")
    code = run_cli("upload-model", "--run-dir", str(run_dir), "--model-name", MODEL)
    err = capsys.readouterr().err
    assert code == 1 and "too old" in err and "'model_upload_docker_images'" in err


def test_our_own_attribute_errors_are_not_blamed_on_numerapi():
    try:
        _ = object().missing  # type: ignore[attr-defined]
    except AttributeError as err:
        assert numerapi_too_old(err) is None


def test_a_torn_last_log_line_is_left_out_and_cut_before_the_next(tmp_path):
    """A line cut short by a full disk (no newline) reads as absent; the next append removes it
    and keeps every complete line."""
    from nbutils.daily.submit import append_log

    append_log(tmp_path, {"status": "pending", "round": 1, "model": "a"})
    with open(tmp_path / "submissions.log", "a") as handle:
        handle.write('{"status": "confirmed", "rou')
    assert read_log(tmp_path) == [{"status": "pending", "round": 1, "model": "a"}]
    append_log(tmp_path, {"status": "confirmed", "round": 1, "model": "a"})
    assert statuses(tmp_path) == ["pending", "confirmed"]
    assert (tmp_path / "submissions.log").read_text().count("\n") == 2


def test_read_live_names_a_file_that_is_not_parquet(finished_run, tmp_path):
    from nbutils.daily.errors import DailyError
    from nbutils.daily.run import load_run
    from nbutils.daily.submit import read_live

    empty = tmp_path / "live.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DailyError, match="live.parquet is not a readable parquet file.*Delete it"):
        read_live(empty, load_run(finished_run["run_dir"]))


def test_a_damaged_cached_features_json_is_downloaded_again(daily, finished_run, tmp_path, capsys):
    run_dir = copy_run(finished_run, tmp_path)
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    cached = tmp_path / "data" / "v5.2" / "rounds" / "1001" / "features.json"
    whole = cached.read_bytes()
    cached.write_bytes(whole[:10])
    capsys.readouterr()
    assert submit(run_dir, tmp_path, "--dry-run") == 0
    assert f"{cached} is damaged" in capsys.readouterr().out
    assert cached.read_bytes() == whole


def test_the_library_upload_has_the_timeout_too(daily, finished_run, tmp_path, monkeypatch):
    """``nbutils.submission.upload_submission`` (notebook 05's upload) uses the same client."""
    from nbutils.errors import SubmissionError
    from nbutils.submission import upload_submission, write_submission

    live = finished_run["expected"].loc[finished_run["data"].live.index]
    path = write_submission(live, tmp_path / "live.csv")
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    daily._server.hang_post = True
    errors: list[Exception] = []

    def upload() -> None:
        try:
            upload_submission(path, model_name=MODEL, retries=1)
        except SubmissionError as err:
            errors.append(err)

    _, seconds = run_in_thread(upload)
    assert seconds < 10 and "did not answer within 1 s" in str(errors[0])
