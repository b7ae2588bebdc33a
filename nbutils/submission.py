"""Step 2E: the submission file. Build, validate, write and upload a submission.

Two layouts (DESIGN.md, "Data model"):

- **v5** (today): one row per live id, columns ``id,prediction``, values in [0, 1] (what Numerai
  accepts: ``rank(pct=True)`` gives exactly 1 for the top row). Ids that are not in the round are
  dropped with a :class:`SubmissionWarning` naming how many, as Numerai ignores them.
- **legacy** (the 2021 tutorial): the validation rows, then the test and live rows, in the
  tournament file's order. The tutorial warns that the submission breaks when the ids are out of
  order; :func:`validate_submission` checks that order.

Nothing invalid is ever uploaded: :func:`upload_submission` checks the file first. The API keys
come from the environment or a ``.env`` file (:func:`nbutils.run.keys.load_keys`), and every error
message is passed through :func:`nbutils.run.keys.redact`, so the keys are never printed or logged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbutils.data import NumeraiData
from nbutils.errors import SubmissionError
from nbutils.run.keys import PUBLIC_ENV, SECRET_ENV, NumeraiKeys, load_keys, redact
from nbutils.util import atomic_write_text
from nbutils.versions import require

logger = logging.getLogger(__name__)

ID_COL = "id"
PRED_COL = "prediction"


class SubmissionWarning(UserWarning):
    """Something in a submission was fixed on the way (extra ids dropped)."""


# -- build -------------------------------------------------------------------------------------
def expected_ids(data: NumeraiData) -> pd.Index:
    """The ids a submission must hold, in order.

    v5: the live ids. legacy: the validation ids then the test and live ids, as in the
    tournament file (``data.validation`` then ``data.live`` as loaded).
    """
    if data.layout == "legacy":
        return data.validation.index.append(data.live.index)
    return data.live.index


def _eras_for(data: NumeraiData) -> pd.Series:
    frames = [data.validation, data.live] if data.layout == "legacy" else [data.live]
    return pd.concat([f["era"] for f in frames])


def rank_per_era(values: pd.Series, eras: pd.Series) -> pd.Series:
    """``(rank - 0.5) / n`` within each era, average ranks for ties: strictly inside (0, 1).

    The same transform as ``numerai_tools.scoring.tie_kept_rank`` applied era by era.
    """
    ranks = values.groupby(eras, sort=False).rank(method="average")
    counts = values.groupby(eras, sort=False).transform("count")
    return (ranks - 0.5) / counts


def build_submission(
    predictions: pd.Series, data: NumeraiData, rank_per_era: bool = False
) -> pd.DataFrame:
    """The submission frame for ``data`` (tutorial step 2E): index ``id``, column ``prediction``.

    Parameters
    ----------
    predictions : Series
        Predictions indexed by id (:func:`nbutils.train.predict`); may hold more ids (e.g. the
        training rows), only the expected ones are kept.
    data : NumeraiData
        Tells the layout and the ids: v5, the live ids; legacy, the validation ids then the
        test and live ids in the tournament file's order.
    rank_per_era : bool
        Replace the values by ``(rank - 0.5) / n`` within each era.

    Returns
    -------
    DataFrame
        Rows in the expected order; validated by :func:`validate_submission`.
    """
    if not isinstance(predictions, pd.Series):
        raise SubmissionError("predictions must be a pandas Series indexed by id (train.predict).")
    if predictions.index.has_duplicates:
        dup = predictions.index[predictions.index.duplicated()].unique()
        raise SubmissionError(
            f"predictions hold {len(dup)} duplicate id(s), e.g. {list(dup[:3])}; one per id."
        )
    ids = expected_ids(data)
    missing = ids.difference(predictions.index)
    if len(missing):
        raise SubmissionError(
            f"missing ids: {len(missing)} expected id(s) have no prediction, e.g. "
            f"{list(missing[:3])}; predict on data.live (and data.validation for legacy)."
        )
    values = predictions.reindex(ids).astype(float)
    if rank_per_era:
        values = _rank_values(values, data)
    sub = pd.DataFrame({PRED_COL: values.to_numpy()}, index=pd.Index(ids, name=ID_COL))
    validate_submission(sub, data)
    return sub


def _rank_values(values: pd.Series, data: NumeraiData) -> pd.Series:
    eras = _eras_for(data)
    return rank_per_era(values, pd.Series(eras.to_numpy(), index=values.index))


# -- validate ----------------------------------------------------------------------------------
def _as_frame(submission: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """``id,prediction`` columns with a RangeIndex, from either accepted form."""
    if isinstance(submission, pd.Series):
        submission = submission.rename(PRED_COL).to_frame()
    if ID_COL not in submission.columns:
        if submission.index.name != ID_COL:
            raise SubmissionError(
                "the submission has no id: give an `id` column or an index named `id`."
            )
        submission = submission.reset_index()
    return submission


def _numerai_tools_check(check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(*args)
    except AssertionError as err:
        raise SubmissionError(f"numerai-tools rejected the submission: {err}") from None


def check_shape(submission: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Checks that need no data: headers, ids, values (what Numerai checks on upload).

    Raises :class:`SubmissionError` for: headers other than ``id`` and ``prediction``
    (numerai-tools' ``validate_headers_numerai``), an empty file, missing or duplicate ids,
    non-numeric or NaN predictions, values outside [0, 1] (Numerai's own range, ends included),
    constant predictions.

    Returns
    -------
    DataFrame
        The submission with ``id,prediction`` columns.
    """
    require("numerai-tools")
    from numerai_tools.submissions import validate_headers_numerai

    frame = _as_frame(submission)
    _, pred_col = _numerai_tools_check(validate_headers_numerai, frame)
    if pred_col != PRED_COL:  # numerai-tools also accepts the old name "probability"
        frame = frame.rename(columns={pred_col: PRED_COL})
    if frame.empty:
        raise SubmissionError("the submission is empty; predict on the live rows first.")
    ids, preds = frame[ID_COL], frame[PRED_COL]
    if ids.isna().any():
        raise SubmissionError(f"{int(ids.isna().sum())} row(s) have no id; every row needs one.")
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].unique()
        raise SubmissionError(
            f"duplicate ids: {len(dup)} id(s) appear twice, e.g. {list(dup[:3])}."
        )
    if not pd.api.types.is_numeric_dtype(preds):
        raise SubmissionError(f"predictions must be numbers, got dtype {preds.dtype}.")
    if preds.isna().any():
        raise SubmissionError(
            f"NaN predictions: {int(preds.isna().sum())} row(s); predict every row "
            "(fill or drop rows with missing features before predicting)."
        )
    outside = ~preds.between(0, 1)
    if outside.any():
        raise SubmissionError(
            f"values out of range: {int(outside.sum())} prediction(s) outside [0, 1] "
            f"(min {preds.min():.6g}, max {preds.max():.6g}); use build_submission(..., "
            "rank_per_era=True) to rank them into (0, 1)."
        )
    if np.isclose(preds.std(), 0):
        raise SubmissionError(
            "constant predictions: every row has (nearly) the same value; Numerai rejects them. "
            "Check that the model was trained and the features were passed."
        )
    return frame


