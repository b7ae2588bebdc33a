"""``python -m nbutils submit``: this round's live predictions from a finished run, once per round.

Steps, each stopping the command with an exit code (:mod:`nbutils.daily.errors`):

1. the run's model, feature spec and neutralization settings (:mod:`nbutils.daily.run`);
2. the round (:func:`nbutils.daily.round.round_status`): closed -> exit 3, nothing uploaded;
3. already in ``submissions.log`` for this round and model -> nothing uploaded, exit 0
   (``--force`` uploads again);
4. the round's files: ``live.parquet`` once per round into ``<data>/rounds/<round>/`` (checked
   to decode fully before it takes its final name); ``features.json`` fetched and kept only if
   its SHA-256 changed; ``live_example_preds.parquet`` only when the run neutralized against
   example predictions;
5. predict, neutralize and rank exactly as the run did; build and validate the submission
   against this round's live ids; write ``<run>/rounds/<round>/<model>.csv``;
6. ``--dry-run`` stops here. Otherwise the model id is looked up by name (``get_models``), the
   file is uploaded in numerapi's three steps (:func:`nbutils.submission.upload_predictions_checked`:
   upload auth, PUT, ``create_submission``), the PUT's status checked (numerapi's own
   ``upload_predictions`` ignores it; a failed PUT exits 5), and one JSON line is appended to ``<run>/submissions.log``: round, model,
   model id, submission id, UTC time, the file's SHA-256.

Keys come from the environment or ``.env`` only; every message and log record is redacted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nbutils.daily.errors import DailyError, NumeraiUnavailableError, RoundClosedError
from nbutils.daily.round import api_call, make_client, require_keys, round_status
from nbutils.daily.run import RunModel, live_predictions, load_run
from nbutils.data import NumeraiData
from nbutils.run.keys import NumeraiKeys, load_keys, redact
from nbutils.submission import (
    build_submission,
    find_model_id,
    redacted_logging,
    upload_predictions_checked,
    validate_submission,
    write_submission,
)

LOG_NAME = "submissions.log"


@dataclass
class SubmitResult:
    """What one call did: ``status`` is "uploaded", "already-submitted" or "dry-run"."""

    status: str
    round: int
    path: Path | None = None
    submission_id: str | None = None
    sha256: str | None = None


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the log -----------------------------------------------------------------------------------
def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The entries of ``submissions.log`` (one JSON object a line), oldest first."""
    path = run_dir / LOG_NAME
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise DailyError(
                    f"{path} line {number} is not JSON; the log is append-only: restore it from "
                    "a backup or move it aside."
                ) from None
    return entries


