"""``python -m nbutils submit``: this round's live predictions from a finished run, once per round.

Steps, each stopping the command with an exit code (:mod:`nbutils.daily.errors`):

0. ``--model-name`` checked (:mod:`nbutils.daily.names`), then the run directory's lock taken
   (:mod:`nbutils.daily.lock`) before anything is written: held elsewhere -> exit 6;
1. the run's model, feature spec and neutralization settings (:mod:`nbutils.daily.run`);
2. the round (:func:`nbutils.daily.round.round_status`): closed -> exit 3, nothing uploaded;
3. the last ``submissions.log`` entry for this round and model: confirmed -> nothing uploaded,
   exit 0 (``--force`` uploads again); pending (an upload whose outcome was never recorded) ->
   Numerai is asked (``submission_ids``) whether the model has a submission since the round
   opened: yes -> it is recorded as confirmed and nothing is uploaded; no -> uploaded again;
4. the round's files, once per round, into ``<run>/rounds/<round>/`` (``DATA_DIR/<version>/
   rounds/<round>/`` with ``--data-dir``), never over the run's own dataset: ``live.parquet``
   (verified before it takes its name; a cached copy whose footer does not read is downloaded
   again), ``features.json`` (compared with the run's dataset copy, which is never replaced),
   ``live_example_preds.parquet`` when the run neutralized against example predictions;
5. predict, neutralize and rank exactly as the run did; build and validate the submission
   against this round's live ids; write ``<run>/rounds/<round>/submission.csv``;
6. ``--dry-run`` stops here. Otherwise the model id is looked up by name (``get_models``), a
   ``pending`` line is appended to ``<run>/submissions.log`` (cannot be written -> nothing
   uploaded), the file is uploaded in numerapi's three steps
   (:func:`nbutils.submission.upload_predictions_checked`: upload auth, PUT with its status
   checked, ``create_submission``; a failure exits 5 and leaves the pending line), and a
   ``confirmed`` line follows: round, model, model id, submission id, UTC time, the file's
   SHA-256. When Numerai accepted the file but the confirmed line cannot be written (a full
   disk), the command exits 7 saying so; the next call finds the pending line and asks Numerai.

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

from nbutils.daily.errors import (
    DailyError,
    NumeraiUnavailableError,
    RoundClosedError,
    UploadNotRecordedError,
)
from nbutils.daily.lock import command_lock, run_directory
from nbutils.daily.names import check_model_name
from nbutils.daily.round import (
    RoundStatus,
    api_call,
    make_client,
    parse_time,
    require_keys,
    round_status,
)
from nbutils.daily.run import RunModel, live_predictions, load_run
from nbutils.data import NumeraiData
from nbutils.data.download import DEFAULT_TIMEOUT, download_file, verify_download
from nbutils.errors import DataError
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
SUBMISSION_NAME = "submission.csv"
PENDING, CONFIRMED = "pending", "confirmed"


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
    """The entries of ``submissions.log`` (one JSON object a line), oldest first.

    A last line without its newline that is not JSON is a torn append (the disk filled while it
    was written): it is left out, and :func:`append_log` removes it before its next line.
    """
    path = run_dir / LOG_NAME
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines) and not text.endswith("\n"):
                    break  # torn append
                raise DailyError(
                    f"{path} line {number} is not JSON; the log is append-only: restore it from "
                    "a backup or move it aside."
                ) from None
    return entries


def append_log(run_dir: Path, entry: dict[str, Any]) -> None:
    """Append one line, flushed to disk. Earlier complete lines are never rewritten; a torn last
    line (no newline: a write cut short) is cut off first."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    with open(run_dir / LOG_NAME, "a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(0)
            data = handle.read()
            if not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def entry_status(entry: dict[str, Any]) -> str:
    """``pending`` or ``confirmed`` (lines written before the pending step are confirmed)."""
    return str(entry.get("status", CONFIRMED))


def previous_submission(run_dir: Path, number: int, model_name: str) -> dict[str, Any] | None:
    """The last log entry (pending or confirmed) for this round and model, if any."""
    found = [
        e for e in read_log(run_dir) if e.get("round") == number and e.get("model") == model_name
    ]
    return found[-1] if found else None


# -- the round's files -------------------------------------------------------------------------
def fetch(napi: Any, remote: str, dest: Path, keys: NumeraiKeys | None) -> Path:
    """Download ``remote`` to ``dest`` (:func:`nbutils.data.download.download_file`: the client's
    timeouts, verified whole before it takes its name; nothing kept on failure)."""
    timeout = getattr(napi, "nbutils_timeout", DEFAULT_TIMEOUT)
    try:
        return api_call(
            f"downloading {remote}", lambda: download_file(napi, remote, dest, timeout), keys
        )
    except NumeraiUnavailableError as err:
        raise NumeraiUnavailableError(
            f"the download of {remote} failed or is damaged; nothing was kept, try again. ({err})"
        ) from None


def cached(path: Path, say: Callable[[str], None]) -> bool:
    """Whether ``path`` is a usable earlier download; a damaged one (e.g. truncated: its parquet
    footer does not read) is named, removed and False is returned, so it is fetched again."""
    if not path.is_file():
        return False
    try:
        verify_download(path, full=False)
    except DataError as err:
        say(f"{path} is damaged ({err}); downloading it again.")
        path.unlink()
        return False
    return True


