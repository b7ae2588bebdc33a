"""The figures the notebooks show: per-era scores, cumulative scores, feature exposure, the
neutralization trade-off (2F) and the diagnostics dashboard (section 3).

Every function returns a :class:`matplotlib.figure.Figure` built with the object API (no
``pyplot`` state, nothing shown): display it by leaving it as a cell's last expression, or
save it with ``fig.savefig(path)``. Figure text is English: Japanese would need a CJK font
that a fresh Colab or Kaggle machine does not have.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from nbutils.diagnostics import REFERENCE_ROWS
from nbutils.errors import ScoringError
from nbutils.metrics import max_drawdown, sharpe


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as PNG when it is a cell's last expression or displayed.

    A Figure built with the object API is not known to IPython's inline backend until pyplot is
    imported; ``_repr_png_`` makes it show in any kernel (Jupyter, Colab, papermill, Kaggle).
    """

    def _repr_png_(self) -> bytes:
        from io import BytesIO

        buffer = BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


__all__ = [
    "plot_cumulative",
    "plot_diagnostics",
    "plot_feature_exposure",
    "plot_neutralization_tradeoff",
    "plot_per_era",
]

POSITIVE = "#2a9d4b"
NEGATIVE = "#d1423f"
FAIR = "#e0a526"
NEUTRAL = "#b8b8b8"
REFERENCE = "#6f8fa8"
STATUS_COLORS = {
    "good": POSITIVE,
    "fair": FAIR,
    "bad": NEGATIVE,
    "reference": REFERENCE,
    "n/a": NEUTRAL,
}
# REFERENCE_ROWS (from nbutils.diagnostics): the rows the guide calls "not very useful"
# (あまり参考になりません); their status is "reference", drawn blue-grey, never good or bad.
#: What each diagnostic row's number is, where its name alone could mislead.
ROW_NOTES = {
    "Validation Sharpe": "mean / std of per-era CORR, ddof=0",
    "Validation SD": "std of per-era CORR, ddof=0; guide: not very useful",
    "Feature Neutral Mean": "guide: not very useful",
    "Max Feature Exposure": "max |corr| with a feature per era, mean over eras",
    "Corr + MMC Sharpe": "ddof=0",
}
#: The guide's advice for the neutralization proportion (2F).
GUIDE_PROPORTION_BAND = (0.3, 0.5)
_MAX_TICK_LABELS = 20


def _as_series(scores: pd.Series | pd.DataFrame, what: str) -> pd.Series:
    if isinstance(scores, pd.DataFrame):
        if scores.shape[1] != 1:
            raise ScoringError(
                f"{what} takes one series of scores; got {scores.shape[1]} columns. "
                "Pass one column, e.g. scores['prediction']."
            )
        scores = scores.iloc[:, 0]
    if not isinstance(scores, pd.Series):
        scores = pd.Series(np.asarray(scores, dtype=float))
    return scores.astype(float)


def _era_ticks(ax: Axes, labels: pd.Index) -> None:
    """Label at most ~20 evenly spaced eras so the axis stays readable."""
    n = len(labels)
    step = max(1, int(np.ceil(n / _MAX_TICK_LABELS)))
    ticks = np.arange(0, n, step)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(labels[i]) for i in ticks], rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.7, n - 0.3)


