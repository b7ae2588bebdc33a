"""Tests for nbutils.submission: build, validate, write, and upload through the real numerapi.

Uploads go through the real numerapi client to the local fake server (fixture ``fake_numerai``).
"""

from __future__ import annotations

import io
import logging
import types
import warnings

import numerapi.utils
import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import tie_kept_rank
from numerai_tools.submissions import validate_submission_numerai

from nbutils.data import NumeraiData
from nbutils.errors import SubmissionError
from nbutils.submission import (
    SubmissionWarning,
    UploadHTTPError,
    build_submission,
    default_backoff,
    expected_ids,
    put_checked,
    read_submission,
    upload_submission,
    validate_submission,
    write_submission,
)
from tests.fake_numerai import GraphQLError

PUBLIC = "PUBLICzq7Xk2Lm9Rw4distinct"
SECRET = "SECRETvB8nT3yH6jP1distinct"
MODEL_ID = "3f1c9a0e-model-uuid"
UPLOAD_PATH = "/upload/abc123"


def frame(ids: list[str], eras: list[str], data_type: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "era": eras,
            "data_type": data_type,
            "feature_a1": rng.integers(0, 5, len(ids)).astype(np.int8),
            "target": np.nan if data_type != "validation" else rng.integers(0, 5, len(ids)) / 4,
        },
        index=pd.Index(ids, name="id"),
    )
    return df


def make_data(layout: str = "v5") -> NumeraiData:
    train = frame([f"t{i}" for i in range(20)], ["0001"] * 10 + ["0002"] * 10, "train", 0)
    # ids deliberately not sorted: the file order must be kept
    val_ids = [f"v{i}" for i in (5, 2, 9, 0, 7, 1, 8, 3, 6, 4)]
    validation = frame(val_ids, ["0101"] * 5 + ["0102"] * 5, "validation", 1)
    live_ids = [f"l{i}" for i in (3, 0, 4, 1, 2, 7, 5, 6)]
    if layout == "legacy":
        live = frame(live_ids, ["era0103"] * 4 + ["eraX"] * 4, "test", 2)
        live.loc[live["era"] == "eraX", "data_type"] = "live"
    else:
        live = frame(live_ids, ["1100"] * 8, "live", 2)
    return NumeraiData(
        train=train,
        validation=validation,
        live=live,
        features=["feature_a1"],
        feature_groups={"a": ["feature_a1"]},
        targets=["target"],
        layout=layout,
    )


def preds_for(data: NumeraiData, seed: int = 0) -> pd.Series:
    ids = data.train.index.append(data.validation.index).append(data.live.index)
    rng = np.random.default_rng(seed)
    return pd.Series(rng.uniform(0.05, 0.95, len(ids)), index=ids)


# -- build -------------------------------------------------------------------------------------
def test_build_v5_keeps_live_ids_in_order():
    data = make_data()
    preds = preds_for(data)
    sub = build_submission(preds, data)
    assert list(sub.columns) == ["prediction"] and sub.index.name == "id"
    assert list(sub.index) == list(data.live.index)
    np.testing.assert_array_equal(sub["prediction"], preds[data.live.index])


def test_build_legacy_validation_then_test_and_live_in_file_order():
    data = make_data("legacy")
    preds = preds_for(data).sample(frac=1.0, random_state=3)  # any order in, file order out
    sub = build_submission(preds, data)
    assert list(sub.index) == list(data.validation.index) + list(data.live.index)
    np.testing.assert_array_equal(sub["prediction"], preds[sub.index])


@pytest.mark.parametrize("layout", ["v5", "legacy"])
def test_rank_per_era_matches_numerai_tools_tie_kept_rank(layout):
    data = make_data(layout)
    preds = preds_for(data) * 10 - 3  # out of (0, 1) before ranking
    preds.iloc[-3:] = preds.iloc[-1]  # ties
    sub = build_submission(preds, data, rank_per_era=True)
    rows = pd.concat([data.validation, data.live]) if layout == "legacy" else data.live
    for _, group in rows.groupby("era"):
        ref = tie_kept_rank(preds[group.index].sort_index().to_frame("p"))["p"][group.index]
        np.testing.assert_allclose(sub.loc[group.index, "prediction"], ref, rtol=1e-12)
    assert ((sub["prediction"] > 0) & (sub["prediction"] < 1)).all()