def validate_submission(submission: pd.DataFrame | pd.Series, data: NumeraiData) -> pd.DataFrame:
    """Raise :class:`SubmissionError` unless ``submission`` is valid for ``data``.

    :func:`check_shape`, then: unknown ids (not in ``expected_ids(data)``) are dropped with a
    :class:`SubmissionWarning` naming how many (numerai-tools and Numerai ignore them), missing ids,
    numerai-tools' ``validate_submission_numerai`` against the expected ids, and for the
    legacy layout the order (validation then test and live, as in the tournament file).

    Parameters
    ----------
    submission : DataFrame or Series
        ``id,prediction`` columns, or a ``prediction`` column (or Series) indexed by ``id``.
    data : NumeraiData
        The round's data (layout, validation and live ids).

    Returns
    -------
    DataFrame
        ``id,prediction`` columns, without the dropped unknown ids.
    """
    require("numerai-tools")
    from numerai_tools.submissions import validate_submission_numerai

    frame = check_shape(submission)
    frame = frame.assign(**{ID_COL: frame[ID_COL].astype(str)})
    expected = expected_ids(data).astype(str)
    known = frame[ID_COL].isin(expected)
    if not known.all():
        unknown = frame.loc[~known, ID_COL]
        warnings.warn(
            f"unknown ids: dropped {len(unknown)} id(s) that are not in this round's "
            f"{'tournament file' if data.layout == 'legacy' else 'live data'}, e.g. "
            f"{list(unknown[:3])} (Numerai ignores them too).",
            SubmissionWarning,
            stacklevel=2,
        )
        frame = frame.loc[known].reset_index(drop=True)
    ids = frame[ID_COL]
    missing = expected.difference(pd.Index(ids))
    if len(missing):
        raise SubmissionError(
            f"missing ids: {len(missing)} expected id(s) have no prediction, e.g. "
            f"{list(missing[:3])}; predict on every live row."
        )
    _numerai_tools_check(
        validate_submission_numerai, pd.Series(expected), frame[[ID_COL, PRED_COL]].copy()
    )
    if data.layout == "legacy" and not np.array_equal(ids.to_numpy(), expected.to_numpy()):
        first = int(np.flatnonzero(ids.to_numpy() != expected.to_numpy())[0])
        raise SubmissionError(
            f"wrong order: row {first} is id {ids.iloc[first]!r} but the tournament file has "
            f"{expected[first]!r} there; legacy submissions must list the validation rows then "
            "the test and live rows in the tournament file's order (use build_submission)."
        )
    return frame[[ID_COL, PRED_COL]]


