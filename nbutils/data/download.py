"""Download today's Numerai dataset (tutorial step 2A): numerapi, retries, timeouts, verification.

The steps of :func:`download_numerai_data`:

1. ask Numerai's GraphQL API (through a ``numerapi.NumerAPI`` client) which versions and files it
   offers and which round is open; every post has a timeout (:data:`DEFAULT_TIMEOUT`) and HTTP
   5xx answers are retried with doubling sleeps;
2. skip the files already complete (:func:`_is_current`: the manifest records their size and
   SHA-256 from a verified download; live files also the round);
3. for each other file, ask for its address and stream it to a temporary name with the same
   timeouts (a body that stalls for ``read`` seconds fails), check its length and, when the
   server announces one (``Content-MD5``, ``x-amz-checksum-sha256``), its checksum;
4. verify the whole file (:func:`verify_download`: every parquet row group decodes, JSON parses),
   and only then rename it to its final name and record it in the manifest.

numerapi itself posts without a timeout and reads files with a fixed 600 s one, so the posts go
through :func:`_timed_query` (bound to the client while we use it, then removed) and the files
through :func:`_stream`. No key is ever sent: Numerai's datasets are public.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numerapi
import numerapi.base_api
import pyarrow as pa
import pyarrow.parquet as pq
import requests
import tqdm

from nbutils.checks import check_int, check_number
from nbutils.data.layout import MANIFEST_NAME, V5_FILES
from nbutils.data.load import columns_per_read
from nbutils.errors import DataError, DownloadError
from nbutils.util import natural_sorted, read_json, release_memory, write_json
from nbutils.versions import require

#: Files fetched only when named in ``files=``: the train benchmark models (hundreds of MB on
#: Numerai, and nothing in nbutils reads them).
ON_REQUEST_FILES: tuple[str, ...] = (V5_FILES["train_benchmark_models"],)
#: The v5 files download_numerai_data fetches by default (those Numerai lists for the version):
#: design.md's v5 files (data, features.json, example predictions, meta model, validation and
#: live benchmark models) but not :data:`ON_REQUEST_FILES`.
V5_DOWNLOAD_FILES: tuple[str, ...] = tuple(
    name for name in V5_FILES.values() if name not in ON_REQUEST_FILES
)
_REQUIRED_DOWNLOADS = ("train.parquet", "validation.parquet", "live.parquet", "features.json")
#: Files that change every round: fetched again when the current round is not the manifest's.
LIVE_FILES: tuple[str, ...] = (
    "live.parquet",
    "live_example_preds.parquet",
    "live_benchmark_models.parquet",
)
#: Seconds to wait (to connect, for the next bytes of an answer) before giving up on a request:
#: a server that accepts the connection but never answers, or a file body that stalls, fails
#: after 60 s instead of blocking forever (numerapi's own posts) or for 600 s (its file reads).
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Bytes read from the network at a time.
_CHUNK = 1 << 20

_OFFLINE_HINT = (
    "Check the internet connection and try again later, or work offline: use "
    'data_source="synthetic" (nbutils.data.make_synthetic_dataset) or a local directory that '
    "already holds the files."
)
_DATASET_QUERY = """
query ($filename: String!, $round: Int, $tournament: Int) {
    dataset(filename: $filename, round: $round, tournament: $tournament)
}"""


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message, flush=True)


def _check_timeout(timeout: object) -> tuple[float, float]:
    """``timeout`` (seconds, or (connect, read) seconds) as a pair of positive numbers."""
    pair = timeout if isinstance(timeout, tuple | list) else (timeout, timeout)
    if len(pair) != 2:
        raise DownloadError(
            f"timeout={timeout!r} is invalid: give seconds or (connect, read) seconds"
        )
    connect, read = (check_number(t, "timeout", error=DownloadError) for t in pair)
    if connect <= 0 or read <= 0:
        raise DownloadError(f"timeout={timeout!r} is invalid: give positive seconds")
    return connect, read


# --------------------------------------------------------------------------------------------
# Talking to Numerai: GraphQL posts and file reads, each with a timeout
# --------------------------------------------------------------------------------------------


def _timed_query(
    query: str,
    variables: dict | None = None,
    authorization: bool = False,
    *,
    retries: int,
    delay: float,
    timeout: tuple[float, float],
    backoff: float = 2.0,
) -> dict[str, Any]:
    """numerapi's ``raw_query`` with a timeout on every post, and failures raised.

    The same request as numerapi's (the JSON body ``{"query", "variables"}`` posted to
    ``numerapi.base_api.API_TOURNAMENT_URL``), the same retries of HTTP 5xx with sleeps of
    ``delay * backoff**k``; but a failed request raises (``requests``' exception, or HTTPError
    after the last retry) where numerapi returns ``{}``, and keys are never sent.
    """
    if authorization:
        raise ValueError("nbutils downloads public data only and sends no keys")
    body = {"query": query, "variables": variables}
    headers = {"Content-type": "application/json", "Accept": "application/json"}
    for attempt in range(retries):
        response = requests.post(
            numerapi.base_api.API_TOURNAMENT_URL, json=body, headers=headers, timeout=timeout
        )
        if response.status_code < 500 or attempt == retries - 1:
            break
        time.sleep(delay * backoff**attempt)
    response.raise_for_status()
    result = response.json()
    if isinstance(result, dict) and result.get("errors"):
        errors = result["errors"] if isinstance(result["errors"], list) else [result["errors"]]
        raise ValueError("; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict)))
    return result


@contextlib.contextmanager
def _timed_client(
    napi: Any, retries: int, delay: float, timeout: tuple[float, float]
) -> Iterator[None]:
    """Give ``napi`` :func:`_timed_query` as its ``raw_query`` while we use it, then restore it.

    numerapi's ``list_datasets`` and ``get_current_round`` call ``self.raw_query``; binding ours
    on the instance gives them a timeout and our retry settings without touching numerapi.
    """
    own = vars(napi).get("raw_query")
    napi.raw_query = functools.partial(_timed_query, retries=retries, delay=delay, timeout=timeout)
    try:
        yield
    finally:
        if own is not None:
            napi.raw_query = own
        else:
            del napi.raw_query


def _redact(text: str, napi: Any) -> str:
    """``text`` without the keys numerapi may have picked up from the environment."""
    for secret in getattr(napi, "token", None) or ():
        if isinstance(secret, str) and secret:
            text = text.replace(secret, "***")
    return text


def _ask(what: str, call: Callable[[], Any], napi: Any) -> Any:
    """Run a request; any failure becomes a :class:`DownloadError` saying what to do.

    A missing field in an answer raises KeyError/TypeError/IndexError, a GraphQL error
    ValueError, a failed, refused or timed-out request a ``requests`` exception.
    """
    try:
        return call()
    except (KeyError, TypeError, IndexError, ValueError, OSError, requests.RequestException) as err:
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if isinstance(err, KeyError | TypeError | IndexError):
            reason = "no valid answer from the Numerai API"
        elif isinstance(err, requests.Timeout) or "timed out" in str(err).lower():
            reason = (
                f"no answer within the timeout ({reason}); if the connection is just slow, pass "
                "a larger timeout=(connect, read) seconds"
            )
        raise DownloadError(
            f"Could not {what} from Numerai ({_redact(reason, napi)}). {_OFFLINE_HINT}"
        ) from err


def _announced_digests(headers: Any) -> dict[str, bytes]:
    """The body checksums the server announces: ``Content-MD5`` (RFC 1864) and S3's
    ``x-amz-checksum-sha256``, both base64 digests. ETags are not used: S3's are not always MD5s."""
    found = {}
    for header, algorithm in (("Content-MD5", "md5"), ("x-amz-checksum-sha256", "sha256")):
        value = headers.get(header)
        if value:
            with contextlib.suppress(ValueError):
                found[algorithm] = base64.b64decode(value, validate=True)
    return found


