"""``python -m nbutils scores``: a model's recent round scores, a table and a plot.

Scores come from numerapi's ``submission_scores`` (one row per round and score name; the latest
day of each round). Per round: CORR (the ``v2_corr20`` score, else the first score named
``*corr*``), MMC, the round's payout factor and multipliers (:func:`round_multipliers`, from
the round's score configs), and the payout of ``nbutils.metrics.stake_payout``::

    stake * clip(payout_factor * (corr * corr_multiplier + mmc * mmc_multiplier), -0.05, 0.05)

With no ``--stake`` the payout is shown per NMR staked (stake = 1).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nbutils.daily.errors import DailyError
from nbutils.daily.round import api_call, make_client, require_keys, round_multipliers
from nbutils.daily.submit import resolve_model_id
from nbutils.metrics import stake_payout
from nbutils.run.keys import NumeraiKeys
from nbutils.submission import redacted_logging

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn
    from matplotlib.figure import Figure

CORR_NAMES = ("v2_corr20", "canon_corr", "corr20", "corr")


def _pick(columns: list[str], preferred: tuple[str, ...], word: str) -> str | None:
    lowered = {c.lower(): c for c in columns}
    for name in preferred:
        if name in lowered:
            return lowered[name]
    found = [c for c in columns if word in c.lower()]
    return found[0] if found else None


def check_stake(stake: float) -> float:
    """``stake`` when it is a finite number of NMR, 0 or more; else DailyError naming --stake."""
    if not isinstance(stake, int | float) or not math.isfinite(stake) or stake < 0:
        raise DailyError(
            f"--stake must be a finite number of NMR, 0 or more (e.g. --stake 100), got {stake}."
        )
    return float(stake)


def scores_table(
    rows: list[dict[str, Any]],
    multipliers: Callable[[int], dict[str, float]],
    stake: float = 1.0,
) -> pd.DataFrame:
    """One row per round: corr, mmc, the round's multipliers and the payout (per ``stake``)."""
    if not rows:
        return pd.DataFrame(
            columns=["corr", "mmc", "payout_factor", "corr_multiplier", "mmc_multiplier", "payout"]
        )
    frame = pd.DataFrame(rows)
    frame = frame.sort_values(["roundNumber", "day"] if "day" in frame else ["roundNumber"])
    wide = frame.pivot_table(
        index="roundNumber", columns="displayName", values="value", aggfunc="last"
    )
    names = [str(c) for c in wide.columns]
    corr_col, mmc_col = _pick(names, CORR_NAMES, "corr"), _pick(names, ("mmc",), "mmc")
    table = pd.DataFrame(index=wide.index.astype(int))
    table.index.name = "round"
    table["corr"] = wide[corr_col] if corr_col else float("nan")
    table["mmc"] = wide[mmc_col] if mmc_col else 0.0
    mult = pd.DataFrame([multipliers(int(r)) for r in table.index], index=table.index)
    table = table.join(mult)
    table["payout"] = [
        float(
            stake_payout(
                stake,
                row.corr,
                0.0 if pd.isna(row.mmc) else row.mmc,
                payout_factor=row.payout_factor,
                corr_multiplier=row.corr_multiplier,
                mmc_multiplier=row.mmc_multiplier,
            )
        )
        for row in table.itertuples()
    ]
    return table


def plot_scores(table: pd.DataFrame, model_name: str) -> Figure:
    """Bars of CORR and MMC per round, and the cumulative payout, with Japanese labels like
    the notebooks' figures (:func:`nbutils.plots.plot_round_scores`)."""
    from nbutils.plots import plot_round_scores

    return plot_round_scores(table, model_name)


def recent_scores(
    napi: Any, model_name: str, keys: NumeraiKeys, rounds: int = 20, stake: float = 1.0
) -> pd.DataFrame:
    """The scores table of ``model_name``'s last ``rounds`` rounds."""
    if rounds < 1:
        raise DailyError(f"--rounds must be 1 or more, got {rounds}.")
    check_stake(stake)
    model_id = resolve_model_id(napi, model_name, keys)
    rows = api_call(
        "reading the scores",
        lambda: napi.submission_scores(model_id, last_n_rounds=rounds),
        keys,
    )
    cache: dict[int, dict[str, float]] = {}

    def multipliers(number: int) -> dict[str, float]:
        if number not in cache:
            cache[number] = round_multipliers(napi, number, keys)
        return cache[number]

    return scores_table(rows, multipliers, stake)


def scores_command(
    model_name: str,
    rounds: int = 20,
    out: str | os.PathLike = "scores.png",
    stake: float | None = None,
    say: Callable[[str], None] = print,
    napi: Any = None,
) -> pd.DataFrame:
    """Print the table and save the plot to ``out``."""
    from nbutils.run.artifacts import save_figure

    if stake is not None:
        check_stake(stake)
    path = Path(out).expanduser()
    if path.suffix.lower() != ".png":
        raise DailyError(f"--out {path}: the plot is saved as PNG; give a name ending in .png.")
    keys = require_keys()
    napi = napi or make_client(keys)
    with redacted_logging(keys):
        table = recent_scores(napi, model_name, keys, rounds, 1.0 if stake is None else stake)
    if table.empty:
        say(f"no scores yet for {model_name}: scores arrive a few days after a round closes.")
        return table
    unit = f"payout for {stake} NMR" if stake is not None else "payout per NMR staked"
    say(f"{model_name}: last {len(table)} round(s) ({unit})")
    say(table.round(4).to_string())
    save_figure(plot_scores(table, model_name), path)
    say(f"saved {path}")
    return table
