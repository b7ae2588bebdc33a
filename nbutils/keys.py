"""Numerai API keys: from the environment or a ``.env`` file, never from a notebook.

The keys are ``NUMERAI_PUBLIC_ID`` and ``NUMERAI_SECRET_KEY``. They are never printed, logged
or written to a file nbutils produces; :func:`redact` removes them from any text shown to a user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PUBLIC_ENV = "NUMERAI_PUBLIC_ID"
SECRET_ENV = "NUMERAI_SECRET_KEY"


@dataclass(frozen=True)
class NumeraiKeys:
    """A public id and secret key pair. Its repr never shows the values."""

    public_id: str
    secret_key: str

    def __repr__(self) -> str:
        return "NumeraiKeys(public_id=***, secret_key=***)"

    __str__ = __repr__


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``export`` prefix, quotes and ``#`` comments allowed)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def find_dotenv(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``.env`` file in ``start`` (default: the working directory) or its parents."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ".env"
        if candidate.is_file():
            return candidate
    return None


def load_keys(dotenv: str | os.PathLike | None = None) -> NumeraiKeys | None:
    """The Numerai keys from the environment, else from ``dotenv`` or the nearest ``.env``, else
    from Colab's or Kaggle's notebook secrets (:func:`notebook_secrets`).

    Returns ``None`` when no complete pair is found (anonymous access: downloads still work).
    """
    public = os.environ.get(PUBLIC_ENV, "").strip()
    secret = os.environ.get(SECRET_ENV, "").strip()
    if public and secret:
        return NumeraiKeys(public, secret)
    path = Path(dotenv) if dotenv is not None else find_dotenv()
    if path is not None and path.is_file():
        values = _read_dotenv(path)
        public = values.get(PUBLIC_ENV, "").strip()
        secret = values.get(SECRET_ENV, "").strip()
        if public and secret:
            return NumeraiKeys(public, secret)
    return notebook_secrets()


def colab_secret(name: str) -> str | None:
    """Secret ``name`` from Colab's key icon (``google.colab.userdata``), or ``None`` outside Colab,
    when it is not stored, or when this notebook was not granted access to it."""
    try:
        from google.colab import userdata  # only exists in Colab
    except ImportError:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # SecretNotFoundError, NotebookAccessError, ...: not a usable secret
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def kaggle_secret(name: str) -> str | None:
    """Secret ``name`` from Kaggle's Add-ons > Secrets (``kaggle_secrets.UserSecretsClient``), or
    ``None`` outside Kaggle, when it is not stored or not attached to this notebook."""
    try:
        from kaggle_secrets import UserSecretsClient  # only exists in Kaggle kernels
    except ImportError:
        return None
    try:
        value = UserSecretsClient().get_secret(name)
    except Exception:  # BackendError and friends: the secret is missing or not attached
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def notebook_secrets() -> NumeraiKeys | None:
    """The keys from Colab's secrets, else Kaggle's secrets (both named NUMERAI_PUBLIC_ID and
    NUMERAI_SECRET_KEY); ``None`` unless one of them holds a complete pair. Never printed."""
    for read in (colab_secret, kaggle_secret):
        public, secret = read(PUBLIC_ENV), read(SECRET_ENV)
        if public and secret:
            return NumeraiKeys(public, secret)
    return None


def redact(text: str, keys: NumeraiKeys | None) -> str:
    """``text`` with every occurrence of the key strings replaced by ``***``."""
    if keys is None:
        return text
    for secret in (keys.secret_key, keys.public_id):
        if secret:
            text = text.replace(secret, "***")
    return text