def _stream(
    url: str, dest: Path, timeout: tuple[float, float], show_progress: bool, remote: str
) -> dict[str, Any]:
    """Stream ``url`` into ``dest``; return its size and SHA-256.

    Raises :class:`DownloadError` when the body is shorter or longer than announced or fails an
    announced checksum; a stall of ``timeout[1]`` seconds raises ``requests``' ConnectionError.
    """
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        announced = _announced_digests(response.headers)
        digests = {name: hashlib.new(name) for name in {"sha256", *announced}}
        length = response.headers.get("Content-Length")
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        total = int(length) if length and length.isdigit() and not encoded else None
        with (
            open(dest, "wb") as fh,
            tqdm.tqdm(
                total=total, unit="B", unit_scale=True, desc=remote, disable=not show_progress
            ) as bar,
        ):
            for chunk in response.iter_content(_CHUNK):
                fh.write(chunk)
                for digest in digests.values():
                    digest.update(chunk)
                bar.update(len(chunk))
    size = dest.stat().st_size
    if total is not None and size != total:
        raise DownloadError(
            f"The download of {remote} is incomplete ({size} of {total} bytes): run it again. "
            f"{_OFFLINE_HINT}"
        )
    for name, expected in announced.items():
        if digests[name].digest() != expected:
            raise DownloadError(
                f"The download of {remote} is corrupt: its {name} checksum differs from the one "
                f"Numerai announced. Nothing was kept; run the download again. {_OFFLINE_HINT}"
            )
    return {"bytes": size, "sha256": digests["sha256"].hexdigest()}