def round_dir_for(run: RunModel, data_dir: str | os.PathLike | None, number: int) -> Path:
    """Where round ``number``'s downloads go: ``<run>/rounds/<round>/``, or with ``--data-dir``
    ``DATA_DIR/<version>/rounds/<round>/``; never over the files of the run's own dataset."""
    if data_dir is None:
        return run.run_dir / "rounds" / str(number)
    version = str(run.info.get("version") or "v5")
    return Path(data_dir).expanduser().resolve() / version / "rounds" / str(number)


def round_features_json(
    napi: Any,
    version: str,
    round_dir: Path,
    run: RunModel,
    keys: NumeraiKeys | None,
    say: Callable[[str], None],
) -> Path:
    """The round's ``features.json`` in ``round_dir``, compared with the run's dataset copy
    (which is never replaced: the run's notebooks must still find the file they read)."""
    path = round_dir / "features.json"
    if not cached(path, say):
        fetch(napi, f"{version}/features.json", path, keys)
    own = Path(str(run.info.get("dataset_dir", ""))) / "features.json"
    if own.is_file() and sha256_of(own) == sha256_of(path):
        say("features.json unchanged since the run's dataset")
    else:
        say(
            f"features.json differs from the run's dataset: Numerai's is kept in {path}, the "
            "run's dataset is left as it is."
        )
    return path