def append_log(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append one line (``O_APPEND``: earlier lines are never rewritten)."""
    line = json.dumps(entry, sort_keys=True) + "\n"
    with open(run_dir / LOG_NAME, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def previous_submission(run_dir: Path, number: int, model_name: str) -> dict[str, Any] | None:
    """The last logged upload for this round and model, if any."""
    found = [
        e for e in read_log(run_dir) if e.get("round") == number and e.get("model") == model_name
    ]
    return found[-1] if found else None


# -- the round's files -------------------------------------------------------------------------
def _check_parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    pq.read_table(path)  # every row group decodes


def _check_json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def fetch(napi: Any, remote: str, dest: Path, keys: NumeraiKeys | None) -> Path:
    """Download ``remote`` to ``dest`` through numerapi; verified before it takes its name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    for leftover in (part, Path(str(part) + ".temp")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    api_call(f"downloading {remote}", lambda: napi.download_dataset(remote, str(part)), keys)
    check = _check_json if remote.endswith(".json") else _check_parquet
    try:
        check(part)
    except Exception as err:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise NumeraiUnavailableError(
            f"the download of {remote} is damaged ({type(err).__name__}: {err}); try again."
        ) from None
    os.replace(part, dest)
    return dest


def refresh_features_json(
    napi: Any, version: str, data_root: Path, keys: NumeraiKeys | None, say: Callable[[str], None]
) -> Path:
    """Fetch ``features.json``; replace the local copy only when its SHA-256 changed."""
    local = data_root / "features.json"
    fresh = fetch(
        napi, f"{version}/features.json", data_root / "rounds" / ".features.json.new", keys
    )
    if local.is_file() and sha256_of(local) == sha256_of(fresh):
        fresh.unlink()
        say("features.json unchanged")
    else:
        os.replace(fresh, local)
        say(f"features.json changed: new copy kept (sha256 {sha256_of(local)[:12]})")
    return local


def read_live(path: Path, run: RunModel) -> pd.DataFrame:
    """The round's live rows: index ``id`` (str), ``era`` and the run's raw features."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    missing = [c for c in run.raw_features if c not in names]
    if missing:
        raise DailyError(
            f"{path} lacks {len(missing)} feature(s) the model was trained on, e.g. {missing[:3]}; "
            "Numerai changed the data: retrain (run the chain again) with this data version."
        )
    columns = [*run.raw_features, "era"] + (["id"] if "id" in names else [])
    live = pd.read_parquet(path, columns=columns)
    if "id" in live.columns:
        live = live.set_index("id")
    live.index = live.index.astype(str)
    live.index.name = "id"
    if live.empty:
        raise DailyError(f"{path} has no rows; the round's live data is empty, try again later.")
    return live


def read_example_predictions(path: Path) -> pd.Series:
    frame = pd.read_parquet(path)
    if "id" in frame.columns:
        frame = frame.set_index("id")
    frame.index = frame.index.astype(str)
    return frame.iloc[:, 0]


# -- the command -------------------------------------------------------------------------------
def round_submission(
    run: RunModel,
    live: pd.DataFrame,
    example: pd.Series | None = None,
    number: int | None = None,
    version: str = "",
) -> pd.DataFrame:
    """The validated submission (index ``id``, column ``prediction``) of ``live``, as the run
    would have made it: predict, neutralize, rank (notebooks 03, 06 and 05)."""
    values = live_predictions(run, live, example)
    data = NumeraiData(
        train=live.iloc[:0],
        validation=live.iloc[:0],
        live=live,
        features=run.raw_features,
        feature_groups=run.groups,
        targets=[],
        layout="v5",
        version=version,
        round=number,
    )
    submission = build_submission(values, data, rank_per_era=run.settings.rank_per_era)
    validate_submission(submission, data)
    return submission


def resolve_model_id(napi: Any, model_name: str, keys: NumeraiKeys) -> str:
    """The id of ``model_name`` on the account (exact name, else case-insensitive)."""
    models = api_call("listing your models", napi.get_models, keys)
    model_id = find_model_id(models, model_name)
    if model_id is None:
        raise DailyError(
            f"--model-name: no model named {model_name!r} on this account; "
            f"your models: {sorted(models)}."
        )
    return model_id


def data_root_for(run: RunModel, data_dir: str | os.PathLike | None) -> Path:
    """Where the round's files go: ``DATA_DIR/<version>``, or the run's own dataset directory."""
    if data_dir is None:
        return Path(run.info["dataset_dir"])
    return Path(data_dir).expanduser().resolve() / str(run.info.get("version") or "v5")


def submit(
    run_dir: str | os.PathLike,
    model_name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    dry_run: bool = False,
    force: bool = False,
    say: Callable[[str], None] = print,
    napi: Any = None,
) -> SubmitResult:
    """Submit this round's live predictions of a finished run (see the module docstring)."""
    if not model_name or not str(model_name).strip():
        raise DailyError("--model-name is empty: give your Numerai model's name.")
    run = load_run(run_dir)
    keys = load_keys() if dry_run else require_keys()
    napi = napi or make_client(keys)
    with redacted_logging(keys) if keys else contextlib.nullcontext():
        return _submit(run, model_name, data_dir, dry_run, force, say, napi, keys)


def _submit(
    run: RunModel,
    model_name: str,
    data_dir: str | os.PathLike | None,
    dry_run: bool,
    force: bool,
    say: Callable[[str], None],
    napi: Any,
    keys: NumeraiKeys | None,
) -> SubmitResult:
    status = round_status(napi, keys)
    if not status.is_open:
        raise RoundClosedError(f"{status.describe()}. Nothing was uploaded.")
    number = int(status.number)
    say(status.describe())
    previous = previous_submission(run.run_dir, number, model_name)
    if previous and not (force or dry_run):
        say(
            f"already submitted round {number} for {model_name} (submission "
            f"{previous.get('submission_id')} at {previous.get('utc')}); nothing uploaded. "
            "Use --force to upload again."
        )
        return SubmitResult(
            "already-submitted", number, submission_id=previous.get("submission_id")
        )

    root = data_root_for(run, data_dir)
    version = str(run.info.get("version") or "v5.2")
    round_dir = root / "rounds" / str(number)
    live_path = round_dir / "live.parquet"
    if live_path.is_file():
        say(f"live data of round {number} already here: {live_path}")
    else:
        fetch(napi, f"{version}/live.parquet", live_path, keys)
        say(f"downloaded {live_path}")
    refresh_features_json(napi, version, root, keys, say)
    example = None
    if run.settings.neutralize and run.settings.neutralize_against == "example_predictions":
        example_path = round_dir / "live_example_preds.parquet"
        if not example_path.is_file():
            fetch(napi, f"{version}/live_example_preds.parquet", example_path, keys)
        example = read_example_predictions(example_path)

    live = read_live(live_path, run)
    submission = round_submission(run, live, example, number, version)
    path = write_submission(submission, run.run_dir / "rounds" / str(number) / f"{model_name}.csv")
    digest = sha256_of(path)
    say(f"wrote {path}: {len(submission):,} rows, sha256 {digest[:12]}")
    if dry_run:
        say("--dry-run: nothing uploaded.")
        return SubmitResult("dry-run", number, path, sha256=digest)

    model_id = resolve_model_id(napi, model_name, keys)
    # A PUT answering other than 2xx raises UploadHTTPError: api_call makes it exit 5.
    submission_id = api_call(
        "uploading the predictions",
        lambda: upload_predictions_checked(napi, path, model_id),
        keys,
    )
    if not submission_id:
        raise NumeraiUnavailableError(
            "Numerai returned no submission id; the upload is not confirmed."
        )
    append_log(
        run.run_dir,
        {
            "round": number,
            "model": model_name,
            "model_id": model_id,
            "submission_id": submission_id,
            "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": digest,
            "file": str(path.relative_to(run.run_dir)),
            "forced": bool(previous) and force,
        },
    )
    say(redact(f"uploaded round {number} for {model_name}: submission id {submission_id}", keys))
    return SubmitResult("uploaded", number, path, submission_id, digest)
