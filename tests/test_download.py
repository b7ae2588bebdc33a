"""download_numerai_data through the real numerapi client against the local fake Numerai server."""

from __future__ import annotations

import hashlib
import socket
import time

import numerapi
import numerapi.base_api
import pandas as pd
import pytest

from nbutils.data import (
    LIVE_FILES,
    MANIFEST_NAME,
    ON_REQUEST_FILES,
    TINY_SIZES,
    V5_CSV_FILES,
    V5_DOWNLOAD_FILES,
    V5_FILES,
    download_numerai_data,
    load_data,
    make_synthetic_dataset,
)
from nbutils.errors import DownloadError
from nbutils.util import read_json

FAST = {"retries": 1, "retry_delay": 0, "show_progress": False}


@pytest.fixture
def served(fake_numerai, tiny_v5_dir):
    """The fake server offering v4.3 (no v5), v5.0 and v5.2 (complete) and v5.10 (no train)."""
    content = {name: (tiny_v5_dir / name).read_bytes() for name in V5_FILES.values()}
    for version in ("v5.0", "v5.2"):
        for name, data in content.items():
            fake_numerai.files[f"{version}/{name}"] = data
    fake_numerai.files["v4.3/train.parquet"] = content["train.parquet"]
    fake_numerai.files["v5.10/features.json"] = content["features.json"]
    fake_numerai.content = content
    return fake_numerai


def _file_gets(server) -> list[str]:
    return [r["path"] for r in server.requests if r["method"] == "GET"]


def _names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_latest_is_newest_v5_with_train_and_files_are_exact(served, tmp_path):
    out = download_numerai_data(tmp_path, **FAST)
    assert out == tmp_path / "v5.2"
    for name in V5_DOWNLOAD_FILES:
        assert (out / name).read_bytes() == served.content[name]
    # the train benchmark models (hundreds of MB on Numerai) only when asked for
    assert sorted(_names(out)) == sorted([*V5_DOWNLOAD_FILES, MANIFEST_NAME])
    assert set(served.content) - set(V5_DOWNLOAD_FILES) == set(ON_REQUEST_FILES)
    manifest = read_json(out / MANIFEST_NAME)
    assert manifest["round"] == served.round_number
    assert manifest["files"]["live.parquet"]["bytes"] == len(served.content["live.parquet"])
    data = load_data(out)
    assert data.version == "v5.2" and data.round == served.round_number
    assert len(data.train) > 0


def test_latest_uses_natural_version_order(served, tmp_path):
    for name, data in served.content.items():
        served.files[f"v5.9/{name}"] = data
        served.files[f"v5.10/{name}"] = data
    assert download_numerai_data(tmp_path, **FAST) == tmp_path / "v5.10"


def test_explicit_version_and_file_subset(served, tmp_path):
    out = download_numerai_data(tmp_path, version="v5.0", files=["features.json"], **FAST)
    assert _names(out) == sorted([MANIFEST_NAME, "features.json"])


def test_complete_files_are_skipped(served, tmp_path, capsys):
    download_numerai_data(tmp_path, **FAST)
    first = len(_file_gets(served))
    assert first == len(V5_DOWNLOAD_FILES)
    capsys.readouterr()
    download_numerai_data(tmp_path, **FAST)
    assert len(_file_gets(served)) == first  # nothing fetched again
    out = capsys.readouterr().out
    assert out.count("already have the newest data") == len(V5_DOWNLOAD_FILES)


def test_a_damaged_local_file_is_fetched_again(served, tmp_path):
    out = download_numerai_data(tmp_path, **FAST)
    (out / "validation.parquet").write_bytes(b"PAR1 not really")
    before = len(_file_gets(served))
    download_numerai_data(tmp_path, **FAST)
    assert _file_gets(served)[before:] == ["/files/v5.2/validation.parquet"]
    assert (out / "validation.parquet").read_bytes() == served.content["validation.parquet"]


def test_live_files_are_fetched_again_when_the_round_changes(served, tmp_path, tiny_legacy_dir):
    out = download_numerai_data(tmp_path, **FAST)
    before = len(_file_gets(served))
    served.round_number += 1
    new_live = served.content["validation.parquet"]  # any other valid parquet file will do
    served.files["v5.2/live.parquet"] = new_live
    download_numerai_data(tmp_path, **FAST)
    fetched = _file_gets(served)[before:]
    assert sorted(fetched) == sorted(f"/files/v5.2/{name}" for name in LIVE_FILES)
    assert (out / "live.parquet").read_bytes() == new_live
    manifest = read_json(out / MANIFEST_NAME)
    assert manifest["round"] == served.round_number
    assert {manifest["files"][n]["round"] for n in LIVE_FILES} == {served.round_number}


def _assert_nothing_final(directory) -> None:
    """No file under a final name, no temporary leftovers."""
    names = _names(directory)
    assert not [n for n in names if n in V5_FILES.values()], names
    assert not [n for n in names if n.endswith((".download", ".temp", ".tmp"))], names


