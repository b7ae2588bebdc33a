"""``python -m nbutils upload-model``: send the run's pickled ``predict`` to Numerai.

Steps: the keys (environment or ``.env``); the image and data-version names Numerai offers
(numerapi's ``model_upload_docker_images`` and ``model_upload_data_versions``), checked against
``--docker-image`` / ``--data-version`` (defaults: the image of this Python, the run's data
version); without ``--pickle``, export the run first (``<run>/model.pkl``; with ``--ensemble``,
notebook 08's target ensemble into ``<run>/ensemble.pkl``); then what is sent is checked
(:func:`check_what_we_send`): the file unpickles with cloudpickle in a fresh Python, holds a
``predict`` of one or two parameters, holds what was asked for (the ensemble with
``--ensemble``, the run's ``model.txt`` without), was exported from this run (its fingerprint,
unless ``--force``; the ensemble's covers ``ensemble.json`` and every model under
``ensemble_models/``, each checked against the fingerprint notebook 08 recorded), was made with
the image's Python (unless ``--force``), and passes the runner harness
(:func:`nbutils.daily.runner.check_pickle`) on the run's live data; the model id by name; the
upload in numerapi's ``model_upload`` steps
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
from nbutils.daily.export import export_model, run_fingerprint
from nbutils.daily.lock import command_lock
from nbutils.daily.round import api_call, make_client, require_keys
from nbutils.daily.runner import PickleInfo, check_pickle, inspect_pickle, python_mismatch
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
    force: bool = False,
    say: Callable[[str], None] = print,
    napi: Any = None,
    ensemble: bool = False,
) -> str:
    """Upload the run's model (exported and checked first when ``pickle`` is None); return the
    model upload id. ``ensemble``: notebook 08's target ensemble instead of ``model.txt``."""
    run_path = Path(run_dir).expanduser().resolve()
    if not (run_path / "data.json").is_file():
        raise DailyError(f"--run-dir {run_path} is not a finished run (no data.json).")
    keys = require_keys()
    napi = napi or make_client(keys)
    with command_lock(run_path, "upload-model"), redacted_logging(keys):
        return _upload(
            run_path,
            model_name,
            pickle,
            docker_image,
            data_version,
            force,
            say,
            napi,
            keys,
            ensemble,
        )


def check_what_we_send(
    run_path: Path,
    info: PickleInfo,
    image: str,
    force: bool,
    say: Callable[[str], None],
    ensemble: bool = False,
) -> None:
    """Refuse (:class:`DailyError`, naming the file and the fix) a file that Numerai's runner
    would fail on, or that is not this run's model (its ensemble with ``ensemble``); ``force``
    lets another run's export or another Python's pickle through (with a warning), never a
    broken file, nor the single model for the ensemble or the other way round."""
    path = info.path
    flag = " --ensemble" if ensemble else ""
    if info.made_by_export and bool(info.export.get("ensemble")) != ensemble:
        held, asked = ("the run's model.txt", "notebook 08's ensemble")
        if not ensemble:
            held, asked = asked, held
        raise DailyError(
            f"--pickle {path} holds {held}, not {asked}{' (--ensemble)' if ensemble else ''}. "
            f"Export {asked}: python -m nbutils export-model --run-dir {run_path} --out {path}"
            f"{flag}; or {'leave out' if ensemble else 'add'} --ensemble. Nothing uploaded."
        )
    expected = run_fingerprint(run_path, ensemble=ensemble)
    got = info.export.get("run_fingerprint")
    foreign = got != expected
    if foreign:
        why = (
            "was not written by export-model (it records no run fingerprint)"
            if not info.made_by_export
            else f"was exported from another run (fingerprint {str(got)[:12]}, this run's is "
            f"{expected[:12]}), or the run changed since"
        )
        message = (
            f"--pickle {path} {why}. Export this run's model: python -m nbutils export-model "
            f"--run-dir {run_path} --out {path}{flag}"
        )
        if not force:
            raise DailyError(f"{message}; or pass --force to upload it anyway. Nothing uploaded.")
        say(f"warning (--force): {message}.")
    mismatch = python_mismatch(info.export, image)
    if mismatch and not force:
        raise DailyError(f"{path}: {mismatch} Nothing uploaded.")
    report = check_pickle(
        path, docker_image=image, run_dir=run_path, force=force, compare=not foreign
    )
    say(report.describe())
    if not report.ok:
        raise DailyError(
            f"{path} failed the runner check on the run's live data ({report.errors[0]}); "
            "nothing uploaded."
        )


def _upload(
    run_path: Path,
    model_name: str,
    pickle: str | os.PathLike | None,
    docker_image: str | None,
    data_version: str | None,
    force: bool,
    say: Callable[[str], None],
    napi: Any,
    keys: NumeraiKeys,
    ensemble: bool = False,
) -> str:
    if pickle is None:
        out = run_path / ("ensemble.pkl" if ensemble else "model.pkl")
        path = export_model(run_path, out, say=say, ensemble=ensemble)
        say(f"exported {path}")
    else:
        path = Path(pickle).expanduser().resolve()
        if not path.is_file() or path.suffix != ".pkl":
            raise DailyError(
                f"--pickle {path}: no such .pkl file (numerapi uploads .pkl files only)."
            )
    # unpickles with cloudpickle in a fresh Python, 1 or 2 parameters: before any network call
    info = inspect_pickle(path)
    images = api_call("listing the docker images", napi.model_upload_docker_images, keys)
    versions = api_call("listing the data versions", napi.model_upload_data_versions, keys)
    here = "Python " + ".".join(platform.python_version().split(".")[:2])
    run_version = json.loads((run_path / "data.json").read_text(encoding="utf-8")).get("version")
    image = choose("docker image", docker_image, images, here)
    version = choose("data version", data_version, versions, run_version)
    say(
        f"docker image {image!r}, data version {version!r} (offered: {sorted(images)}, {sorted(versions)})"
    )
    check_what_we_send(run_path, info, image, force, say, ensemble)
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
        "run_fingerprint": info.export.get("run_fingerprint"),
        "forced": force,
        "ensemble": ensemble,
    }
    with open(run_path / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    with contextlib.suppress(Exception):
        say(f"uploaded {path.name} for {model_name}: model upload id {upload_id}")
    return upload_id