def test_build_rejects_out_of_range_missing_and_duplicate_predictions():
    data = make_data()
    with pytest.raises(SubmissionError, match="rank_per_era=True"):
        build_submission(preds_for(data) + 1, data)
    with pytest.raises(SubmissionError, match="missing ids: 1"):
        build_submission(preds_for(data).drop("l4"), data)
    preds = preds_for(data)
    with pytest.raises(SubmissionError, match="duplicate id"):
        build_submission(pd.concat([preds, preds.iloc[-1:]]), data)
    with pytest.raises(SubmissionError, match="Series"):
        build_submission(preds.to_frame(), data)


# -- validate ----------------------------------------------------------------------------------
def good(layout: str = "v5") -> tuple[pd.DataFrame, NumeraiData]:
    data = make_data(layout)
    return build_submission(preds_for(data), data).reset_index(), data


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s.iloc[:-1], "missing ids: 1"),
        (lambda s: pd.concat([s, s.iloc[:1]]), "duplicate ids"),
        (lambda s: s.assign(prediction=s["prediction"].where(s.index != 2)), "NaN predictions"),
        (lambda s: s.assign(prediction=s["prediction"].where(s.index != 0, 1.01)), "out of range"),
        (lambda s: s.assign(prediction=s["prediction"].where(s.index != 0, -0.2)), "out of range"),
        (lambda s: s.assign(prediction=0.5), "constant predictions"),
        (lambda s: s.rename(columns={"prediction": "pred"}), "invalid_submission_headers"),
        (lambda s: s.iloc[:0], "empty"),
        (lambda s: s.assign(prediction="0.5"), "must be numbers"),
        (lambda s: s.assign(id=s["id"].where(s.index != 1)), "no id"),
        (lambda s: s.set_index("id").rename_axis("ticker"), "no id"),
    ],
)
def test_each_bad_submission_is_rejected_with_its_reason(mutate, reason):
    sub, data = good()
    validate_submission(sub, data)  # the unmutated one is fine
    with pytest.raises(SubmissionError, match=reason):
        validate_submission(mutate(sub).reset_index(drop=True), data)


def test_values_zero_and_one_are_accepted_as_numerai_does():
    """rank(pct=True), as in Numerai's examples, gives exactly 1.0 for the top row."""
    sub, data = good()
    ranked = sub.assign(prediction=sub["prediction"].rank(pct=True))
    assert ranked["prediction"].max() == 1.0
    validate_submission(ranked, data)
    ends = sub.assign(prediction=sub["prediction"].where(sub.index != 0, 0.0))
    validate_submission(
        ends.assign(prediction=ends["prediction"].where(ends.index != 1, 1.0)), data
    )
    validate_submission_numerai(pd.Series(data.live.index), ranked)  # the reference agrees


def test_extra_ids_are_dropped_with_a_warning_naming_how_many():
    sub, data = good()
    extra = pd.DataFrame({"id": ["zz", "yy"], "prediction": [0.5, 0.4]})
    with pytest.warns(SubmissionWarning, match="dropped 2 id"):
        cleaned = validate_submission(pd.concat([sub, extra], ignore_index=True), data)
    pd.testing.assert_frame_equal(cleaned.reset_index(drop=True), sub.reset_index(drop=True))
    _, _, filtered, invalid = validate_submission_numerai(  # the reference drops them too
        pd.Series(data.live.index), pd.concat([sub, extra], ignore_index=True)
    )
    assert sorted(invalid) == ["yy", "zz"] and len(filtered) == len(sub)


def test_legacy_wrong_order_is_rejected():
    sub, data = good("legacy")
    validate_submission(sub, data)
    swapped = sub.iloc[[1, 0, *range(2, len(sub))]]
    with pytest.raises(SubmissionError, match="wrong order: row 0"):
        validate_submission(swapped, data)
    # the same rows in v5 would be fine (v5 has no order): sorted live ids
    v5_sub, v5 = good("v5")
    validate_submission(v5_sub.sort_values("id"), v5)


