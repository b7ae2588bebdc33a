"""``python -m nbutils upload-model``: send the run's pickled ``predict`` to Numerai.

Steps: the keys (environment or ``.env``); the image and data-version names Numerai offers
(numerapi's ``model_upload_docker_images`` and ``model_upload_data_versions``), checked against
``--docker-image`` / ``--data-version`` (defaults: the image of this Python, the run's data
version); without ``--pickle``, export the run and check the pickle first (``export-model
--check``); the model id by name; the upload in numerapi's ``model_upload`` steps
(:func:`upload_model_checked`: ``computePickleUploadAuth``, PUT with its status checked,
``createComputePickleUpload``); one JSON line appended to ``<run>/model_uploads.log``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbutils.daily.errors import DailyError
from nbutils.daily.export import check_pickle, export_model
from nbutils.daily.round import api_call, make_client, require_keys
from nbutils.daily.submit import resolve_model_id, sha256_of
from nbutils.run.keys import NumeraiKeys
from nbutils.submission import put_checked, redacted_logging, upload_auth

LOG_NAME = "model_uploads.log"

#: GraphQL registering an uploaded pickle as the model's upload (numerapi's ``model_upload``).
_CREATE_MODEL_UPLOAD_QUERY = """
mutation($filename: String! $tournament: Int! $modelId: String $dataVersionId: String
         $dockerImageId: String) {
  createComputePickleUpload(filename: $filename tournament: $tournament modelId: $modelId
                            dataVersionId: $dataVersionId dockerImageId: $dockerImageId) { id }
}
"""


def upload_model_checked(
    napi: Any, path: Path, model_id: str, data_version_id: str, docker_image_id: str
) -> str:
    """numerapi's ``model_upload`` in its three steps, checking the PUT's status; the upload id.

    1. ``computePickleUploadAuth``: a presigned URL for the file name
       (:func:`nbutils.submission.upload_auth`);
    2. PUT the pickle there, refusing any status but 2xx (:func:`nbutils.submission.put_checked`;
       numerapi ignores this status, so a failed upload looked like a success);
    3. ``createComputePickleUpload``: register it with the data version and image ids.
    """
    auth = upload_auth(napi, "computePickleUploadAuth", path.name, model_id)
    put_checked(auth["url"], path.read_bytes(), what=path.name)
    variables = {
        "filename": auth["filename"],
        "tournament": napi.tournament_id,
        "modelId": model_id,
        "dataVersionId": data_version_id,
        "dockerImageId": docker_image_id,
    }
    created = napi.raw_query(_CREATE_MODEL_UPLOAD_QUERY, variables, authorization=True)
    return created["data"]["createComputePickleUpload"]["id"]


def choose(kind: str, given: str | None, offered: dict[str, str], default: str | None) -> str:
    """The name to use out of ``offered`` (name -> id); a typo is refused with the closest name."""
    if not offered:
        raise DailyError(f"Numerai offers no {kind}s right now; try again later.")
    if given is None:
        if default in offered:
            return default
        raise DailyError(
            f"choose a {kind} with --{kind.replace(' ', '-')}: Numerai offers {sorted(offered)}."
        )
    if given in offered or given in offered.values():
        return given if given in offered else next(n for n, i in offered.items() if i == given)
    close = difflib.get_close_matches(given, list(offered), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DailyError(
        f"--{kind.replace(' ', '-')} {given!r} is not offered; Numerai offers {sorted(offered)}.{hint}"
    )


def upload_model(
    run_dir: str | os.PathLike,
    model_name: str,
    *,
    pickle: str | os.PathLike | None = None,
    docker_image: str | None = None,
    data_version: str | None = None,
    say: Callable[[str], None] = print,
    napi: Any = None,
) -> str:
    """Upload the run's model (exported and checked first when ``pickle`` is None); return the
    model upload id."""
    run_path = Path(run_dir).expanduser().resolve()
    if not (run_path / "data.json").is_file():
        raise DailyError(f"--run-dir {run_path} is not a finished run (no data.json).")
    keys = require_keys()
    napi = napi or make_client(keys)
    with redacted_logging(keys):
        return _upload(run_path, model_name, pickle, docker_image, data_version, say, napi, keys)


def _upload(
    run_path: Path,
    model_name: str,
    pickle: str | os.PathLike | None,
    docker_image: str | None,
    data_version: str | None,
    say: Callable[[str], None],
    napi: Any,
    keys: NumeraiKeys,
) -> str:
    images = api_call("listing the docker images", napi.model_upload_docker_images, keys)
    versions = api_call("listing the data versions", napi.model_upload_data_versions, keys)
    here = "Python " + ".".join(platform.python_version().split(".")[:2])
    run_version = json.loads((run_path / "data.json").read_text(encoding="utf-8")).get("version")
    image = choose("docker image", docker_image, images, here)
    version = choose("data version", data_version, versions, run_version)
    say(
        f"docker image {image!r}, data version {version!r} (offered: {sorted(images)}, {sorted(versions)})"
    )
    if pickle is None:
        path = export_model(run_path, run_path / "model.pkl")
        say(f"exported {path}")
        report = check_pickle(path, docker_image=image, run_dir=run_path)
        say(report.describe())
        if not report.ok:
            raise DailyError(
                f"the exported pickle failed its check; nothing uploaded ({report.errors[0]})."
            )
    else:
        path = Path(pickle).expanduser().resolve()
        if not path.is_file() or path.suffix != ".pkl":
            raise DailyError(
                f"--pickle {path}: no such .pkl file (numerapi uploads .pkl files only)."
            )
    model_id = resolve_model_id(napi, model_name, keys)
    # A PUT answering other than 2xx raises UploadHTTPError: api_call makes it exit 5.
    upload_id = api_call(
        "uploading the model",
        lambda: upload_model_checked(napi, path, model_id, versions[version], images[image]),
        keys,
    )
    if not upload_id:
        raise DailyError("Numerai returned no model upload id; the upload is not confirmed.")
    entry = {
        "model": model_name,
        "model_id": model_id,
        "upload_id": upload_id,
        "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": sha256_of(path),
        "docker_image": image,
        "data_version": version,
    }
    with open(run_path / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    with contextlib.suppress(Exception):
        say(f"uploaded {path.name} for {model_name}: model upload id {upload_id}")
    return upload_id
