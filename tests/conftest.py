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


@pytest.fixture(scope="session")
def tiny_v5_dir(tmp_path_factory):
    """A tiny synthetic v5 dataset (nbutils.data.TINY_SIZES, seed 0): its directory ``.../v5.2``.

    Session-scoped and shared: treat it as read-only (copy it before changing files).
    """
    from nbutils.data import TINY_SIZES, make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("tiny_v5"), layout="v5", seed=0, **TINY_SIZES
    )


@pytest.fixture(scope="session")
def tiny_legacy_dir(tmp_path_factory):
    """The same tiny dataset in the legacy 2021 CSV layout: ``.../numerai_dataset_280``. Read-only."""
    from nbutils.data import TINY_SIZES, make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("tiny_legacy"), layout="legacy", seed=0, **TINY_SIZES
    )


@pytest.fixture(scope="session")
def default_chain(tmp_path_factory):
    """The chain on the default synthetic data (sizes and trees as `make run`): ``(run_dir,
    RunResult)``. Session-scoped, so that test_chain.py and test_learner_reading.py share one
    run. Read-only."""
    from nbutils.run.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("chain-default")
    result = run_pipeline(
        root / "run", {"data_dir": str(root / "data")}, progress=False, log=lambda *_: None
    )
    return root / "run", result