def test_validate_accepts_series_and_index_forms():
    sub, data = good()
    validate_submission(sub.rename(columns={"prediction": "probability"}), data)
    validate_submission(sub.set_index("id"), data)
    validate_submission(sub.set_index("id")["prediction"], data)
    assert list(expected_ids(data)) == list(data.live.index)


# -- write -------------------------------------------------------------------------------------
def test_write_submission_round_trip_and_atomic(tmp_path):
    sub, data = good()
    path = write_submission(sub.set_index("id"), tmp_path / "submission.csv")
    text = path.read_text()
    assert text.splitlines()[0] == "id,prediction"
    back = read_submission(path)
    validate_submission(back, data)
    np.testing.assert_allclose(back["prediction"], sub["prediction"], rtol=0, atol=0)
    with pytest.raises(SubmissionError, match="constant"):
        write_submission(sub.assign(prediction=0.5), path)
    assert path.read_text() == text  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]  # no temp file left


def test_read_submission_is_exact_and_warns_of_nothing(tmp_path):
    # 100,000 random doubles written by to_csv come back bit for bit, on pandas 2 and 3, with no
    # deprecation warning (pandas 3 deprecates float_precision, which pandas 2 needs for this)
    rng = np.random.default_rng(0)
    values = rng.random(100_000)
    path = tmp_path / "s.csv"
    pd.DataFrame({"id": [f"n{i}" for i in range(len(values))], "prediction": values}).to_csv(
        path, index=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = read_submission(path)
    assert (back["prediction"].to_numpy() == values).all()


# -- upload through the real numerapi client ---------------------------------------------------
@pytest.fixture
def numerai(fake_numerai, monkeypatch, tmp_path):
    """The fake server with the upload fields; numerapi's own retry sleeps disabled."""
    server = fake_numerai
    state = {"created": []}

    def authorized(headers: dict) -> None:
        if headers.get("Authorization") != f"Token {PUBLIC}${SECRET}":
            # echo the token as a careless server might: it must still not reach any output
            raise GraphQLError(f"Invalid API key: {headers.get('Authorization')}")

    def upload_auth(variables, headers):
        authorized(headers)
        assert variables["modelId"] == MODEL_ID and variables["tournament"] == 8
        return {"filename": f"abc123/{variables['filename']}", "url": server.url + UPLOAD_PATH}

    def create_submission(variables, headers):
        authorized(headers)
        state["created"].append(variables)
        return {"id": "submission-42"}

    def account(variables, headers):
        authorized(headers)
        return {
            "models": [
                {"id": MODEL_ID, "name": "my_model", "tournament": 8},
                {"id": "other", "name": "signals_model", "tournament": 11},
            ]
        }

    server.graphql.update(
        {
            "submission_upload_auth": upload_auth,
            "create_submission": create_submission,
            "account": account,
        }
    )
    server.state = state
    monkeypatch.setattr(numerapi.utils, "time", types.SimpleNamespace(sleep=lambda s: None))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return server


def set_keys(monkeypatch, public=PUBLIC, secret=SECRET):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", public)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", secret)


def submission_file(tmp_path):
    sub, data = good()
    return write_submission(sub, tmp_path / "submission.csv"), data


def assert_no_keys(capsys, caplog, *texts):
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text, *texts):
        assert PUBLIC not in text and SECRET not in text