def plot_per_era(
    scores: pd.Series | pd.DataFrame, title: str = "Per-era score", ylabel: str = "score"
) -> Figure:
    """Bar per era, green when positive and red when negative, with the mean as a dashed line.

    ``scores`` is one per-era Series, e.g. ``per_era_corr(df)`` (eras in natural order).
    The legend gives the mean and the Sharpe ratio (ddof=0).
    """
    s = _as_series(scores, "plot_per_era")
    fig = NotebookFigure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    values = s.to_numpy()
    colors = np.where(values >= 0, POSITIVE, NEGATIVE)
    ax.bar(np.arange(len(s)), np.nan_to_num(values), color=colors, width=0.85)
    mean = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
    ax.axhline(0.0, color="black", linewidth=0.8)
    if np.isfinite(mean):
        ax.axhline(
            mean,
            color="#1f4e9c",
            linestyle="--",
            linewidth=1.4,
            label=f"mean {mean:.4f}, Sharpe (ddof=0) {sharpe(s):.2f}",
        )
        ax.legend(loc="best", framealpha=0.9)
    _era_ticks(ax, s.index)
    ax.set_title(title)
    ax.set_xlabel(s.index.name or "era")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_cumulative(
    scores_by_name: Mapping[str, pd.Series] | pd.DataFrame,
    title: str = "Cumulative score by era",
    ylabel: str = "cumulative score",
) -> Figure:
    """One line per model: the running sum of its per-era scores (NaN eras count as 0).

    ``scores_by_name`` maps a name to a per-era Series (or is a DataFrame, one column per
    model); eras are aligned on their labels in the order of the first series. The legend
    gives each model's final sum and its max drawdown.
    """
    frame = (
        scores_by_name.copy()
        if isinstance(scores_by_name, pd.DataFrame)
        else pd.concat(
            {str(k): _as_series(v, "plot_cumulative") for k, v in scores_by_name.items()}, axis=1
        )
    )
    if frame.shape[1] == 0:
        raise ScoringError("plot_cumulative needs at least one series of scores.")
    fig = NotebookFigure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(frame))
    for name in frame.columns:
        col = frame[name].astype(float)
        cum = col.fillna(0.0).cumsum().to_numpy()
        ax.plot(
            x,
            cum,
            linewidth=1.8,
            label=f"{name} (total {cum[-1]:.3f}, max drawdown {max_drawdown(col):.3f})",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    _era_ticks(ax, frame.index)
    ax.set_title(title)
    ax.set_xlabel(frame.index.name or "era")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", frameon=False, fontsize=9)
    return fig


def plot_feature_exposure(
    exposures: pd.Series, title: str = "Feature exposure", top: int = 15
) -> Figure:
    """Distribution of the prediction's correlation with each feature, and the largest ones.

    ``exposures`` maps feature name to correlation, e.g. ``feature_correlations(df, features)``
    (Spearman, whole frame, the tutorial's 2D numbers). Left: histogram, with the feature
    exposure (their population std) in the legend. Right: the ``top`` features by |correlation|.
    """
    s = _as_series(exposures, "plot_feature_exposure").dropna()
    if s.empty:
        raise ScoringError("plot_feature_exposure got no correlations (all NaN or empty).")
    fig = NotebookFigure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.2, 1])
    bins = min(40, max(5, int(np.sqrt(len(s))) * 2))
    left.hist(s.to_numpy(), bins=bins, color="#4c78a8", edgecolor="white")
    left.axvline(0.0, color="black", linewidth=0.8)
    spread = float(np.std(s.to_numpy()))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_title(f"Spearman corr with each feature (std, ddof=0 = exposure {spread:.4f})")
    left.set_xlabel("correlation of prediction with feature")
    left.set_ylabel("number of features")
    largest = s.reindex(s.abs().sort_values(ascending=False).index[:top])[::-1]
    right.barh(
        np.arange(len(largest)),
        largest.to_numpy(),
        color=np.where(largest.to_numpy() >= 0, POSITIVE, NEGATIVE),
    )
    right.set_yticks(np.arange(len(largest)))
    right.set_yticklabels([str(i) for i in largest.index], fontsize=8)
    right.axvline(0.0, color="black", linewidth=0.8)
    right.set_title(f"Largest {len(largest)} by |correlation|")
    right.set_xlabel("correlation")
    right.set_ylabel("feature")
    fig.suptitle(title)
    return fig


