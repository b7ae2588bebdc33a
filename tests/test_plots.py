"""Each figure renders (Agg) with a Japanese title and axis labels, in a font that has every
glyph drawn, carries its title in its PNG, and reflects the numbers it shows."""

from __future__ import annotations

import re
import warnings

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


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def assert_renders(fig: Figure, tmp_path, name: str) -> None:
    """Draws without error and without a missing glyph (no tofu box), has a Japanese title that
    its PNG carries, and every axes with data has both axis labels, in Japanese."""
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    with warnings.catch_warnings():
        # "... missing from current font." up to matplotlib 3.9, "... missing from font(s) X." since
        warnings.filterwarnings("error", message=r"Glyph .* missing from")
        fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000
    title = plots.figure_title(fig)
    assert JAPANESE.search(title), (name, title)
    assert plots.png_title(path.read_bytes()) == title
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), name
        assert JAPANESE.search(ax.get_xlabel() + ax.get_ylabel()), name


def test_plot_per_era(df, tmp_path):
    scores = metrics.per_era_corr(df)
    fig = plots.plot_per_era(scores, title="era ごとの CORR")
    assert_renders(fig, tmp_path, "per_era")
    ax = fig.axes[0]
    assert ax.get_title() == "era ごとの CORR"
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
    ja = diagnostics.STATUS_JA
    assert texts.count(ja["reference"]) == 2 and texts.count(ja["bad"]) == others_bad
    assert any("あまり参考にならない" in t for t in texts)
    assert any("ddof=0" in t for t in texts)
    assert "あくまでも一例" in ax.get_xlabel()


def test_plot_neutralization_tradeoff_marks_the_guides_advice(df):
    table = diagnostics.neutralization_sweep(df, "prediction", FEATURES, [0, 0.5, 1])
    fig = plots.plot_neutralization_tradeoff(table)
    for ax in fig.axes:
        (band,) = ax.patches  # axvspan: a Rectangle since matplotlib 3.9, a Polygon in 3.8
        corners = band.get_patch_transform().transform(band.get_path().vertices)
        left, right = corners[:, 0].min(), corners[:, 0].max()
        assert (left, right) == pytest.approx(plots.GUIDE_PROPORTION_BAND)
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


def test_figures_use_the_japanese_font_bundled_in_matplotlib_fontja():
    """No system font needed (Colab, Kaggle): the font file comes from the PyPI package."""
    import matplotlib_fontja
    from matplotlib import font_manager

    assert plots.use_japanese_font() == "IPAexGothic"
    assert matplotlib.rcParams["font.family"][0] == "IPAexGothic"
    found = font_manager.findfont(font_manager.FontProperties(family="IPAexGothic"))
    assert found == matplotlib_fontja.get_font_ttf_path()


def test_a_glyph_the_font_lacks_would_fail_assert_renders(tmp_path):
    """The no-tofu check can fail: a character in no installed font warns "Glyph ... missing from"
    (matplotlib 3.8, the minimum: "missing from current font"; newer: "missing from font(s)")."""
    fig = plots.plot_per_era(pd.Series([0.01, -0.02]), title="era \U0001d11e")  # musical G clef
    with pytest.raises(UserWarning, match="Glyph 119070 .* missing from"):
        assert_renders(fig, tmp_path, "tofu")


def test_png_title_reads_what_the_figure_wrote_and_nothing_else(tmp_path):
    fig = plots.plot_per_era(pd.Series([0.01, -0.02]), title="検証の CORR")
    assert plots.png_title(fig._repr_png_()) == "検証の CORR"
    plain = Figure(figsize=(1, 1))
    plain.savefig(tmp_path / "plain.png")
    assert plots.png_title((tmp_path / "plain.png").read_bytes()) == ""
    assert plots.png_title(b"not a png") == ""
    fig.suptitle("上の題")
    assert plots.figure_title(fig) == "上の題"


def test_for_display_speaks_japanese_and_keeps_the_codes_in_the_table(df):
    table = diagnostics.diagnostics(df, features=FEATURES, example_col="example_prediction")
    shown = diagnostics.for_display(table)
    assert list(shown.columns) == ["値", "目安", "判定"]
    assert shown.index.name == "診断項目" and list(shown.index) == list(table.index)
    assert list(shown["判定"]) == [diagnostics.STATUS_JA[s] for s in table["status"]]
    assert shown.loc["Validation Sharpe", "目安"] == "1 以上（チュートリアル）"
    assert "落ち込みが 0.05 以内" in shown.loc["Max Drawdown", "目安"]
    assert set(table["status"]) <= set(diagnostics.STATUS_JA)  # the table keeps its codes
    both = pd.DataFrame(
        {"guideline": table["guideline"], "before": table["value"], "before_status": "bad"}
    )
    assert list(diagnostics.for_display(both).columns) == ["目安", "中和前", "中和前の判定"]
    with pytest.raises(ScoringError, match="status values"):
        diagnostics.for_display(table.assign(status="ok"))


def test_plot_round_scores(tmp_path):
    """``python -m nbutils scores``' figure: the bars are the table's CORR and MMC, the line the
    running sum of the payout (by hand: 0.5, 0.5 - 0.25, then + 0 for the NaN payout)."""
    table = pd.DataFrame(
        {
            "corr": [0.02, -0.01, 0.03],
            "mmc": [0.01, 0.0, -0.02],
            "payout": [0.5, -0.25, np.nan],
        },
        index=pd.Index([900, 901, 902], name="round"),
    )
    fig = plots.plot_round_scores(table, "my_model")
    assert_renders(fig, tmp_path, "round_scores")
    top, bottom = fig.axes
    assert top.get_title() == "my_model: ラウンドごとのスコア"
    heights = [bar.get_height() for bar in top.patches]
    np.testing.assert_allclose(heights, [0.02, -0.01, 0.03, 0.01, 0.0, -0.02])
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), [0.5, 0.25, 0.25])
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["900", "901", "902"]
    with pytest.raises(ScoringError, match="payout"):
        plots.plot_round_scores(table.drop(columns="payout"), "my_model")
    with pytest.raises(ScoringError, match="0 rounds"):
        plots.plot_round_scores(table.iloc[:0], "my_model")