# --------------------------------------------------------------------------------------------
# Verifying files
# --------------------------------------------------------------------------------------------


def _decode_parquet(path: Path) -> None:
    """Decode every column of every row group, a slice of columns at a time.

    A body damaged in transit whose footer survived opens fine and fails here; page CRCs are
    checked where the writer stored them.
    """
    pf = pq.ParquetFile(path, page_checksum_verification=True)
    names = pf.schema_arrow.names
    for group in range(pf.num_row_groups):
        step = columns_per_read(pf.metadata.row_group(group).num_rows)
        for start in range(0, len(names), step):
            pf.read_row_group(group, columns=names[start : start + step], use_threads=True)
    release_memory()


def verify_download(path: Path, name: str | None = None, *, full: bool = True) -> None:
    """Raise :class:`DataError` unless ``path`` is a complete file of its kind.

    parquet: every row group decodes (``full``), or only the footer reads (``full=False``, the
    quick check of a file verified when it was downloaded); JSON: it parses; other: not empty.
    ``name`` is the file's final name when ``path`` is a temporary one.
    """
    shown = path.with_name(name or path.name)
    try:
        if shown.suffix == ".parquet":
            if full:
                _decode_parquet(path)
            else:
                pq.read_metadata(path)
        elif shown.suffix == ".json":
            read_json(path)
        elif path.stat().st_size == 0:
            raise ValueError("empty file")
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(
            f"{shown} is not a complete {shown.suffix.lstrip('.')} file ({type(err).__name__}: {err})"
        ) from err


# --------------------------------------------------------------------------------------------
# Versions, files and the manifest
# --------------------------------------------------------------------------------------------


def _pick_version(listed: Sequence[str], version: str) -> str:
    """``latest``: the newest v5.x (natural order) that lists ``train.parquet``; else ``version``."""
    versions = {name.split("/", 1)[0] for name in listed if "/" in name}
    if version == "latest":
        candidates = [
            v for v in versions if re.match(r"^v5(\.\d+)*$", v) and f"{v}/train.parquet" in listed
        ]
        if not candidates:
            raise DownloadError(
                f"Numerai lists no v5 dataset with train.parquet (versions: {natural_sorted(versions)}). "
                "Pass version= one of them, or use the synthetic data."
            )
        return natural_sorted(candidates)[-1]
    if version not in versions:
        raise DownloadError(
            f"Numerai does not offer dataset version {version!r}: choose one of "
            f'{natural_sorted(versions)} or version="latest"'
        )
    return version


