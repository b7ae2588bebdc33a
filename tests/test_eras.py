"""The embargo of nbutils.eras (issue 16): how many eras, and which rows go, on hand cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbutils.diagnostics import evaluate
from nbutils.eras import drop_embargo, embargo_eras, era_number
from nbutils.errors import DataError, ScoringError
from tests.factories import make_frame


@pytest.mark.parametrize(
    ("target", "eras"),
    [
        ("target", 4),
        ("target_ender_20", 4),
        ("target_cyrusd_20", 4),
        ("target_agnes_60", 16),
        ("target_ralph_60", 16),
    ],
)
def test_embargo_eras_by_horizon(target, eras):
    assert embargo_eras(target) == eras


@pytest.mark.parametrize("target", ["target_nomi", "target_ender_10", "prediction", "", "_20x"])
def test_embargo_eras_refuses_unknown_horizons_naming_the_target(target):
    with pytest.raises(DataError, match=f"target={target!r}"):
        embargo_eras(target)


def test_embargo_eras_refuses_a_non_string():
    with pytest.raises(DataError, match="not a column name"):
        embargo_eras(20)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "number"), [("0123", 123), ("era123", 123), ("0001", 1), (57, 57), ("era7", 7)]
)
def test_era_number(label, number):
    assert era_number(label) == number


@pytest.mark.parametrize("label", ["eraX", "X", "12a", "", True])
def test_era_number_refuses_labels_without_a_number(label):
    with pytest.raises(DataError, match="era"):
        era_number(label)


def _frame(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"era": labels, "x": range(len(labels))}, index=[f"id{i}" for i in labels])


def test_drop_embargo_v5_labels_hand_case():
    df = _frame(["0010", "0011", "0012", "0013", "0014", "0015", "0016"])
    out = drop_embargo(df, "0010", 4)
    # 0011..0014 are within 4 eras of 0010; 0010 itself and 0015 on are kept
    assert list(out["era"]) == ["0010", "0015", "0016"]
    assert list(out.index) == ["id0010", "id0015", "id0016"]


def test_drop_embargo_legacy_labels_compare_numerically_not_as_text():
    df = _frame(["era9", "era10", "era11", "era12", "era13", "era100"])
    out = drop_embargo(df, "era8", 3)  # era9..era11 dropped; "era100" sorts before "era11" as text
    assert list(out["era"]) == ["era12", "era13", "era100"]


def test_drop_embargo_counts_true_era_distance_after_era_step_subsampling():
    # trained on every 4th era: 0001, 0005, 0009 -> the last training era is 0009, and the
    # embargo is the 4 eras 0010..0013 whatever the training step
    train_eras = ["0001", "0005", "0009"]
    valid = _frame([f"{e:04d}" for e in range(10, 20)])
    out = drop_embargo(valid, train_eras[-1], 4)
    assert list(out["era"]) == [f"{e:04d}" for e in range(14, 20)]


def test_drop_embargo_keeps_rows_of_every_era_several_rows_each_and_other_columns():
    df = pd.DataFrame({"era": ["0005"] * 3 + ["0006"] * 2 + ["0007"] * 2, "v": np.arange(7.0)})
    out = drop_embargo(df, 4, 2)  # an int last era: 0005 and 0006 dropped
    pd.testing.assert_frame_equal(out, df.iloc[5:])


def test_drop_embargo_zero_eras_keeps_everything_and_accepts_another_era_column():
    df = _frame(["0001", "0002"]).rename(columns={"era": "when"})
    pd.testing.assert_frame_equal(drop_embargo(df, "0001", 0, era_col="when"), df)


@pytest.mark.parametrize("n_eras", [-1, 2.5, True, "4"])
def test_drop_embargo_refuses_a_bad_number_of_eras(n_eras):
    with pytest.raises(DataError, match="n_eras"):
        drop_embargo(_frame(["0001"]), "0001", n_eras)


def test_drop_embargo_refuses_a_missing_era_column_and_unnumbered_eras():
    with pytest.raises(DataError, match="era column"):
        drop_embargo(pd.DataFrame({"x": [1]}), "0001", 4)
    with pytest.raises(DataError, match="'eraX'"):
        drop_embargo(_frame(["era1", "eraX"]), "era1", 4)


def test_evaluate_drops_the_embargo_and_records_it():
    df = make_frame()  # eras era1, era2, era3, era9, ..., era12
    ours = evaluate(df, last_train_era="era8", embargo_eras=2)
    by_hand = evaluate(df[~df["era"].isin(["era9", "era10"])])
    assert ours["embargo_eras"] == 2
    pd.testing.assert_series_equal(ours.drop("embargo_eras"), by_hand)
    recorded = evaluate(df, embargo_eras=4)  # already embargoed by the caller: recorded only
    assert recorded["embargo_eras"] == 4
    pd.testing.assert_series_equal(recorded.drop("embargo_eras"), evaluate(df))
    assert "embargo_eras" not in evaluate(df).index


def test_evaluate_refuses_last_train_era_without_embargo_and_a_bad_embargo():
    df = make_frame()
    with pytest.raises(ScoringError, match="embargo_eras"):
        evaluate(df, last_train_era="era8")
    with pytest.raises(ScoringError, match="embargo_eras"):
        evaluate(df, embargo_eras=-1)