# -- write -------------------------------------------------------------------------------------
def write_submission(submission: pd.DataFrame | pd.Series, path: str | os.PathLike) -> Path:
    """Write ``id,prediction`` CSV atomically (a reader never sees half a file).

    The shape is checked first (:func:`check_shape`); run :func:`validate_submission` with the
    round's data for the id checks. A run's ``submission.csv`` is written under the run's lock
    and recorded (:func:`nbutils.run.fingerprints.saving`).
    """
    from nbutils.run.fingerprints import saving

    frame = check_shape(submission)[[ID_COL, PRED_COL]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    with saving(path):
        return atomic_write_text(path, buffer.getvalue())


def _exact_float_option() -> dict:
    """pandas < 3 parses floats to the nearest double only with ``float_precision="round_trip"``;
    pandas 3 always does, and deprecates the option (Pandas4Warning)."""
    if int(pd.__version__.split(".")[0]) < 3:
        return {"float_precision": "round_trip"}
    return {}


def read_submission(path: str | os.PathLike) -> pd.DataFrame:
    """Read a submission CSV (ids as strings; predictions exactly as written)."""
    try:
        return pd.read_csv(path, dtype={ID_COL: str}, **_exact_float_option())
    except (OSError, ValueError) as err:
        raise SubmissionError(f"cannot read submission {path}: {err}") from None


# -- upload ------------------------------------------------------------------------------------
def default_backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): 5, 10, 20, ... capped at 60."""
    return float(min(5 * 2 ** (attempt - 1), 60))


def _retryable(err: BaseException) -> bool:
    """Server trouble worth another try.

    numerapi answers a 5xx (after its own retries) or a connection failure with an empty dict,
    so its callers fail with KeyError/TypeError; requests raises RequestException.
    ValueError is numerapi's GraphQL error (bad keys, unknown model...): not retryable.
    """
    import requests

    return isinstance(err, KeyError | TypeError | requests.RequestException | UploadHTTPError)


class _RedactKeys(logging.Filter):
    """Rewrites log records that contain the keys (e.g. a server error echoing the token)."""

    def __init__(self, keys: NumeraiKeys) -> None:
        super().__init__()
        self.keys = keys

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.keys)
        if clean != message:
            record.msg, record.args = clean, None
        return True


#: Loggers that see the API traffic (filters on a logger apply to its own records only).
_API_LOGGERS = (
    "numerapi",
    "numerapi.base_api",
    "numerapi.numerapi",
    "numerapi.utils",
    "urllib3.connectionpool",
    "requests",
    __name__,
)


@contextlib.contextmanager
def redacted_logging(keys: NumeraiKeys) -> Iterator[None]:
    """While active, numerapi's, urllib3's and this module's log records never hold the keys."""
    redactor = _RedactKeys(keys)
    loggers = [logging.getLogger(name) for name in _API_LOGGERS]
    for log in loggers:
        log.addFilter(redactor)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(redactor)


def _call_with_retries(
    what: str,
    call: Callable[[], Any],
    keys: NumeraiKeys,
    retries: int,
    backoff: Callable[[int], float],
    sleep: Callable[[float], None],
) -> Any:
    """``call()`` with retries on server trouble; every failure becomes a SubmissionError.

    The SubmissionError is raised outside the ``except`` block, so it carries no
    ``__context__`` (the original exception, whose text may hold what a server echoed).
    """
    last = ""
    attempts = max(retries, 1)
    for attempt in range(1, attempts + 1):
        refused = failed = None
        try:
            return call()
        except ValueError as err:  # numerapi: a GraphQL error answer
            refused = redact(str(err), keys)
        except Exception as err:
            if _retryable(err):
                last = f"{type(err).__name__}: {redact(str(err), keys)}"
            else:
                failed = f"{type(err).__name__}: {redact(str(err), keys)}"
        if refused is not None:
            raise SubmissionError(
                f"Numerai refused {what}: {refused}. If it is about authentication, check "
                f"{PUBLIC_ENV} / {SECRET_ENV} (keys with the 'upload submissions' scope)."
            )
        if failed is not None:
            raise SubmissionError(f"{what} failed: {failed}")
        logger.warning("%s failed (attempt %d of %d): %s", what, attempt, attempts, last)
        if attempt < attempts:
            sleep(backoff(attempt))
    raise SubmissionError(
        f"{what} failed after {attempts} attempt(s) (server error or no answer; last: {last}). "
        "Numerai may be down: try again later."
    )