def _pick_files(listed: Sequence[str], version: str, files: Sequence[str] | None) -> list[str]:
    """The files to fetch: ``files`` (each must be listed) or every default file listed."""
    offered = {name.split("/", 1)[1] for name in listed if name.startswith(f"{version}/")}
    if files is None:
        missing = [f for f in _REQUIRED_DOWNLOADS if f not in offered]
        if missing:
            raise DownloadError(
                f"Numerai's {version} lacks {missing}: choose another version, or pass files=[...]"
            )
        return [f for f in V5_DOWNLOAD_FILES if f in offered]
    unknown = [f for f in files if f not in offered]
    if unknown:
        raise DownloadError(f"Numerai's {version} has no {unknown}: choose among {sorted(offered)}")
    return list(files)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = read_json(path)
    except (OSError, ValueError):
        return {"files": {}}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return {"files": {}}
    return manifest


def _is_current(path: Path, name: str, manifest: dict[str, Any], current_round: int | None) -> bool:
    """A file counts as complete when the manifest records a verified download of it (size and
    SHA-256) of the same size, its footer still reads, and (live files) it was fetched in the
    current round. A file the manifest does not know is fetched again, and verified."""
    entry = manifest["files"].get(name)
    if not path.is_file() or not isinstance(entry, dict) or "sha256" not in entry:
        return False
    if entry.get("bytes") != path.stat().st_size:
        return False
    try:
        verify_download(path, full=False)
    except DataError:
        return False
    return name not in LIVE_FILES or (
        entry.get("round") == current_round and current_round is not None
    )


def _fetch(
    napi: Any,
    remote: str,
    final: Path,
    timeout: tuple[float, float],
    show_progress: bool,
) -> dict[str, Any]:
    """Download ``remote`` beside ``final`` under a temporary name, verify it, then rename.

    Returns the manifest entry (bytes, sha256). The temporary names (ours, and numerapi's
    ``.temp`` from older versions) are removed whatever happens, so a failed or corrupt download
    never leaves a file under ``final`` and never replaces the file already there.
    """
    tmp = final.with_name(f".{final.name}.download")
    leftovers = (tmp, Path(f"{tmp}.temp"))
    for p in leftovers:
        p.unlink(missing_ok=True)
    try:
        variables = {
            "filename": remote,
            "round": None,
            "tournament": getattr(napi, "tournament_id", 8),
        }
        url = _ask(
            f"get the address of {remote}",
            lambda: napi.raw_query(_DATASET_QUERY, variables)["data"]["dataset"],
            napi,
        )
        entry = _ask(
            f"download {remote}", lambda: _stream(url, tmp, timeout, show_progress, remote), napi
        )
        try:
            verify_download(tmp, final.name)
        except DataError as err:
            raise DownloadError(
                f"The download of {remote} is incomplete or corrupt ({err}). Nothing was kept; run "
                f"the download again. {_OFFLINE_HINT}"
            ) from err
        os.replace(tmp, final)
        return entry
    finally:
        for p in leftovers:
            p.unlink(missing_ok=True)