def test_server_error_raises_download_error(served, tmp_path):
    served.fail_post = [500] * 5
    with pytest.raises(DownloadError, match="synthetic"):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")


def test_server_error_is_retried(served, tmp_path):
    served.fail_post = [500]
    out = download_numerai_data(tmp_path, retries=2, retry_delay=0, show_progress=False)
    assert (out / "train.parquet").read_bytes() == served.content["train.parquet"]


def test_refused_connection_raises_download_error(fake_numerai, monkeypatch, tmp_path):
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match="local directory"):
        download_numerai_data(tmp_path, **FAST)
    assert _names(tmp_path) == []


def test_download_cut_off_mid_file_leaves_nothing(served, tmp_path):
    served.truncate["/files/v5.2/train.parquet"] = 200
    with pytest.raises(DownloadError):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")
    # the next run fetches the whole file
    out = download_numerai_data(tmp_path, **FAST)
    assert (out / "train.parquet").read_bytes() == served.content["train.parquet"]


def test_failed_refresh_keeps_the_old_complete_file(served, tmp_path):
    out = download_numerai_data(tmp_path, **FAST)
    old = (out / "live.parquet").read_bytes()
    served.round_number += 1
    served.truncate["/files/v5.2/live.parquet"] = 50
    with pytest.raises(DownloadError):
        download_numerai_data(tmp_path, **FAST)
    assert (out / "live.parquet").read_bytes() == old
    assert not [n for n in _names(out) if n.endswith((".download", ".temp"))]


def test_corrupt_served_file_is_rejected(served, tmp_path):
    served.files["v5.2/train.parquet"] = b"this is not parquet" * 100
    with pytest.raises(DownloadError, match="incomplete or corrupt"):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")


def test_http_error_on_file_raises(served, tmp_path):
    served.fail_get["/files/v5.2/train.parquet"] = [500]
    with pytest.raises(DownloadError, match="download v5.2/train.parquet"):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")


def test_graphql_error_raises(served, tmp_path):
    def refuse(variables, headers):
        from tests.fake_numerai import GraphQLError

        raise GraphQLError("dataset not available")

    served.graphql["dataset"] = refuse
    with pytest.raises(DownloadError, match="dataset not available"):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": "v9.9"}, "does not offer dataset version"),
        ({"files": ["nope.parquet"]}, "has no"),
    ],
)
def test_bad_version_or_file(served, tmp_path, kwargs, message):
    with pytest.raises(DownloadError, match=message):
        download_numerai_data(tmp_path, **kwargs, **FAST)


def test_no_v5_dataset(fake_numerai, tmp_path):
    fake_numerai.files["v4.3/train.parquet"] = b"x"
    with pytest.raises(DownloadError, match="no v5 dataset"):
        download_numerai_data(tmp_path, **FAST)


def test_version_without_required_files(served, tmp_path):
    with pytest.raises(DownloadError, match="lacks"):
        download_numerai_data(tmp_path, version="v5.10", **FAST)


def test_given_client_keeps_its_settings(served, tmp_path):
    napi = numerapi.NumerAPI(verbosity="warning", show_progress_bars=False)
    download_numerai_data(tmp_path, napi=napi, **FAST)
    assert "raw_query" not in vars(napi)  # our retry settings were removed again
    frame = pd.read_parquet(tmp_path / "v5.2" / "validation_example_preds.parquet")
    assert frame.index.name == "id"


# --------------------------------------------------------------------------------------------
# Verification before the rename, checksums, timeouts (issue 13 item 5)
# --------------------------------------------------------------------------------------------


def _middle_of_data(content: bytes) -> int:
    """An offset in the middle of a parquet file's data pages (before its footer)."""
    footer = int.from_bytes(content[-8:-4], "little")
    return (len(content) - footer - 8) // 2


def test_body_corrupted_in_transit_with_intact_footer_is_rejected(served, tmp_path):
    """The footer reads, so only decoding every row group notices; nothing is kept, and the
    next run fetches the file again instead of saying it already has the newest data."""
    path = "/files/v5.2/train.parquet"
    content = served.content["train.parquet"]
    served.corrupt[path] = (_middle_of_data(content), 16)
    with pytest.raises(DownloadError, match="train.parquet is incomplete or corrupt"):
        download_numerai_data(tmp_path, **FAST)
    _assert_nothing_final(tmp_path / "v5.2")
    served.corrupt.clear()
    out = download_numerai_data(tmp_path, **FAST)
    assert (out / "train.parquet").read_bytes() == content


def test_corrupted_refresh_keeps_the_old_file(served, tmp_path, capsys):
    out = download_numerai_data(tmp_path, **FAST)
    old = (out / "live.parquet").read_bytes()
    served.round_number += 1
    served.corrupt["/files/v5.2/live.parquet"] = (_middle_of_data(old), 16)
    with pytest.raises(DownloadError, match="corrupt"):
        download_numerai_data(tmp_path, **FAST)
    assert (out / "live.parquet").read_bytes() == old
    capsys.readouterr()
    served.corrupt.clear()
    download_numerai_data(tmp_path, **FAST)
    assert "downloading v5.2/live.parquet" in capsys.readouterr().out  # not "already have"


