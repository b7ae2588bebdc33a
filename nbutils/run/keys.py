"""Numerai API keys: from the environment or a ``.env`` file, never from a notebook.

The keys are ``NUMERAI_PUBLIC_ID`` and ``NUMERAI_SECRET_KEY``. They are never printed, logged
or written to a file nbutils produces; :func:`redact` removes them from any text shown to a user,
also in their JSON-escaped and HTML-escaped forms (a key holding ``"`` or ``\\`` appears escaped in
a saved notebook and in its HTML page).

Where the keys are looked for, in order: the environment; the ``.env`` file given, or the nearest
``.env`` in the working directory or its parents; the ``.env`` at the root of the project nbutils
is installed from (a clone). The last one matters because a notebook's kernel runs in the run
directory, which may be outside the project.

``.env`` files are parsed by python-dotenv (the convention): ``export`` prefixes, single and
double quotes (with escapes in double quotes), ``#`` comments on their own line or after a value,
CRLF line ends, and a UTF-8 byte order mark (Windows Notepad) are read as the library reads them;
a UTF-16 file (Notepad's "Unicode") is decoded too. Variable expansion (``${VAR}``) is off: a key
is never a template, and a ``$`` in a secret stays as written.
"""

from __future__ import annotations

import html
import json
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
    """The ``KEY=VALUE`` pairs of a ``.env`` file, parsed by python-dotenv (module docstring).

    The text is decoded first: UTF-8 with or without a byte order mark, or UTF-16 with its mark;
    anything else is a :class:`~nbutils.errors.KeysFileError` naming the file (never its text).
    """
    import io

    from dotenv import dotenv_values

    from nbutils.errors import KeysFileError

    raw = path.read_bytes()
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KeysFileError(
            f"{path} is not UTF-8 (or UTF-16) text, so its Numerai keys cannot be read: save it "
            "again as UTF-8 (any editor's default; in Notepad: Save as, Encoding UTF-8)."
        ) from None
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value or "" for key, value in values.items()}


def find_dotenv(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``.env`` file in ``start`` (default: the working directory) or its parents."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ".env"
        if candidate.is_file():
            return candidate
    return None


def package_parent() -> Path:
    """The directory holding the ``nbutils`` package: a clone's root for an editable install."""
    return Path(__file__).resolve().parents[2]


def project_dotenv() -> Path | None:
    """``.env`` at the root of the clone nbutils is installed from (editable install), if any."""
    root = package_parent()
    candidate = root / ".env"
    if (root / "pyproject.toml").is_file() and candidate.is_file():
        return candidate
    return None


def load_keys(dotenv: str | os.PathLike | None = None) -> NumeraiKeys | None:
    """The Numerai keys from the environment, else ``dotenv`` or the nearest ``.env`` (working
    directory and its parents), else the project root's ``.env`` (:func:`project_dotenv`), else
    Colab's or Kaggle's notebook secrets (:func:`notebook_secrets`).

    Returns ``None`` when no complete pair is found (anonymous access: downloads still work).
    """
    public = os.environ.get(PUBLIC_ENV, "").strip()
    secret = os.environ.get(SECRET_ENV, "").strip()
    if public and secret:
        return NumeraiKeys(public, secret)
    paths = [Path(dotenv)] if dotenv is not None else [find_dotenv(), project_dotenv()]
    for path in paths:
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


def key_forms(keys: NumeraiKeys | None) -> list[str]:
    """Every form a key string takes in saved text, longest first.

    The raw key and what up to two escapings make of it, in any order: JSON (a notebook's JSON),
    Python's repr (a traceback's value), HTML with and without quote escaping (nbconvert's pages).
    """
    if keys is None:
        return []
    escapes = (
        lambda t: json.dumps(t)[1:-1],
        lambda t: repr(t)[1:-1],
        html.escape,
        lambda t: html.escape(t, quote=False),
    )
    forms: set[str] = set()
    for key in (keys.secret_key, keys.public_id):
        if not key:
            continue
        level = {key}
        forms |= level
        for _ in range(2):
            level = {escape(t) for t in level for escape in escapes}
            forms |= level
    return sorted(forms, key=len, reverse=True)


def redact(text: str, keys: NumeraiKeys | None) -> str:
    """``text`` with every form of the key strings (:func:`key_forms`) replaced by ``***``."""
    for form in key_forms(keys):
        text = text.replace(form, "***")
    return text


def refuse_key_values(values: dict, keys: NumeraiKeys | None) -> None:
    """Raise ``ParameterError`` when a parameter value holds a key (the value is never shown).

    Keys are never notebook parameters: a value passed with ``-p`` is printed on the console and
    saved in the executed notebook.
    """
    from nbutils.errors import ParameterError

    if keys is None:
        return
    secrets = [k for k in (keys.secret_key, keys.public_id) if k]

    def holds_key(value: object) -> bool:
        if isinstance(value, str):
            return any(secret in value for secret in secrets)
        if isinstance(value, dict):
            return any(holds_key(k) or holds_key(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(holds_key(v) for v in value)
        return False

    for name, value in values.items():
        if holds_key(value):
            raise ParameterError(
                f"parameter {name!r} holds your Numerai API key. Keys are never notebook "
                f"parameters (they would be printed and saved): set {PUBLIC_ENV} and "
                f"{SECRET_ENV} in the environment or a .env file."
            )