def _keys_for(napi: Any) -> NumeraiKeys:
    """The keys the upload will send: a given client's own, else the environment's or .env's."""
    token = getattr(napi, "token", None) if napi is not None else None
    keys = NumeraiKeys(*token) if token else load_keys()
    if keys is None:
        raise SubmissionError(
            f"no Numerai API keys: set {PUBLIC_ENV} and {SECRET_ENV} in the environment or in a "
            ".env file (create them at numer.ai, Account > API keys, with the "
            "'upload submissions' scope). Never put them in a notebook."
        )
    return keys


def find_model_id(models: dict[str, str], model_name: str) -> str | None:
    """The id of ``model_name`` in ``models`` (numerapi ``get_models``: name -> id): the exact
    name first, else case-insensitively; None when the account has no such model."""
    if model_name in models:
        return models[model_name]
    lowered = {name.lower(): mid for name, mid in models.items()}
    return lowered.get(model_name.lower())


def resolve_model_id(napi: Any, model_name: str, keys: NumeraiKeys, **retry: Any) -> str:
    """The id of ``model_name`` among the account's models (numerapi ``get_models``)."""
    models = _call_with_retries("listing your models", napi.get_models, keys, **retry)
    model_id = find_model_id(models, model_name)
    if model_id is None:
        raise SubmissionError(
            f"no model named {model_name!r} on this account; your models: {sorted(models)}."
        )
    return model_id


#: GraphQL asking for a presigned upload URL, per field (numerapi's queries, the same arguments):
#: predictions (``upload_predictions``) and a pickled model (``model_upload``, no tournament).
_UPLOAD_AUTH_QUERIES = {
    "submission_upload_auth": """
query($filename: String! $tournament: Int! $modelId: String) {
  submission_upload_auth(filename: $filename tournament: $tournament modelId: $modelId) {
    filename url
  }
}
""",
    "computePickleUploadAuth": """
query($filename: String! $modelId: String) {
  computePickleUploadAuth(filename: $filename modelId: $modelId) { filename url }
}
""",
}

#: GraphQL registering an uploaded file as the model's submission (numerapi's mutation).
_CREATE_SUBMISSION_QUERY = """
mutation($filename: String! $tournament: Int! $modelId: String $triggerId: String
         $dataDatestamp: Int) {
  create_submission(filename: $filename tournament: $tournament modelId: $modelId
                    triggerId: $triggerId source: "numerapi" dataDatestamp: $dataDatestamp) { id }
}
"""

#: (connect, read) timeouts of the file PUT, in seconds (numerapi's defaults).
PUT_TIMEOUT = (10.0, 600.0)


class UploadHTTPError(Exception):
    """The file PUT to a presigned URL answered a status other than 2xx (retryable)."""

    def __init__(self, what: str, status: int, reason: str) -> None:
        super().__init__(f"the PUT of {what} answered HTTP {status} {reason}".strip())
        self.status = status


def upload_auth(napi: Any, field: str, filename: str, model_id: str) -> dict[str, str]:
    """Ask Numerai for a presigned URL: ``{"filename": ..., "url": ...}``.

    ``field`` is the GraphQL field (Numerai's names, as numerapi sends them):
    ``submission_upload_auth`` for predictions, ``computePickleUploadAuth`` for a model upload.
    """
    if field not in _UPLOAD_AUTH_QUERIES:
        raise SubmissionError(f"upload_auth: field must be one of {sorted(_UPLOAD_AUTH_QUERIES)}")
    variables: dict[str, Any] = {"filename": filename, "modelId": model_id}
    if field == "submission_upload_auth":
        variables["tournament"] = napi.tournament_id
    answer = napi.raw_query(_UPLOAD_AUTH_QUERIES[field], variables, authorization=True)
    return answer["data"][field]