def download_file(
    napi: Any, remote: str, final: str | os.PathLike, timeout: float | tuple[float, float]
) -> Path:
    """Download one file ``remote`` (e.g. ``"v5.2/live.parquet"``) to ``final``, verified.

    The steps of :func:`_fetch`: its address through ``napi.raw_query``, the body streamed with
    ``timeout`` (seconds, or (connect, read) seconds), its length and announced checksum
    checked, the whole file verified, then renamed. Used by the daily ``submit`` for the round's
    files; raises :class:`~nbutils.errors.DownloadError`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _fetch(napi, remote, final, _check_timeout(timeout), show_progress=False)
    return final


def _make_napi(show_progress: bool) -> Any:
    """A real, anonymous ``numerapi.NumerAPI`` (Numerai's datasets are public)."""
    require("numerapi")
    return numerapi.NumerAPI(verbosity="warning", show_progress_bars=show_progress)


def download_numerai_data(
    data_dir: str | os.PathLike,
    version: str = "latest",
    files: Sequence[str] | None = None,
    napi: Any = None,
    *,
    retries: int = 2,
    retry_delay: float = 2.0,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    show_progress: bool = True,
    verbose: bool = True,
) -> Path:
    """Download today's Numerai dataset with numerapi (tutorial step 2A) and return its directory.

    Parameters
    ----------
    data_dir : path
        Parent directory; the files go to ``<data_dir>/<version>/`` (load it with ``load_data``).
    version : str
        ``"latest"`` (the newest ``v5.x`` in natural order that lists ``train.parquet``) or a
        version Numerai lists, such as ``"v5.0"``.
    files : list of str, optional
        File names inside the version (default: the v5 files of design.md that Numerai lists;
        train, validation, live and features.json must be among them).
    napi : numerapi.NumerAPI, optional
        Default: a new anonymous client. A client you pass is used as it is, except that its
        ``raw_query`` is replaced by one with our retries and timeout while the download runs.
    retries, retry_delay : int, float
        Tries of a GraphQL post answered with HTTP 5xx, and the first sleep between them
        (doubling).
    timeout : float or (float, float)
        Seconds to wait to connect, and for the next bytes of an answer or of a file body;
        default :data:`DEFAULT_TIMEOUT` (10 s, 60 s). A server that never answers, or a download
        that stalls, fails after that with a :class:`~nbutils.errors.DownloadError`.
    show_progress, verbose : bool
        A progress bar per file; one line per file.

    Returns
    -------
    Path
        ``<data_dir>/<version>``.

    Notes
    -----
    The tutorial's ``download_current_dataset`` is gone from numerapi; this is its successor:
    ``list_datasets`` then the files one by one. Every file is downloaded under a temporary
    name, checked against the announced length and checksum, verified whole (every parquet row
    group decodes) and only then renamed; on any failure a DownloadError says what to do and no
    partial or corrupt file is kept. A verified file is not fetched again ("already have the
    newest data"), except the live files when the round changed; ``.nbutils_manifest.json``
    records each file's round, size and SHA-256.
    """
    attempts = check_int(retries, "retries", 1, error=DownloadError)
    delay = check_number(retry_delay, "retry_delay", 0.0, error=DownloadError)
    limits = _check_timeout(timeout)
    if napi is None:
        napi = _make_napi(show_progress)
    with _timed_client(napi, attempts, delay, limits):
        listed = list(_ask("list the datasets", napi.list_datasets, napi) or [])
        chosen = _pick_version(listed, version)
        names = _pick_files(listed, chosen, files)
        current_round = _ask("get the current round", napi.get_current_round, napi)
        out = Path(data_dir) / chosen
        out.mkdir(parents=True, exist_ok=True)
        manifest_path = out / MANIFEST_NAME
        manifest = _read_manifest(manifest_path)
        for name in names:
            final = out / name
            if _is_current(final, name, manifest, current_round):
                _say(verbose, f"already have the newest data: {chosen}/{name}")
                continue
            _say(verbose, f"downloading {chosen}/{name} (round {current_round})")
            entry = _fetch(napi, f"{chosen}/{name}", final, limits, show_progress)
            manifest["files"][name] = {**entry, "round": current_round}
            manifest.update(version=chosen, round=current_round)
            write_json(manifest_path, manifest)
    return out
