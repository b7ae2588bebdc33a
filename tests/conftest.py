"""Shared pytest fixtures. No test needs the internet."""

from __future__ import annotations

import matplotlib
import numerapi.base_api
import pytest

from tests.fake_numerai import FakeNumerai

matplotlib.use("Agg")


@pytest.fixture
def fake_numerai(monkeypatch):
    """A started :class:`FakeNumerai` that numerapi talks to instead of Numerai."""
    server = FakeNumerai().start()
    monkeypatch.setattr(numerapi.base_api, "API_TOURNAMENT_URL", server.url)
    # numerapi and our code read keys from the environment: start every test without them.
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    yield server
    server.stop()