def read_live(path: Path, run: RunModel) -> pd.DataFrame:
    """The round's live rows: index ``id`` (str), ``era`` and the run's raw features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as err:
        raise DailyError(
            f"{path} is not a readable parquet file ({type(err).__name__}: {err}). Delete it and "
            "run submit again; the round's live data is then downloaded again."
        ) from None
    missing = [c for c in run.raw_features if c not in names]
    if missing:
        raise DailyError(
            f"{path} lacks {len(missing)} feature(s) the model was trained on, e.g. {missing[:3]}; "
            "Numerai changed the data: retrain (run the chain again) with this data version."
        )
    columns = [*run.raw_features, "era"] + (["id"] if "id" in names else [])
    try:
        live = pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise DailyError(
            f"{path} cannot be read ({type(err).__name__}: {err}): the file is damaged. Delete it "
            "and run submit again; the round's live data is then downloaded again."
        ) from None
    if "id" in live.columns:
        live = live.set_index("id")
    live.index = live.index.astype(str)
    live.index.name = "id"
    if live.empty:
        raise DailyError(f"{path} has no rows; the round's live data is empty, try again later.")
    return live


def read_example_predictions(path: Path) -> pd.Series:
    """The ``prediction`` column of Numerai's example predictions, by id (read by its name,
    never by its position: another column first must not become the neutralizer)."""
    frame = pd.read_parquet(path)
    if "id" in frame.columns:
        frame = frame.set_index("id")
    if "prediction" not in frame.columns:
        raise DailyError(
            f"{path} has no column 'prediction' (it has {list(frame.columns)[:5]}): it is not "
            "Numerai's example predictions file; delete it to download it again, or give the "
            "right file."
        )
    frame.index = frame.index.astype(str)
    return frame["prediction"]


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


def numerai_submission_since(
    napi: Any, model_id: str, since: dt.datetime | None, keys: NumeraiKeys
) -> dict[str, Any] | None:
    """The model's newest submission Numerai holds from ``since`` on (numerapi's
    ``submission_ids``: id, filename, insertedAt), or None."""
    rows = api_call(
        "asking Numerai for the model's submissions", lambda: napi.submission_ids(model_id), keys
    )
    found = [
        (moment, row)
        for row in rows or []
        if (moment := parse_time(row.get("insertedAt"))) is not None
        and (since is None or moment >= since)
    ]
    return max(found, key=lambda pair: pair[0])[1] if found else None


def submit(
    run_dir: str | os.PathLike,
    model_name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    dry_run: bool = False,
    force: bool = False,
    say: Callable[[str], None] = print,
    napi: Any = None,
    ensemble: bool = False,
) -> SubmitResult:
    """Submit this round's live predictions of a finished run (see the module docstring);
    ``ensemble``: notebook 08's target ensemble instead of the run's ``model.txt``."""
    model_name = check_model_name(model_name)
    run_path = run_directory(run_dir)
    if data_dir is not None and not str(data_dir).strip():
        raise DailyError("--data-dir is empty: give a directory, or leave the option out.")
    keys = load_keys() if dry_run else require_keys()
    napi = napi or make_client(keys)
    with command_lock(run_path, "submit"):
        run = load_run(run_path, ensemble=ensemble)
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
        done = _already_done(run, previous, status, model_name, napi, keys, say)
        if done is not None:
            return done

    round_dir = round_dir_for(run, data_dir, number)
    version = str(run.info.get("version") or "v5.2")
    live_path = round_dir / "live.parquet"
    if cached(live_path, say):
        say(f"live data of round {number} already here: {live_path}")
    else:
        fetch(napi, f"{version}/live.parquet", live_path, keys)
        say(f"downloaded {live_path}")
    round_features_json(napi, version, round_dir, run, keys, say)
    example = None
    if run.settings.neutralize and run.settings.neutralize_against == "example_predictions":
        example_path = round_dir / "live_example_preds.parquet"
        if not cached(example_path, say):
            fetch(napi, f"{version}/live_example_preds.parquet", example_path, keys)
        example = read_example_predictions(example_path)

    live = read_live(live_path, run)
    submission = round_submission(run, live, example, number, version)
    target = run.run_dir / "rounds" / str(number) / SUBMISSION_NAME
    try:
        path = write_submission(submission, target)
    except OSError as err:
        raise DailyError(
            f"cannot write {target} ({type(err).__name__}: {err}); nothing uploaded. Free disk "
            "space or fix the directory's permissions, then run submit again."
        ) from None
    digest = sha256_of(path)
    say(f"wrote {path}: {len(submission):,} rows, sha256 {digest[:12]}")
    if dry_run:
        say("--dry-run: nothing uploaded.")
        return SubmitResult("dry-run", number, path, sha256=digest)
    return _upload(run, path, digest, number, model_name, bool(previous) and force, say, napi, keys)


def _already_done(
    run: RunModel,
    previous: dict[str, Any],
    status: RoundStatus,
    model_name: str,
    napi: Any,
    keys: NumeraiKeys | None,
    say: Callable[[str], None],
) -> SubmitResult | None:
    """The result when this round was already uploaded (confirmed in the log, or pending in the
    log and found on Numerai); None when a pending upload never reached Numerai."""
    number = int(status.number)
    if entry_status(previous) == PENDING:
        model_id = resolve_model_id(napi, model_name, keys)
        found = numerai_submission_since(napi, model_id, status.open_time, keys)
        if found is None:
            say(
                f"the upload of round {number} logged as pending at {previous.get('utc')} never "
                "reached Numerai: uploading again."
            )
            return None
        entry = {
            **previous,
            "status": CONFIRMED,
            "submission_id": found.get("id"),
            "recovered": True,
        }
        _confirm(run, entry, number, model_name)
        say(
            f"the upload of round {number} logged as pending at {previous.get('utc')} did reach "
            f"Numerai (submission {found.get('id')}); recorded it, nothing uploaded."
        )
        return SubmitResult("already-submitted", number, submission_id=found.get("id"))
    say(
        f"already submitted round {number} for {model_name} (submission "
        f"{previous.get('submission_id')} at {previous.get('utc')}); nothing uploaded. "
        "Use --force to upload again."
    )
    return SubmitResult("already-submitted", number, submission_id=previous.get("submission_id"))


def _confirm(run: RunModel, entry: dict[str, Any], number: int, model_name: str) -> None:
    """Append the confirmed line; a failure is :class:`UploadNotRecordedError` (exit 7)."""
    try:
        append_log(run.run_dir, entry)
    except OSError as err:
        raise UploadNotRecordedError(
            f"Numerai accepted the upload of round {number} for {model_name} (submission "
            f"{entry.get('submission_id')}), but {run.run_dir / LOG_NAME} could not record it "
            f"({type(err).__name__}: {err}). Do not upload again by hand: the log holds a pending "
            "line, and the next submit asks Numerai and records the upload without repeating it."
        ) from None


def _upload(
    run: RunModel,
    path: Path,
    digest: str,
    number: int,
    model_name: str,
    forced: bool,
    say: Callable[[str], None],
    napi: Any,
    keys: NumeraiKeys | None,
) -> SubmitResult:
    """Log pending, upload, log confirmed (module docstring, step 6)."""
    model_id = resolve_model_id(napi, model_name, keys)
    entry = {
        "status": PENDING,
        "round": number,
        "model": model_name,
        "model_id": model_id,
        "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": digest,
        "file": str(path.relative_to(run.run_dir)),
        "forced": forced,
    }
    try:
        append_log(run.run_dir, entry)
    except OSError as err:
        raise DailyError(
            f"cannot write {run.run_dir / LOG_NAME} ({type(err).__name__}: {err}); nothing "
            "uploaded. Free disk space or fix the permissions, then run submit again."
        ) from None
    try:
        # A PUT answering other than 2xx raises UploadHTTPError: api_call makes it exit 5.
        submission_id = api_call(
            "uploading the predictions",
            lambda: upload_predictions_checked(napi, path, model_id),
            keys,
        )
    except DailyError as err:
        raise type(err)(
            f"{err} The log keeps a pending line for round {number}: the next submit asks "
            "Numerai whether this upload arrived before uploading again."
        ) from None
    if not submission_id:
        raise NumeraiUnavailableError(
            "Numerai returned no submission id; the upload is not confirmed (the log keeps a "
            "pending line: the next submit asks Numerai before uploading again)."
        )
    _confirm(
        run, {**entry, "status": CONFIRMED, "submission_id": submission_id}, number, model_name
    )
    say(redact(f"uploaded round {number} for {model_name}: submission id {submission_id}", keys))
    return SubmitResult("uploaded", number, path, submission_id, digest)
