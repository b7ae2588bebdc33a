"""Each figure renders (Agg) with a title and axis labels, and reflects the numbers it shows."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from nbutils import diagnostics, metrics, plots
from nbutils.errors import ScoringError
from tests.factories import FEATURES, make_frame

# tests/conftest.py selects the Agg backend; plots never touch pyplot.


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_frame(seed=4)


def assert_renders(fig: Figure, tmp_path, name: str) -> None:
    """Draws without error, has a title, and every axes with data has both axis labels."""
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000
    titles = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
    assert any(t.strip() for t in titles)
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), name


def test_plot_per_era(df, tmp_path):
    scores = metrics.per_era_corr(df)
    fig = plots.plot_per_era(scores, title="Per-era CORR")
    assert_renders(fig, tmp_path, "per_era")
    ax = fig.axes[0]
    assert ax.get_title() == "Per-era CORR"
    bars = ax.patches
    assert len(bars) == len(scores)
    for bar, value in zip(bars, scores, strict=True):
        expected = plots.POSITIVE if value >= 0 else plots.NEGATIVE
        assert matplotlib.colors.to_hex(bar.get_facecolor()) == expected
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["era1", "era2", "era3"]  # natural order kept


def test_plot_per_era_accepts_one_column_frame_only(df, tmp_path):
    both = metrics.per_era_corr(df, ["prediction", "prediction_b"])
    assert_renders(plots.plot_per_era(both[["prediction"]]), tmp_path, "one_col")
    with pytest.raises(ScoringError, match="one series"):
        plots.plot_per_era(both)


def test_plot_cumulative(df, tmp_path):
    a = metrics.per_era_corr(df)
    b = metrics.per_era_corr(df, "example_prediction")
    fig = plots.plot_cumulative({"model": a, "example": b})
    assert_renders(fig, tmp_path, "cumulative")
    lines = fig.axes[0].get_lines()[:2]
    np.testing.assert_allclose(lines[0].get_ydata(), a.cumsum().to_numpy())
    np.testing.assert_allclose(lines[1].get_ydata(), b.cumsum().to_numpy())
    frame_fig = plots.plot_cumulative(pd.DataFrame({"model": a}))
    assert_renders(frame_fig, tmp_path, "cumulative_frame")
    with pytest.raises(ScoringError, match="at least one"):
        plots.plot_cumulative(pd.DataFrame(index=a.index))


def test_feature_correlations_match_spearman(df):
    ours = metrics.feature_correlations(df, FEATURES)
    for f in FEATURES:
        assert ours[f] == pytest.approx(spearmanr(df[f], df["prediction"])[0], abs=1e-12)


def test_plot_feature_exposure(df, tmp_path):
    corrs = metrics.feature_correlations(df, FEATURES)
    fig = plots.plot_feature_exposure(corrs, top=4)
    assert_renders(fig, tmp_path, "feature_exposure")
    right = fig.axes[1]
    assert len(right.patches) == 4
    shown = {t.get_text() for t in right.get_yticklabels()}
    assert shown == set(corrs.abs().sort_values().index[-4:])
    assert f"{metrics.feature_exposure(df, FEATURES):.4f}" in fig.axes[0].get_title()
    with pytest.raises(ScoringError, match="no correlations"):
        plots.plot_feature_exposure(pd.Series([np.nan]))


def test_plot_neutralization_tradeoff(df, tmp_path):
    table = diagnostics.neutralization_sweep(df, "prediction", FEATURES, [0, 0.5, 1])
    fig = plots.plot_neutralization_tradeoff(table)
    assert_renders(fig, tmp_path, "tradeoff")
    assert len(fig.axes) == 3
    np.testing.assert_allclose(
        fig.axes[2].get_lines()[0].get_ydata(), table["max_feature_exposure"]
    )
    with pytest.raises(ScoringError, match="neutralization_sweep"):
        plots.plot_neutralization_tradeoff(table.drop(columns=["corr_sharpe"]))


def test_plot_diagnostics(df, tmp_path):
    table = diagnostics.diagnostics(df, features=FEATURES, example_col="example_prediction")
    fig = plots.plot_diagnostics(table)
    assert_renders(fig, tmp_path, "diagnostics")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(boxes) == len(table)
    top_to_bottom = sorted(boxes, key=lambda p: -p.get_y())
    for box, name, status in zip(top_to_bottom, table.index, table["status"], strict=True):
        shown = "reference" if name in plots.REFERENCE_ROWS else status
        assert matplotlib.colors.to_hex(box.get_facecolor()) == plots.STATUS_COLORS[shown]
    texts = {t.get_text() for t in ax.texts}
    assert set(diagnostics.DIAGNOSTIC_ROWS) <= texts


def test_plot_diagnostics_never_colours_the_rows_the_guide_calls_not_very_useful(df, tmp_path):
    """Guide section 3: Feature Neutral Mean and Validation SD are "not very useful"."""
    table = diagnostics.diagnostics(df, features=FEATURES, example_col="example_prediction")
    table.loc[list(plots.REFERENCE_ROWS), "status"] = "bad"  # what the site scale may give
    fig = plots.plot_diagnostics(table)
    assert_renders(fig, tmp_path, "diagnostics_reference")
    ax = fig.axes[0]
    boxes = sorted(
        (p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)),
        key=lambda p: -p.get_y(),
    )
    for box, name in zip(boxes, table.index, strict=True):
        if name in plots.REFERENCE_ROWS:
            assert matplotlib.colors.to_hex(box.get_facecolor()) == plots.REFERENCE
    texts = [t.get_text() for t in ax.texts]
    others_bad = sum(
        s == "bad" for r, s in table["status"].items() if r not in plots.REFERENCE_ROWS
    )
    assert texts.count("reference") == 2 and texts.count("bad") == others_bad
    assert any("not very useful" in t for t in texts)
    assert any("ddof=0" in t for t in texts)
    assert "only an example" in ax.get_xlabel()


def test_plot_neutralization_tradeoff_marks_the_guides_advice(df):
    table = diagnostics.neutralization_sweep(df, "prediction", FEATURES, [0, 0.5, 1])
    fig = plots.plot_neutralization_tradeoff(table)
    for ax in fig.axes:
        (band,) = ax.patches
        left, width = band.get_x(), band.get_width()
        assert (left, left + width) == pytest.approx(plots.GUIDE_PROPORTION_BAND)
        assert plots.GUIDE_PROPORTION_BAND == (0.3, 0.5)


def test_plot_diagnostics_with_missing_inputs(df, tmp_path):
    table = diagnostics.diagnostics(df)  # five rows n/a
    fig = plots.plot_diagnostics(table)
    assert_renders(fig, tmp_path, "diagnostics_na")
    assert "NaN" in {t.get_text() for t in fig.axes[0].texts}
    with pytest.raises(ScoringError, match="diagnostics"):
        plots.plot_diagnostics(table.drop(columns=["status"]))


def test_figures_show_as_png_in_a_notebook():
    from nbutils.plots import plot_per_era

    fig = plot_per_era(pd.Series([0.01, -0.02, 0.03], index=["era1", "era2", "era3"]))
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
