"""Numerai model names, checked where they enter (``--model-name``).

Numerai's documentation does not list the characters a model name may hold; the names it shows
are lowercase letters, digits and underscores, so nbutils accepts exactly those
(``^[a-z0-9_]+$``). A name is only ever sent to Numerai and written inside log lines: it is never
part of a file path (the round's submission is ``<run>/rounds/<round>/submission.csv``).
"""

from __future__ import annotations

import re

from nbutils.daily.errors import DailyError

MODEL_NAME = re.compile(r"[a-z0-9_]+")


def check_model_name(name: object) -> str:
    """``name`` when it is a valid Numerai model name, else :class:`DailyError` saying why."""
    text = "" if name is None else str(name)
    if not text.strip():
        raise DailyError("--model-name is empty: give your Numerai model's name.")
    if MODEL_NAME.fullmatch(text):
        return text
    hint = ""
    if MODEL_NAME.fullmatch(text.lower()):
        hint = f" Numerai model names are lowercase: did you mean {text.lower()!r}?"
    raise DailyError(
        f"--model-name {text!r} is not a Numerai model name: use only lowercase letters, digits "
        f"and underscores (as numer.ai shows your model's name).{hint}"
    )
