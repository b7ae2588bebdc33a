"""API keys: environment first, then .env; never shown."""

from __future__ import annotations

import pytest

from nbutils.keys import NumeraiKeys, find_dotenv, load_keys, redact


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch):
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NUMERAI_PUBLIC_ID=filepub\nNUMERAI_SECRET_KEY=filesec\n")
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "envpub")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "envsec")
    assert load_keys(tmp_path / ".env") == NumeraiKeys("envpub", "envsec")


def test_dotenv_with_export_quotes_and_comments(tmp_path):
    (tmp_path / ".env").write_text(
        "# my keys\nexport NUMERAI_PUBLIC_ID='abc'\n\nNUMERAI_SECRET_KEY = \"d=e f\"\nOTHER=1\n"
    )
    assert load_keys(tmp_path / ".env") == NumeraiKeys("abc", "d=e f")


def test_nearest_dotenv_is_found_in_a_parent(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("NUMERAI_PUBLIC_ID=p\nNUMERAI_SECRET_KEY=s\n")
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    assert find_dotenv(sub) == tmp_path / ".env"
    monkeypatch.chdir(sub)
    assert load_keys() == NumeraiKeys("p", "s")


def test_incomplete_pair_is_no_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "only-public")
    (tmp_path / ".env").write_text("NUMERAI_PUBLIC_ID=p\n")
    assert load_keys(tmp_path / ".env") is None
    assert load_keys(tmp_path / "missing.env") is None


def test_keys_never_show_in_repr_or_str():
    keys = NumeraiKeys("PUBLIC123", "SECRET456")
    for text in (repr(keys), str(keys), f"{keys}", str([keys])):
        assert "PUBLIC123" not in text and "SECRET456" not in text


def test_redact_removes_both_strings():
    keys = NumeraiKeys("PUBLIC123", "SECRET456")
    text = "Token PUBLIC123$SECRET456 rejected; secret=SECRET456"
    assert redact(text, keys) == "Token ***$*** rejected; secret=***"
    assert redact(text, None) == text