def plot_neutralization_tradeoff(
    table: pd.DataFrame, title: str = "Neutralization trade-off"
) -> Figure:
    """Mean, Sharpe and max feature exposure of the per-era score against the proportion.

    ``table`` is :func:`nbutils.diagnostics.neutralization_sweep`'s output (index ``proportion``,
    columns ``corr_mean``, ``corr_sharpe``, ``max_feature_exposure``). A grey band marks the
    guide's advice, a proportion of 0.3 to 0.5 (:data:`GUIDE_PROPORTION_BAND`).
    """
    needed = ["corr_mean", "corr_sharpe", "max_feature_exposure"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ScoringError(
            f"plot_neutralization_tradeoff needs columns {missing}; "
            "pass the table from nbutils.diagnostics.neutralization_sweep."
        )
    x = np.asarray(table.index, dtype=float)
    fig = NotebookFigure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [
        ("corr_mean", "Mean of per-era CORR", "mean CORR", "#1f4e9c"),
        ("corr_sharpe", "Sharpe of per-era CORR", "Sharpe (ddof=0)", "#7b3294"),
        ("max_feature_exposure", "Max feature exposure", "mean over eras of max |corr|", "#d1423f"),
    ]
    for ax, (col, sub, ylabel, color) in zip(axes, panels, strict=True):
        ax.plot(x, table[col].to_numpy(dtype=float), marker="o", color=color, linewidth=1.8)
        ax.axvspan(*GUIDE_PROPORTION_BAND, color=NEUTRAL, alpha=0.3, label="guide: 0.3-0.5")
        ax.set_title(sub)
        ax.set_xlabel("neutralization proportion")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", frameon=False, fontsize=8)
    fig.suptitle(title)
    return fig


def _format_value(value: float) -> str:
    return "NaN" if not np.isfinite(value) else f"{value:.4f}"


def plot_diagnostics(diag_table: pd.DataFrame, title: str = "Model diagnostics") -> Figure:
    """Dashboard of the section-3 table: one row per diagnostic, coloured by its status.

    ``diag_table`` is :func:`nbutils.diagnostics.diagnostics`'s output (columns value, guideline,
    status). Green = good (meets the guideline), amber = fair, red = bad, grey = not computed.
    The rows the guide calls not very useful (:data:`REFERENCE_ROWS`) are drawn as "reference"
    (blue-grey) whatever their status; :data:`ROW_NOTES` says under a row's name what its number
    is (ddof, the per-era max exposure). The guide calls its guidelines only an example.
    """
    missing = [c for c in ("value", "guideline", "status") if c not in diag_table.columns]
    if missing:
        raise ScoringError(
            f"plot_diagnostics needs columns {missing}; pass nbutils.diagnostics.diagnostics(...)."
        )
    rows = list(diag_table.index)
    n = len(rows)
    fig = NotebookFigure(figsize=(10, 0.55 * n + 1.4), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(rows):
        y = n - 1 - i
        status = str(diag_table.loc[name, "status"])
        if name in REFERENCE_ROWS and status != "n/a":
            status = "reference"
        color = STATUS_COLORS.get(status, NEUTRAL)
        ax.add_patch(Rectangle((0.0, y - 0.42), 0.13, 0.84, color=color))
        ax.text(0.065, y, status, ha="center", va="center", color="white", fontweight="bold")
        note = ROW_NOTES.get(str(name))
        ax.text(0.15, y + (0.13 if note else 0.0), str(name), va="center", fontsize=10)
        if note:
            ax.text(0.15, y - 0.22, note, va="center", fontsize=7, color="#555555")
        ax.text(
            0.50,
            y,
            _format_value(float(diag_table.loc[name, "value"])),
            va="center",
            fontsize=10,
            family="monospace",
        )
        ax.text(
            0.63,
            y,
            str(diag_table.loc[name, "guideline"]),
            va="center",
            fontsize=8.5,
            color="#444444",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks([])
    ax.set_xticks([0.065, 0.15, 0.50, 0.63])
    ax.set_xticklabels(["status", "diagnostic", "value", "guideline"], fontsize=9)
    ax.xaxis.tick_top()
    for side in ("left", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(
        "green = good, amber = fair, red = bad, blue-grey = reference only, grey = not computed."
        " The guide: these guidelines are only an example.",
        fontsize=8,
    )
    ax.set_ylabel("diagnostic")
    shown = [
        "reference" if r in REFERENCE_ROWS and str(s) != "n/a" else str(s)
        for r, s in zip(rows, diag_table["status"], strict=True)
    ]
    counts = pd.Series(shown).value_counts()
    ax.legend(
        handles=[
            Patch(color=STATUS_COLORS[s], label=f"{s}: {counts.get(s, 0)}")
            for s in ("good", "fair", "bad", "reference", "n/a")
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=5,
        frameon=False,
    )
    ax.set_title(title)
    return fig
