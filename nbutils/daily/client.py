"""The numerapi client of the daily commands: a timeout on every request, and a clear word when
numerapi is too old.

numerapi posts its GraphQL queries with ``timeout=None`` (``numerapi.utils.post_with_err_handling``),
so a server that accepts the connection and never answers blocks a command forever. The client of
:func:`make_client` is a real ``numerapi.NumerAPI`` whose ``raw_query`` (through which every
numerapi method used here goes) is replaced, on that instance only, by :func:`timed_raw_query`:
the same request (the JSON body ``{"query", "variables"}`` posted to
``numerapi.base_api.API_TOURNAMENT_URL``, the ``Authorization: Token public$secret`` header when
asked), the same retries of HTTP 5xx with sleeps of ``delay * backoff**k``, but with

    timeout = (connect, read) = (min(10, T), T) seconds,  T = $NBUTILS_NUMERAI_TIMEOUT or 60

``read`` bounds the wait for each answer's next bytes. A post without an answer in time raises
:class:`NumeraiUnavailableError` (exit 5) naming the timeout and the variable. Files are read by
:func:`nbutils.data.download.download_file` with the same pair; the file PUTs of an upload use
:data:`nbutils.submission.PUT_TIMEOUT`.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any

import requests

from nbutils.daily.errors import DailyError, NumeraiUnavailableError
from nbutils.run.keys import NumeraiKeys

#: The environment variable holding the seconds to wait for an answer from Numerai.
TIMEOUT_ENV = "NBUTILS_NUMERAI_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 60.0
#: The oldest numerapi with every call the daily commands make (``list_rounds`` and
#: ``submission_scores`` arrived in numerapi 2.23.0).
MIN_NUMERAPI = "2.23"
_FIELD = re.compile(r"\{\s*(\w+)")
sleep = time.sleep  # between retries of a 5xx answer (tests replace it)


def timeout_seconds(value: float | str | None = None) -> tuple[float, float]:
    """``(connect, read)`` from ``value`` or, when None, ``$NBUTILS_NUMERAI_TIMEOUT`` (default 60)."""
    where = "timeout" if value is not None else TIMEOUT_ENV
    raw = value if value is not None else os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise DailyError(
            f"{where}={raw!r} is not a number of seconds: give a positive number, "
            f"e.g. {TIMEOUT_ENV}=120 (the default is {DEFAULT_TIMEOUT_SECONDS:g})."
        )
    return min(10.0, seconds), seconds


def timed_raw_query(
    napi: Any,
    query: str,
    variables: dict | None = None,
    authorization: bool = False,
    *,
    retries: int = 3,
    delay: float = 5,
    backoff: float = 2,
) -> dict[str, Any]:
    """numerapi's ``raw_query`` with ``napi.nbutils_timeout`` on every post (module docstring).

    Like numerapi: ValueError for a GraphQL error answer or missing keys. Unlike numerapi, a
    failed request raises (``requests``' exception, HTTPError after the last 5xx) instead of
    returning ``{}``, and a post without an answer in time raises NumeraiUnavailableError.
    """
    import numerapi.base_api

    connect, read = napi.nbutils_timeout
    headers = {"Content-type": "application/json", "Accept": "application/json"}
    if authorization:
        token = getattr(napi, "token", None)
        if not token:
            raise ValueError("API keys required for this action.")
        headers["Authorization"] = f"Token {token[0]}${token[1]}"
    body = {"query": query, "variables": variables}
    for attempt in range(max(int(retries), 1)):
        try:
            response = requests.post(
                numerapi.base_api.API_TOURNAMENT_URL,
                json=body,
                headers=headers,
                timeout=(connect, read),
            )
        except requests.Timeout:
            field = _FIELD.search(query)
            raise NumeraiUnavailableError(
                f"Numerai did not answer within {read:g} s (query {field.group(1) if field else '?'}"
                f"). It may be down or the network slow: try again later, or wait longer with "
                f"{TIMEOUT_ENV}=SECONDS."
            ) from None
        if response.status_code < 500 or attempt == max(int(retries), 1) - 1:
            break
        sleep(delay * backoff**attempt)
    response.raise_for_status()
    result = response.json()
    if isinstance(result, dict) and result.get("errors"):
        errors = result["errors"] if isinstance(result["errors"], list) else [result["errors"]]
        raise ValueError(
            "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
        )
    return result


def make_client(keys: NumeraiKeys | None, timeout: float | None = None) -> Any:
    """A numerapi client with ``keys`` (anonymous when None) whose every post has a timeout:
    ``timeout`` seconds, else ``$NBUTILS_NUMERAI_TIMEOUT``, else 60. An old numerapi is refused
    here, named (``nbutils.versions.require``), before a missing method could pass for a server
    error."""
    import numerapi

    from nbutils.versions import require

    require("numerapi")
    limits = timeout_seconds(timeout)
    if keys is None:
        napi = numerapi.NumerAPI(show_progress_bars=False)
    else:
        napi = numerapi.NumerAPI(keys.public_id, keys.secret_key, show_progress_bars=False)
    napi.nbutils_timeout = limits

    def raw_query(query: str, variables: dict | None = None, authorization: bool = False, **kw):
        return timed_raw_query(napi, query, variables, authorization, **kw)

    napi.raw_query = raw_query
    return napi


def numerapi_too_old(err: AttributeError) -> DailyError | None:
    """A DailyError saying numerapi is too old when ``err`` is a numerapi object's missing
    attribute (an API an older numerapi lacks); None for any other AttributeError."""
    owner = getattr(err, "obj", None)
    if owner is None or not type(owner).__module__.startswith("numerapi"):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("numerapi")
    except PackageNotFoundError:
        installed = "?"
    return DailyError(
        f"numerapi {installed} is too old: it has no {err.name!r}; the daily commands need "
        f"numerapi >= {MIN_NUMERAPI}. Upgrade it: pip install -U 'numerapi>={MIN_NUMERAPI}'."
    )
