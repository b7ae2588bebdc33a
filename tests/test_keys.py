"""API keys: environment first, then .env; never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbutils.run.keys import NumeraiKeys, find_dotenv, load_keys, redact


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


def fake_clone(root):
    """A directory shaped like a clone of the project, with keys in its .env."""
    (root / "nbutils" / "run").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    (root / ".env").write_text("NUMERAI_PUBLIC_ID=rootpub\nNUMERAI_SECRET_KEY=rootsec\n")
    return root / "nbutils" / "run" / "keys.py"


def test_keys_in_the_project_root_are_found_from_a_run_dir_elsewhere(tmp_path, monkeypatch):
    """A kernel's working directory is the run directory, often outside the project."""
    from nbutils.run import keys

    monkeypatch.setattr(keys, "__file__", str(fake_clone(tmp_path / "clone")))
    outside = tmp_path / "elsewhere" / "run"
    outside.mkdir(parents=True)
    monkeypatch.chdir(outside)
    assert load_keys() == NumeraiKeys("rootpub", "rootsec")
    (outside / ".env").write_text("NUMERAI_PUBLIC_ID=near\nNUMERAI_SECRET_KEY=nearsec\n")
    assert load_keys() == NumeraiKeys("near", "nearsec")  # the nearest .env still wins


@pytest.mark.parametrize("secret", ["se\"cr\\et<&>'x", "plain-secret-123"])
def test_redact_covers_json_and_html_escaped_forms(secret):
    import html
    import json

    keys = NumeraiKeys("pub-id-42", secret)
    forms = [
        secret,
        json.dumps(secret),
        html.escape(secret),
        html.escape(json.dumps(secret)),
        repr(secret),
        json.dumps({"text": f"error: {secret!r}"}),
    ]
    for form in forms:
        text = f"before {form} after"
        clean = redact(text, keys)
        assert secret not in clean and json.dumps(secret)[1:-1] not in clean
        assert (
            html.escape(secret) not in clean and html.escape(json.dumps(secret)[1:-1]) not in clean
        )
        assert "***" in clean


def test_a_parameter_equal_to_a_key_is_refused_without_showing_it():
    from nbutils.run.keys import refuse_key_values
    from nbutils.run.parameters import ParameterError

    keys = NumeraiKeys("pub-id-42", "sec-key-99")
    refuse_key_values({"model_name": "my_model", "seeds": [0, 1]}, keys)
    refuse_key_values({"model_name": "sec-key-99"}, None)  # no keys: nothing to compare
    for value in ("sec-key-99", "x sec-key-99", ["pub-id-42"], {"a": "pub-id-42"}):
        with pytest.raises(ParameterError, match="'model_name' holds your Numerai API key") as info:
            refuse_key_values({"model_name": value}, keys)
        assert "sec-key-99" not in str(info.value) and "pub-id-42" not in str(info.value)


def test_project_dotenv_looks_beside_the_package_not_inside_it():
    import nbutils
    from nbutils.run import keys

    assert keys.package_parent() == Path(nbutils.__file__).resolve().parent.parent


# -- .env through python-dotenv (issue 21) -----------------------------------------------------
def test_a_windows_notepad_dotenv_with_bom_and_crlf_is_read(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(
        "\ufeffNUMERAI_PUBLIC_ID=PUBwin1\r\nNUMERAI_SECRET_KEY=SECwin2\r\n".encode("utf-8")
    )
    assert load_keys(path) == NumeraiKeys("PUBwin1", "SECwin2")


def test_a_utf16_notepad_dotenv_is_read(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes("NUMERAI_PUBLIC_ID=PUBu16\r\nNUMERAI_SECRET_KEY=SECu16\r\n".encode("utf-16"))
    assert load_keys(path) == NumeraiKeys("PUBu16", "SECu16")


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('NUMERAI_SECRET_KEY="SECq1" # my secret key', "SECq1"),
        ("NUMERAI_SECRET_KEY='SECq2'   # comment", "SECq2"),
        ("NUMERAI_SECRET_KEY=SECq3 # comment after an unquoted value", "SECq3"),
        ("export NUMERAI_SECRET_KEY=SECq4", "SECq4"),
        ("NUMERAI_SECRET_KEY='SEC#q5'", "SEC#q5"),  # a '#' inside quotes is part of the value
        ('NUMERAI_SECRET_KEY="SEC\\"q6"', 'SEC"q6'),  # escapes in double quotes
        ("NUMERAI_SECRET_KEY=SEC${HOME}q7", "SEC${HOME}q7"),  # no expansion: kept as written
    ],
)
def test_dotenv_lines_are_parsed_as_python_dotenv_parses_them(tmp_path, line, secret):
    from dotenv import dotenv_values

    path = tmp_path / ".env"
    path.write_text(f"NUMERAI_PUBLIC_ID=PUBq\n{line}\n")
    assert load_keys(path) == NumeraiKeys("PUBq", secret)
    # the reference: python-dotenv itself (without ${VAR} expansion)
    assert dotenv_values(path, interpolate=False)["NUMERAI_SECRET_KEY"] == secret


def test_an_undecodable_dotenv_names_the_file_never_its_text(tmp_path):
    from nbutils.errors import KeysFileError

    path = tmp_path / ".env"
    path.write_bytes(b"NUMERAI_PUBLIC_ID=PUB\nNUMERAI_SECRET_KEY=SEC\xe9\xff\n")
    with pytest.raises(KeysFileError, match=r"\.env is not UTF-8 .*save it again as UTF-8") as info:
        load_keys(path)
    assert "SEC" not in str(info.value)


def test_keys_from_a_notepad_dotenv_are_redacted_like_any_other(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b'\xef\xbb\xbfNUMERAI_PUBLIC_ID="PUBr1" # id\r\nNUMERAI_SECRET_KEY=SECr2\r\n')
    keys = load_keys(path)
    assert keys == NumeraiKeys("PUBr1", "SECr2")
    assert redact("token PUBr1$SECr2 failed", keys) == "token ***$*** failed"
    assert "PUBr1" not in repr(keys) and "SECr2" not in str(keys)