def test_manifest_records_the_sha256_of_each_file(served, tmp_path):
    out = download_numerai_data(tmp_path, **FAST)
    files = read_json(out / MANIFEST_NAME)["files"]
    assert set(files) == set(V5_DOWNLOAD_FILES)
    for name in V5_DOWNLOAD_FILES:
        assert files[name]["sha256"] == hashlib.sha256(served.content[name]).hexdigest()


def test_a_file_the_manifest_does_not_know_is_fetched_and_verified(served, tmp_path):
    """A file that was never verified (copied in, or from an older nbutils) is fetched again."""
    out = tmp_path / "v5.2"
    out.mkdir()
    (out / "features.json").write_bytes(served.content["features.json"])
    download_numerai_data(tmp_path, **FAST)
    assert "/files/v5.2/features.json" in _file_gets(served)


@pytest.mark.parametrize("header", ["Content-MD5", "x-amz-checksum-sha256"])
def test_announced_checksum_is_checked(served, tmp_path, header):
    path = "/files/v5.2/validation.parquet"
    served.announce[path] = (header, served.content["validation.parquet"])
    out = download_numerai_data(tmp_path, **FAST)  # the right checksum passes
    (out / "validation.parquet").unlink()
    served.announce[path] = (header, b"some other content")
    with pytest.raises(DownloadError, match="checksum differs"):
        download_numerai_data(tmp_path, **FAST)
    assert not (out / "validation.parquet").exists()


def test_server_that_never_answers_times_out(served, tmp_path):
    served.hang_post = True
    start = time.monotonic()
    with pytest.raises(DownloadError, match="no answer within the timeout.*timeout="):
        download_numerai_data(tmp_path, timeout=(2, 0.5), **FAST)
    assert time.monotonic() - start < 10
    assert _names(tmp_path) == []


def test_stalled_file_read_times_out(served, tmp_path):
    served.stall["/files/v5.2/train.parquet"] = 100
    # a read timeout of 2 s: short for the test, long enough for the other answers on a busy machine
    start = time.monotonic()
    with pytest.raises(DownloadError, match="download v5.2/train.parquet.*timeout"):
        download_numerai_data(tmp_path, timeout=(5, 2), **FAST)
    assert time.monotonic() - start < 20
    _assert_nothing_final(tmp_path / "v5.2")


@pytest.mark.parametrize("timeout", [0, -1, "10", (1, 2, 3), (5, None), float("inf")])
def test_bad_timeout(served, tmp_path, timeout):
    with pytest.raises(DownloadError, match="timeout"):
        download_numerai_data(tmp_path, timeout=timeout, **FAST)
    assert served.requests == []


def test_one_number_is_both_timeouts(served, tmp_path):
    served.hang_post = True
    start = time.monotonic()
    with pytest.raises(DownloadError, match="no answer within the timeout"):
        download_numerai_data(tmp_path, timeout=0.5, **FAST)
    assert time.monotonic() - start < 10


def test_the_stand_in_serves_todays_release_under_numerais_names(fake_numerai, tmp_path):
    """data_source="numerai" against the stand-in: the latest version (v5.3) and the one before
    (v5.2), every file Numerai lists, downloaded and loaded as from Numerai."""
    made = {
        version: make_synthetic_dataset(tmp_path / "made", version=version, **TINY_SIZES)
        for version in ("v5.2", "v5.3")
    }
    listed = [n for d in made.values() for n in fake_numerai.serve_dataset(d)]
    expected = sorted([*V5_FILES.values(), *V5_CSV_FILES.values()])
    assert sorted(n.split("/", 1)[1] for n in listed if n.startswith("v5.3/")) == expected
    napi = numerapi.NumerAPI()
    assert sorted(napi.list_datasets()) == sorted(listed)  # the real client's listing
    out = download_numerai_data(tmp_path / "data", **FAST)
    assert out == tmp_path / "data" / "v5.3"
    for name in V5_DOWNLOAD_FILES:
        assert (out / name).read_bytes() == (made["v5.3"] / name).read_bytes(), name
    got, ref = load_data(out), load_data(made["v5.3"])
    assert set(got.benchmark_models) == {"validation", "live"}  # train: on request
    for split in ("validation", "live"):
        pd.testing.assert_frame_equal(got.benchmark_models[split], ref.benchmark_models[split])
        assert "v53_lgbm_ender20" in got.benchmark_models[split]
    pd.testing.assert_series_equal(got.meta_model, ref.meta_model)
    pd.testing.assert_series_equal(got.example_predictions, ref.example_predictions)
    older = download_numerai_data(
        tmp_path / "data", version="v5.2", files=[*V5_DOWNLOAD_FILES, *ON_REQUEST_FILES], **FAST
    )
    assert set(load_data(older).benchmark_models) == {"train", "validation", "live"}
    assert "v52_lgbm_ender20" in load_data(older).benchmark_models["train"]