def test_upload_success_by_model_name(numerai, monkeypatch, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    set_keys(monkeypatch)
    path, data = submission_file(tmp_path)
    sid = upload_submission(path, model_name="my_model", data=data)
    assert sid == "submission-42"
    assert numerai.uploads[UPLOAD_PATH] == path.read_bytes()
    posts = [r for r in numerai.requests if r["method"] == "POST"]
    assert [r["field"] for r in posts] == ["account", "submission_upload_auth", "create_submission"]
    assert all(r["headers"]["Authorization"] == f"Token {PUBLIC}${SECRET}" for r in posts)
    assert numerai.state["created"] == [
        {
            "filename": "abc123/submission.csv",
            "tournament": 8,
            "modelId": MODEL_ID,
            "triggerId": None,
            "dataDatestamp": None,
        }
    ]
    assert_no_keys(capsys, caplog)


def test_upload_with_keys_from_dotenv_and_model_id(numerai, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    (tmp_path / ".env").write_text(f"NUMERAI_PUBLIC_ID={PUBLIC}\nNUMERAI_SECRET_KEY='{SECRET}'\n")
    path, _ = submission_file(tmp_path)
    assert upload_submission(path, model_id=MODEL_ID) == "submission-42"
    assert not numerai.graphql_requests("account")  # no lookup needed
    assert_no_keys(capsys, caplog)


def test_server_error_is_retried_then_succeeds(numerai, monkeypatch, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    set_keys(monkeypatch)
    path, _ = submission_file(tmp_path)
    numerai.fail_post = [500, 503, 502]  # numerapi's own 3 tries fail: an empty answer
    waits = []
    sid = upload_submission(path, model_id=MODEL_ID, backoff=lambda a: 7.0 * a, sleep=waits.append)
    assert sid == "submission-42"
    assert waits == [7.0]
    assert numerai.uploads[UPLOAD_PATH] == path.read_bytes()
    assert len(numerai.state["created"]) == 1
    assert_no_keys(capsys, caplog)


def test_put_answering_500_is_never_reported_as_success(numerai, monkeypatch, tmp_path):
    """numerapi's upload_predictions ignores the PUT's status; nbutils checks it."""
    set_keys(monkeypatch)
    path, _ = submission_file(tmp_path)
    numerai.fail_put[UPLOAD_PATH] = [500] * 3
    with pytest.raises(SubmissionError, match="after 3 attempt.*PUT of submission.csv.*HTTP 500"):
        upload_submission(path, model_id=MODEL_ID, sleep=lambda s: None)
    assert not numerai.uploads and not numerai.state["created"]  # never registered


def test_put_500_then_200_is_retried(numerai, monkeypatch, tmp_path):
    set_keys(monkeypatch)
    path, _ = submission_file(tmp_path)
    numerai.fail_put[UPLOAD_PATH] = [500]
    assert upload_submission(path, model_id=MODEL_ID, sleep=lambda s: None) == "submission-42"
    assert numerai.uploads[UPLOAD_PATH] == path.read_bytes()
    assert len(numerai.state["created"]) == 1


def test_put_checked_refuses_non_2xx(fake_numerai):
    fake_numerai.fail_put["/model"] = [503]
    with pytest.raises(UploadHTTPError, match="PUT of model.pkl answered HTTP 503") as info:
        put_checked(fake_numerai.url + "/model", b"abc", what="model.pkl")
    assert info.value.status == 503
    put_checked(fake_numerai.url + "/model", b"abc", what="model.pkl")
    assert fake_numerai.uploads["/model"] == b"abc"


def test_extra_ids_are_not_uploaded(numerai, monkeypatch, tmp_path):
    set_keys(monkeypatch)
    sub, data = good()
    path = tmp_path / "submission.csv"
    extra = pd.DataFrame({"id": ["zz"], "prediction": [0.5]})
    path.write_text(pd.concat([sub, extra]).to_csv(index=False))
    with pytest.warns(SubmissionWarning, match="dropped 1 id"):
        upload_submission(path, model_id=MODEL_ID, data=data)
    uploaded = pd.read_csv(io.BytesIO(numerai.uploads[UPLOAD_PATH]), dtype={"id": str})
    assert list(uploaded["id"]) == list(sub["id"])


def test_persistent_server_error_raises(numerai, monkeypatch, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    set_keys(monkeypatch)
    path, _ = submission_file(tmp_path)
    numerai.fail_post = [500] * 9
    waits = []
    with pytest.raises(SubmissionError, match="after 3 attempt") as info:
        upload_submission(path, model_name="my_model", sleep=waits.append)
    assert waits == [default_backoff(1), default_backoff(2)] == [5.0, 10.0]
    assert not numerai.uploads and not numerai.state["created"]
    assert_no_keys(capsys, caplog, str(info.value))


def test_rejected_keys_raise_without_leaking_them(numerai, monkeypatch, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    set_keys(monkeypatch, secret=SECRET + "WRONG")
    path, _ = submission_file(tmp_path)
    waits = []
    with pytest.raises(SubmissionError, match="Numerai refused") as info:
        upload_submission(path, model_id=MODEL_ID, sleep=waits.append)
    assert waits == []  # a refusal is not retried
    assert not numerai.uploads
    message = str(info.value)
    assert "Invalid API key" in message and "***" in message
    assert info.value.__context__ is None  # the echoing exception is not chained
    assert_no_keys(capsys, caplog, message)  # SECRET is a prefix of the wrong secret


def test_unknown_model_name(numerai, monkeypatch, tmp_path):
    set_keys(monkeypatch)
    path, _ = submission_file(tmp_path)
    with pytest.raises(SubmissionError, match=r"no model named 'nope'.*my_model"):
        upload_submission(path, model_name="nope")
    assert upload_submission(path, model_name="MY_MODEL") == "submission-42"


def test_missing_keys_say_how_to_set_them(numerai, tmp_path):
    path, _ = submission_file(tmp_path)
    with pytest.raises(SubmissionError, match="NUMERAI_PUBLIC_ID and NUMERAI_SECRET_KEY"):
        upload_submission(path, model_id=MODEL_ID)
    assert not numerai.requests


def test_nothing_invalid_is_uploaded(numerai, monkeypatch, tmp_path):
    set_keys(monkeypatch)
    sub, data = good()
    bad = tmp_path / "bad.csv"
    bad.write_text(sub.assign(prediction=0.5).to_csv(index=False))
    with pytest.raises(SubmissionError, match="constant"):
        upload_submission(bad, model_id=MODEL_ID)
    stale = tmp_path / "stale.csv"
    stale.write_text(sub.assign(id=sub["id"] + "_old").to_csv(index=False))
    upload_submission(stale, model_id=MODEL_ID)  # fine by shape alone...
    numerai.requests.clear()
    numerai.uploads.clear()
    with (  # ...but not for this round: every id is dropped, so every live id is missing
        pytest.warns(SubmissionWarning, match=f"dropped {len(sub)} id"),
        pytest.raises(SubmissionError, match="missing ids"),
    ):
        upload_submission(stale, model_id=MODEL_ID, data=data)
    with pytest.raises(SubmissionError, match="no submission file"):
        upload_submission(tmp_path / "none.csv", model_id=MODEL_ID)
    with pytest.raises(SubmissionError, match="model_name"):
        upload_submission(stale)
    assert not numerai.requests and not numerai.uploads


# -- end to end on the synthetic datasets (nbutils.data) ---------------------------------------
def _loaded(path):
    from nbutils.data import load_data

    return load_data(path)


def test_legacy_submission_follows_the_tournament_file_order(tiny_legacy_dir, tmp_path):
    """The tutorial's warning: validation rows, then test and live rows, each in file order."""
    data = _loaded(tiny_legacy_dir)
    tournament = pd.read_csv(
        tiny_legacy_dir / "numerai_tournament_data.csv", usecols=["id", "data_type"], dtype=str
    )
    validation = tournament.loc[tournament["data_type"] == "validation", "id"]
    test_live = tournament.loc[tournament["data_type"] != "validation", "id"]
    preds = preds_for(data).sample(frac=1.0, random_state=0)
    sub = build_submission(preds, data)
    assert list(sub.index) == [*validation, *test_live]
    path = write_submission(sub, tmp_path / "submission.csv")
    validate_submission(read_submission(path), data)
    sorted_sub = sub.sort_index()
    assert list(sorted_sub.index) != list(sub.index)
    with pytest.raises(SubmissionError, match="wrong order"):
        validate_submission(sorted_sub, data)


def test_v5_submission_from_loaded_data(tiny_v5_dir, tmp_path):
    data = _loaded(tiny_v5_dir)
    live_file = pd.read_parquet(tiny_v5_dir / "live.parquet", columns=[])
    sub = build_submission(preds_for(data), data, rank_per_era=True)
    assert sorted(sub.index) == sorted(live_file.index.astype(str))
    validate_submission(read_submission(write_submission(sub, tmp_path / "s.csv")), data)
    renamed = build_submission(preds_for(data), data).rename(index={sub.index[0]: "x"})
    with (
        pytest.warns(SubmissionWarning, match="dropped 1 id"),
        pytest.raises(SubmissionError, match="missing ids: 1"),
    ):
        validate_submission(renamed, data)
