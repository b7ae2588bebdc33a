"""load_keys() reads Colab's and Kaggle's notebook secrets after the environment and .env.

google.colab.userdata and kaggle_secrets are not network services: fake modules stand in for them
in sys.modules, with the same call shapes (``userdata.get(name)``,
``UserSecretsClient().get_secret(name)``, each raising when a secret is missing).
"""

from __future__ import annotations

import sys
import types

import pytest

from nbutils.run.keys import PUBLIC_ENV, SECRET_ENV, colab_secret, kaggle_secret, load_keys

COLAB = {PUBLIC_ENV: "colab-public", SECRET_ENV: "colab-secret"}
KAGGLE = {PUBLIC_ENV: "kaggle-public", SECRET_ENV: "kaggle-secret"}


class SecretNotFoundError(Exception):
    pass


@pytest.fixture(autouse=True)
def no_env_keys(monkeypatch, tmp_path):
    monkeypatch.delenv(PUBLIC_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def _no_dotenv(tmp_path):
    return tmp_path / "no.env"  # does not exist: no .env keys


def fake_colab(monkeypatch, secrets: dict[str, str]) -> list[str]:
    asked: list[str] = []

    def get(name):
        asked.append(name)
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    return asked


def fake_kaggle(monkeypatch, secrets: dict[str, str]) -> list[str]:
    asked: list[str] = []

    class UserSecretsClient:
        def get_secret(self, label):
            asked.append(label)
            if label not in secrets:
                raise RuntimeError(f"No user secrets exist for kernel id 1 and label {label}")
            return secrets[label]

    module = types.ModuleType("kaggle_secrets")
    module.UserSecretsClient = UserSecretsClient
    monkeypatch.setitem(sys.modules, "kaggle_secrets", module)
    return asked


def test_colab_secrets_are_read_when_env_and_dotenv_have_none(monkeypatch, tmp_path, capsys):
    fake_colab(monkeypatch, COLAB)
    keys = load_keys(_no_dotenv(tmp_path))
    assert (keys.public_id, keys.secret_key) == ("colab-public", "colab-secret")
    assert "colab-" not in repr(keys) and "colab-" not in str(keys)
    out = capsys.readouterr()
    assert "colab-" not in out.out + out.err


def test_kaggle_secrets_are_read_outside_colab(monkeypatch, tmp_path, capsys):
    fake_kaggle(monkeypatch, KAGGLE)
    keys = load_keys(_no_dotenv(tmp_path))
    assert (keys.public_id, keys.secret_key) == ("kaggle-public", "kaggle-secret")
    out = capsys.readouterr()
    assert "kaggle-" not in out.out + out.err


def test_environment_and_dotenv_come_before_notebook_secrets(monkeypatch, tmp_path):
    asked = fake_colab(monkeypatch, COLAB)
    fake_kaggle(monkeypatch, KAGGLE)
    monkeypatch.setenv(PUBLIC_ENV, "env-public")
    monkeypatch.setenv(SECRET_ENV, "env-secret")
    assert load_keys(_no_dotenv(tmp_path)).public_id == "env-public"
    monkeypatch.delenv(PUBLIC_ENV)
    monkeypatch.delenv(SECRET_ENV)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"{PUBLIC_ENV}=file-public\n{SECRET_ENV}=file-secret\n", encoding="utf-8")
    assert load_keys(dotenv).public_id == "file-public"
    assert asked == []  # the notebook secrets were not even asked


def test_an_incomplete_colab_pair_falls_back_to_kaggle(monkeypatch, tmp_path):
    fake_colab(monkeypatch, {PUBLIC_ENV: "colab-public"})  # secret key missing: raises
    fake_kaggle(monkeypatch, KAGGLE)
    assert load_keys(_no_dotenv(tmp_path)).secret_key == "kaggle-secret"


def test_missing_or_blank_secrets_are_no_keys(monkeypatch, tmp_path):
    fake_colab(monkeypatch, {PUBLIC_ENV: "  ", SECRET_ENV: "colab-secret"})
    asked = fake_kaggle(monkeypatch, {})
    assert load_keys(_no_dotenv(tmp_path)) is None
    assert asked == [PUBLIC_ENV, SECRET_ENV]
    assert colab_secret(PUBLIC_ENV) is None and kaggle_secret(SECRET_ENV) is None


def test_without_colab_or_kaggle_modules_there_are_no_notebook_secrets(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails as outside Colab
    monkeypatch.setitem(sys.modules, "kaggle_secrets", None)
    assert colab_secret(PUBLIC_ENV) is None and kaggle_secret(PUBLIC_ENV) is None
    assert load_keys(_no_dotenv(tmp_path)) is None
