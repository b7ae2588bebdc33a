"""The round through numerapi: is one open, when does the next open, what does it pay.

Numerai runs a round every day from Tuesday to Saturday. ``rounds(number: 0)`` is the current
round; it takes submissions while ``openTime <= now < closeStakingTime`` (numerapi's own
``check_round_open`` rule; ``check_new_round``'s 12-hour default does not fit daily rounds, so it
is not used). Between rounds Numerai may answer "Current round not open for submissions"; then
the upcoming round (``list_rounds(status="upcoming")``) says when the next one opens.

Every call goes through :func:`api_call`, which turns numerapi's failures into the errors of
:mod:`nbutils.daily.errors` with the keys redacted (an API an old numerapi lacks: "numerapi too
old", exit 1, never a server error). The client (:func:`nbutils.daily.client.make_client`) has a
timeout on every request. The uploads themselves are
:mod:`nbutils.submission`'s checked steps (a failed file PUT, which numerapi ignores, raises
``UploadHTTPError``, which :func:`api_call` makes a :class:`NumeraiUnavailableError`, exit 5).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbutils.daily.client import make_client as make_client  # re-exported
from nbutils.daily.client import numerapi_too_old
from nbutils.daily.errors import DailyError, KeysError, NumeraiUnavailableError
from nbutils.run.keys import PUBLIC_ENV, SECRET_ENV, NumeraiKeys, load_keys, redact

#: Today's defaults when the round does not publish its own (docs/glossary.md).
DEFAULT_MULTIPLIERS = {"payout_factor": 1.0, "corr_multiplier": 0.5, "mmc_multiplier": 2.0}
_AUTH_WORDS = ("authenticat", "api key", "token", "permission", "unauthorized")


def require_keys() -> NumeraiKeys:
    """The keys from the environment or ``.env``, or :class:`KeysError` saying how to set them."""
    keys = load_keys()
    if keys is None:
        raise KeysError(
            f"no Numerai API keys: set {PUBLIC_ENV} and {SECRET_ENV} in the environment (or a "
            ".env file; in GitHub Actions, the repository's secrets). Create them at numer.ai, "
            "Account > API keys."
        )
    return keys


def api_call(what: str, call: Callable[[], Any], keys: NumeraiKeys | None) -> Any:
    """``call()``; numerapi's failures become DailyErrors whose text never holds the keys.

    numerapi raises ValueError for an error answer (bad keys, unknown model, closed round),
    answers a server error or no answer with an empty dict (so the caller fails with
    KeyError/TypeError), and lets requests' exceptions through; our client's ``raw_query``
    raises requests' exceptions and NumeraiUnavailableError on a timeout. An AttributeError of
    a numerapi object (an API an old numerapi lacks) says which numerapi is needed.
    """
    refused = failed = too_old = None
    try:
        return call()
    except DailyError:
        raise
    except AttributeError as err:  # an API this numerapi lacks, or a bug: never "server error"
        too_old = numerapi_too_old(err)
        if too_old is None:
            raise
    except ValueError as err:
        refused = redact(str(err), keys)
    except Exception as err:  # KeyError, TypeError, requests.RequestException
        failed = f"{type(err).__name__}: {redact(str(err), keys)}"
    if too_old is not None:
        raise too_old
    if refused is not None:
        if any(word in refused.lower() for word in _AUTH_WORDS):
            raise KeysError(
                f"Numerai refused the keys while {what}: {refused}. Check {PUBLIC_ENV} and "
                f"{SECRET_ENV} (scopes: upload submissions, read user info, compute)."
            )
        raise DailyError(f"Numerai refused {what}: {refused}")
    raise NumeraiUnavailableError(
        f"{what} failed ({failed}): Numerai had a server error or did not answer. Try again later."
    )


def parse_time(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    text = str(value).replace("Z", "+00:00")
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class RoundStatus:
    """The current round and whether it takes submissions now."""

    number: int | None
    is_open: bool
    open_time: dt.datetime | None = None
    close_time: dt.datetime | None = None
    next_open: dt.datetime | None = None
    payout_factor: float | None = None

    def describe(self) -> str:
        if self.is_open:
            return f"round {self.number} is open until {self.close_time:%Y-%m-%d %H:%M} UTC"
        when = (
            f"the next round opens at {self.next_open:%Y-%m-%d %H:%M} UTC"
            if self.next_open
            else "daily rounds open Tuesday to Saturday (see numer.ai for the time)"
        )
        if self.next_open is not None and self.next_open == self.open_time:
            return f"round {self.number} is not open yet: it opens at {self.next_open:%Y-%m-%d %H:%M} UTC"
        last = f"round {self.number} closed" if self.number else "no round is open"
        return f"{last}; {when}"


def _current_round(napi: Any, keys: NumeraiKeys | None) -> dict[str, Any] | None:
    """``rounds(number: 0)``, or None between rounds ("Current round not open ...")."""
    try:
        found = api_call("asking for the current round", lambda: napi.list_rounds(number=0), keys)
    except DailyError as err:
        if type(err) is DailyError and "not open" in str(err).lower():
            return None
        raise
    return found[0] if found else None


def round_status(
    napi: Any, keys: NumeraiKeys | None = None, now: dt.datetime | None = None
) -> RoundStatus:
    """Ask numerapi for the current round and tell whether it is open now."""
    now = now or dt.datetime.now(dt.UTC)
    current = _current_round(napi, keys)
    if current:
        opens = parse_time(current.get("openTime"))
        closes = parse_time(current.get("closeStakingTime") or current.get("closeTime"))
        factor = current.get("payoutFactor")
        if opens and closes and opens <= now < closes:
            return RoundStatus(
                current["number"],
                True,
                opens,
                closes,
                payout_factor=None if factor is None else float(factor),
            )
        if opens and opens > now:  # announced, not open yet
            return RoundStatus(current["number"], False, opens, closes, next_open=opens)
    upcoming = None
    with contextlib.suppress(Exception):
        nxt = napi.list_rounds(status="upcoming", limit=1)
        upcoming = parse_time(nxt[0].get("openTime")) if nxt else None
    return RoundStatus(
        current["number"] if current else None,
        False,
        parse_time(current.get("openTime")) if current else None,
        parse_time(current.get("closeStakingTime")) if current else None,
        next_open=upcoming,
    )


def round_multipliers(napi: Any, number: int, keys: NumeraiKeys | None = None) -> dict[str, float]:
    """``payout_factor``, ``corr_multiplier`` and ``mmc_multiplier`` of round ``number``.

    From the round's ``payoutFactor`` and its payout score configs (``isPayout``; a name
    containing ``corr`` or ``mmc``, ``defaultMultiplier``); today's defaults fill what is missing.
    Pass them to ``nbutils.metrics.stake_payout`` as keywords.
    """
    found = api_call(f"reading round {number}", lambda: napi.list_rounds(number=number), keys)
    out = dict(DEFAULT_MULTIPLIERS)
    if not found:
        return out
    rnd = found[0]
    if rnd.get("payoutFactor") is not None:
        out["payout_factor"] = float(rnd["payoutFactor"])
    for config in rnd.get("roundScoreConfigs") or []:
        if not config.get("isPayout") or config.get("defaultMultiplier") is None:
            continue
        name = str(config.get("name", "")).lower()
        key = "mmc_multiplier" if "mmc" in name else "corr_multiplier" if "corr" in name else None
        if key:
            out[key] = float(config["defaultMultiplier"])
    return out
