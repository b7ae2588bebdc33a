"""Tests for ``python -m nbutils scores`` and the round's payout multipliers (nbutils.daily)."""

from __future__ import annotations

import numpy as np
import pytest

from nbutils.daily.round import DEFAULT_MULTIPLIERS, make_client, round_multipliers
from nbutils.daily.scores import scores_table
from nbutils.plots import png_title
from nbutils.run.pipeline import main

PUBLIC, SECRET = "PUBscores1", "SECscores1"


@pytest.fixture
def scored(fake_numerai, monkeypatch, tmp_path):
    state = fake_numerai.enable_daily(
        public_id=PUBLIC, secret_key=SECRET, corr_multiplier=0.75, mmc_multiplier=1.5
    )
    state.open_round(900, payout_factor=0.8)
    state.open_round(901, payout_factor=0.5)
    for number, corr, mmc in ((900, 0.02, 0.01), (901, -0.04, 0.003)):
        state.add_score("my_model", number, "v2_corr20", corr)
        state.add_score("my_model", number, "mmc", mmc)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", PUBLIC)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    return state


def test_round_multipliers_come_from_the_round(scored):
    napi = make_client(None)
    got = round_multipliers(napi, 901)
    assert got == {"payout_factor": 0.5, "corr_multiplier": 0.75, "mmc_multiplier": 1.5}


def test_round_without_configs_falls_back_to_todays_defaults(scored):
    assert round_multipliers(make_client(None), 12345) == DEFAULT_MULTIPLIERS


def test_scores_command_prints_the_table_and_saves_the_plot(scored, tmp_path, capsys):
    out = tmp_path / "s.png"
    code = main(["scores", "--model-name", "my_model", "--out", str(out), "--stake", "100"])
    text = capsys.readouterr().out
    assert code == 0 and out.stat().st_size > 1000
    assert png_title(out.read_bytes()) == "my_model: ラウンドごとのスコア"  # Japanese, as 01-09
    assert "900" in text and "901" in text
    # by hand: 100 * clip(0.8 * (0.02*0.75 + 0.01*1.5), -0.05, 0.05) = 2.4
    #          100 * clip(0.5 * (-0.04*0.75 + 0.003*1.5), ...) = -1.275
    assert "2.4" in text and "-1.275" in text
    assert PUBLIC not in text and SECRET not in text


def test_scores_table_by_hand():
    rows = [
        {"roundNumber": 5, "displayName": "v2_corr20", "value": 0.1, "day": 20},
        {"roundNumber": 5, "displayName": "mmc", "value": 0.05, "day": 20},
    ]
    table = scores_table(rows, lambda n: dict(DEFAULT_MULTIPLIERS), stake=10.0)
    # 10 * clip(1 * (0.1*0.5 + 0.05*2), -0.05, 0.05) = 10 * 0.05 (clipped)
    np.testing.assert_allclose(table.loc[5, "payout"], 0.5)
    assert list(table.index) == [5]


def test_scores_need_keys(fake_numerai, tmp_path, monkeypatch, capsys):
    fake_numerai.enable_daily()
    monkeypatch.chdir(tmp_path)
    assert main(["scores", "--model-name", "my_model", "--out", str(tmp_path / "x.png")]) == 4
    assert "NUMERAI_PUBLIC_ID" in capsys.readouterr().err


def test_scores_refuse_a_plot_name_that_is_not_png(scored, tmp_path, capsys):
    assert main(["scores", "--model-name", "my_model", "--out", str(tmp_path / "x.jpg")]) == 1
    assert ".png" in capsys.readouterr().err


@pytest.mark.parametrize("stake", ["nan", "inf", "-inf", "-1"])
def test_scores_refuse_a_stake_that_is_not_a_finite_amount(scored, tmp_path, capsys, stake):
    out = tmp_path / "s.png"
    code = main(["scores", "--model-name", "my_model", "--out", str(out), f"--stake={stake}"])
    captured = capsys.readouterr()
    assert code == 1 and "--stake must be a finite number of NMR, 0 or more" in captured.err
    assert "nan" not in captured.out.lower() and not out.exists()