def put_checked(
    url: str,
    body: bytes,
    what: str,
    headers: dict[str, str | None] | None = None,
    timeout: tuple[float, float] = PUT_TIMEOUT,
) -> None:
    """PUT ``body`` to a presigned ``url`` and raise :class:`UploadHTTPError` unless it is 2xx.

    numerapi's ``upload_predictions`` ignores this status, so an HTTP 500 on the file upload used
    to be reported as a successful submission. Also used by the model upload
    (:func:`nbutils.daily.upload_model.upload_model_checked`).
    """
    import requests

    response = requests.put(url, data=body, headers=headers or {}, timeout=timeout)
    if not 200 <= response.status_code < 300:
        raise UploadHTTPError(what, response.status_code, response.reason or "")


def upload_predictions_checked(napi: Any, path: str | os.PathLike, model_id: str) -> str:
    """numerapi's ``upload_predictions`` in its three steps, checking the PUT's status.

    1. ``submission_upload_auth``: a presigned URL for the file name;
    2. PUT the file's bytes there, refusing any status but 2xx (:func:`put_checked`);
    3. ``create_submission``: register the upload; returns the submission id.
    """
    source = Path(path)
    auth = upload_auth(napi, "submission_upload_auth", source.name, model_id)
    put_checked(
        auth["url"],
        source.read_bytes(),
        what=source.name,
        headers={"x_compute_id": os.getenv("NUMERAI_COMPUTE_ID")},
    )
    variables = {
        "filename": auth["filename"],
        "tournament": napi.tournament_id,
        "modelId": model_id,
        "triggerId": os.getenv("TRIGGER_ID", None),
        "dataDatestamp": None,
    }
    created = napi.raw_query(_CREATE_SUBMISSION_QUERY, variables, authorization=True)
    return created["data"]["create_submission"]["id"]


def upload_submission(
    path: str | os.PathLike,
    model_name: str | None = None,
    model_id: str | None = None,
    napi: Any = None,
    data: NumeraiData | None = None,
    retries: int = 3,
    backoff: Callable[[int], float] = default_backoff,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Upload a submission CSV through numerapi; return the submission id.

    Steps: read and check the file (:func:`check_shape`, and :func:`validate_submission`
    when ``data`` is given, whose dropped unknown ids are not uploaded) so that nothing invalid
    is uploaded; load the keys (environment or ``.env``); resolve ``model_name`` to its id
    (``get_models``); upload with :func:`upload_predictions_checked`, which refuses a file PUT
    that did not answer 2xx (numerapi's own ``upload_predictions`` ignores that status).
    Server errors (5xx, no answer) are retried ``retries`` times, waiting ``backoff(attempt)``
    seconds; a refusal (GraphQL error: bad keys, unknown model) is not retried.
    The keys never appear in a message: errors are passed through :func:`nbutils.run.keys.redact`.

    Parameters
    ----------
    path : path-like
        The CSV written by :func:`write_submission`.
    model_name, model_id : str, optional
        Which model to submit for (one of them).
    napi : numerapi.NumerAPI, optional
        A client to use; by default one is made with the loaded keys whose every request has a
        timeout (:func:`nbutils.daily.client.make_client`: ``$NBUTILS_NUMERAI_TIMEOUT`` seconds,
        default 60).
    data : NumeraiData, optional
        The round's data, for the full id checks.
    retries : int
        Attempts per API call.
    backoff, sleep : callables
        Wait policy (injectable for tests).

    Returns
    -------
    str
        The submission id Numerai returns.
    """
    source = Path(path)
    if not source.is_file():
        raise SubmissionError(f"no submission file at {source}; write it with write_submission.")
    frame = read_submission(source)
    checked = validate_submission(frame, data) if data is not None else check_shape(frame)
    if model_id is None and model_name is None:
        raise SubmissionError("say which model to submit for: pass model_name=... or model_id=...")
    keys = _keys_for(napi)
    if napi is None:  # numerapi with a timeout on every request ($NBUTILS_NUMERAI_TIMEOUT)
        from nbutils.daily.client import make_client

        napi = make_client(keys)
    retry = {"retries": retries, "backoff": backoff, "sleep": sleep}
    with redacted_logging(keys), tempfile.TemporaryDirectory(prefix="nbutils-upload-") as tmp:
        if len(checked) < len(frame):  # unknown ids were dropped: upload the rest only
            source = write_submission(checked, Path(tmp) / source.name)
        if model_id is None:
            model_id = resolve_model_id(napi, model_name, keys, **retry)
        submission_id = _call_with_retries(
            "the upload",
            lambda: upload_predictions_checked(napi, source, model_id),
            keys,
            **retry,
        )
    logger.info("uploaded %s: submission id %s", source.name, submission_id)
    return submission_id
