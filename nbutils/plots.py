"""The figures the notebooks show: per-era scores, cumulative scores, feature exposure, the
neutralization trade-off (2F) and the diagnostics dashboard (section 3); and the round scores
of ``python -m nbutils scores``.

Every function returns a :class:`NotebookFigure` built with the object API (no ``pyplot``
state, nothing shown): display it by leaving it as a cell's last expression, or save it with
``fig.savefig(path)``. Titles, labels and legends are Japanese (the learner's language; code
names such as ``numerai corr`` or ``Validation Sharpe`` stay as they are). The Japanese font is
IPAexGothic from the PyPI package ``matplotlib-fontja`` (the maintained fork of
``japanize-matplotlib``, which imports ``distutils`` and so fails on Python 3.12+): the font
file ships inside the wheel, so Colab and Kaggle need no system font. Importing this module
activates it (:func:`use_japanese_font`).

Every PNG a :class:`NotebookFigure` writes carries its title (:func:`figure_title`) in the PNG
``Title`` text field: the run's HTML index takes its captions from it, and the tests read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from nbutils.diagnostics import GUIDELINES, REFERENCE_ROWS, STATUS_JA, guideline_ja
from nbutils.errors import ScoringError
from nbutils.metrics import max_drawdown, sharpe

#: The Japanese font of every figure: IPAexGothic, shipped inside matplotlib-fontja's wheel.
JAPANESE_FONT = "IPAexGothic"


def use_japanese_font() -> str:
    """Make matplotlib draw Japanese text with IPAexGothic (package ``matplotlib-fontja``).

    Registers the font file bundled in the package (no system font needed, so it works on a fresh
    Colab or Kaggle machine) and sets ``font.family`` to IPAexGothic with DejaVu Sans as the
    fallback for the few symbols IPAexGothic lacks (``≥``). It changes matplotlib's global
    settings, so pyplot figures drawn afterwards in the same kernel are Japanese-capable too.
    Returns the family name. Called when :mod:`nbutils.plots` is imported.
    """
    import matplotlib
    import matplotlib_fontja

    matplotlib_fontja.japanize()  # addfont(<package>/fonts/ipaexg.ttf) + font.family
    matplotlib.rcParams["font.family"] = [JAPANESE_FONT, "DejaVu Sans"]
    return JAPANESE_FONT


use_japanese_font()


def figure_title(fig: Figure) -> str:
    """The figure's own title: its suptitle, else its axes' titles joined by " / "."""
    suptitle = fig.get_suptitle().strip() if hasattr(fig, "get_suptitle") else ""
    if suptitle:
        return suptitle
    return " / ".join(t for ax in fig.axes if (t := ax.get_title().strip()))


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as PNG, whose PNG files carry its title.

    A Figure built with the object API is not known to IPython's inline backend until pyplot is
    imported; ``_repr_png_`` makes it show in any kernel (Jupyter, Colab, papermill, Kaggle).
    Every PNG it writes (shown or saved) holds :func:`figure_title` in its ``Title`` field.
    """

    def savefig(self, fname, *args, **kwargs):  # type: ignore[override]
        fmt = kwargs.get("format")
        if fmt is None and isinstance(fname, str | os.PathLike):
            suffix = Path(fname).suffix.lstrip(".").lower()
            fmt = suffix or None
        if (fmt or matplotlib.rcParams["savefig.format"]) == "png" and "metadata" not in kwargs:
            kwargs["metadata"] = {"Title": figure_title(self)}
        return super().savefig(fname, *args, **kwargs)

    def _repr_png_(self) -> bytes:
        from io import BytesIO

        buffer = BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _register_with_ipython() -> None:
    """Show a NotebookFigure through its own ``_repr_png_`` (title in the PNG) in IPython.

    Once pyplot is imported, IPython prints every Figure through the inline backend's own printer,
    which writes no title; a printer registered for this subclass is found first.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks only
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "display_formatter"):
        png = shell.display_formatter.formatters["image/png"]
        png.for_type(NotebookFigure, NotebookFigure._repr_png_)


_register_with_ipython()


def png_title(png: bytes) -> str:
    """The ``Title`` text field of a PNG (what :class:`NotebookFigure` writes); "" if none."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return ""
    pos = 8
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt" and body.startswith(b"Title\x00"):
            return body[6:].decode("latin-1")
        if kind == b"iTXt" and body.startswith(b"Title\x00"):
            # keyword \0 compression flag, method \0 language \0 translated keyword \0 text
            flag = body[6]
            rest = body[8:].split(b"\x00", 2)[2]
            return (zlib.decompress(rest) if flag else rest).decode("utf-8")
        if kind == b"IEND":
            break
    return ""


__all__ = [
    "plot_cumulative",
    "plot_diagnostics",
    "plot_feature_exposure",
    "plot_neutralization_tradeoff",
    "plot_per_era",
    "plot_round_scores",
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
#: What each diagnostic row's number is, where its name alone could mislead (Japanese).
ROW_NOTES = {
    "Validation Sharpe": "era ごとの numerai corr の平均 ÷ 標準偏差（ddof=0）",
    "Validation SD": "era ごとの numerai corr の標準偏差（ddof=0）。チュートリアル: あまり参考にならない",
    "Feature Neutral Mean": "チュートリアル: あまり参考にならない",
    "Max Feature Exposure": "era ごとの特徴量との最大 |相関| の、era の平均",
    "Max Drawdown": "チュートリアルの「-0.05以下」は、落ち込みが 0.05 以内と読む",
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
    scores: pd.Series | pd.DataFrame, title: str = "era ごとのスコア", ylabel: str = "スコア"
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
            label=f"平均 {mean:.4f}、Sharpe（ddof=0）{sharpe(s):.2f}",
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
    title: str = "era ごとのスコアの累積",
    ylabel: str = "累積スコア",
) -> Figure:
    """One line per model: the running sum of its per-era scores (NaN eras count as 0).

    ``scores_by_name`` maps a name to a per-era Series (or is a DataFrame, one column per
    model); eras are aligned on their labels in the order of the first series. The legend,
    below the axes, gives each model's final sum and its max drawdown.
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
            label=f"{name}（合計 {cum[-1]:.3f}、最大ドローダウン {max_drawdown(col):.3f}）",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    _era_ticks(ax, frame.index)
    ax.set_title(title)
    ax.set_xlabel(frame.index.name or "era")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    # below the axes: long Japanese labels inside would cover the curves
    fig.legend(
        *ax.get_legend_handles_labels(), loc="outside lower center", frameon=False, fontsize=9
    )
    return fig


def plot_feature_exposure(
    exposures: pd.Series, title: str = "特徴量への露出（feature exposure）", top: int = 15
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
    left.set_title(f"各特徴量との Spearman 相関（標準偏差 ddof=0 = 露出 {spread:.4f}）")
    left.set_xlabel("予測と特徴量の相関")
    left.set_ylabel("特徴量の数")
    largest = s.reindex(s.abs().sort_values(ascending=False).index[:top])[::-1]
    right.barh(
        np.arange(len(largest)),
        largest.to_numpy(),
        color=np.where(largest.to_numpy() >= 0, POSITIVE, NEGATIVE),
    )
    right.set_yticks(np.arange(len(largest)))
    right.set_yticklabels([str(i) for i in largest.index], fontsize=8)
    right.axvline(0.0, color="black", linewidth=0.8)
    right.set_title(f"|相関| の大きい {len(largest)} 個")
    right.set_xlabel("相関")
    right.set_ylabel("特徴量")
    fig.suptitle(title)
    return fig


def plot_neutralization_tradeoff(
    table: pd.DataFrame, title: str = "中和の度合いとスコアのトレードオフ"
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
        ("corr_mean", "era ごとの CORR の平均", "CORR の平均", "#1f4e9c"),
        ("corr_sharpe", "era ごとの CORR の Sharpe", "Sharpe（ddof=0）", "#7b3294"),
        ("max_feature_exposure", "特徴量への最大露出", "era ごとの最大 |相関| の平均", "#d1423f"),
    ]
    for ax, (col, sub, ylabel, color) in zip(axes, panels, strict=True):
        ax.plot(x, table[col].to_numpy(dtype=float), marker="o", color=color, linewidth=1.8)
        ax.axvspan(
            *GUIDE_PROPORTION_BAND, color=NEUTRAL, alpha=0.3, label="チュートリアルの助言 0.3〜0.5"
        )
        ax.set_title(sub)
        ax.set_xlabel("中和の割合（proportion）")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", frameon=False, fontsize=8)
    fig.suptitle(title)
    return fig


def _wrap(text: str, width: int = 34) -> str:
    """Break a Japanese guideline before its parenthesis and after "。" when a line is long
    (Japanese has no spaces to break at)."""
    lines: list[str] = []
    for part in text.replace("（", "\n（").replace("。", "。\n").splitlines():
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def _format_value(value: float) -> str:
    return "NaN" if not np.isfinite(value) else f"{value:.4f}"


def plot_diagnostics(diag_table: pd.DataFrame, title: str = "モデル診断") -> Figure:
    """Dashboard of the section-3 table: one row per diagnostic, coloured by its status.

    ``diag_table`` is :func:`nbutils.diagnostics.diagnostics`'s output (columns value, guideline,
    status). Green = good (meets the guideline), amber = fair, red = bad, grey = not computed;
    the words drawn are Japanese (:data:`nbutils.diagnostics.STATUS_JA`) and so is each
    guideline (:func:`nbutils.diagnostics.guideline_ja`). The rows the guide calls not very
    useful (:data:`REFERENCE_ROWS`) are drawn as "reference" (blue-grey) whatever their status;
    :data:`ROW_NOTES` says under a row's name what its number is (ddof, the per-era max
    exposure). The guide calls its guidelines only an example.
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
        ax.text(
            0.065,
            y,
            STATUS_JA.get(status, status),
            ha="center",
            va="center",
            color="white",
        )
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
            _wrap(
                guideline_ja(str(name))
                if name in GUIDELINES
                else str(diag_table.loc[name, "guideline"])
            ),
            va="center",
            fontsize=8,
            color="#444444",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_yticks([])
    ax.set_xticks([0.065, 0.15, 0.50, 0.63])
    ax.set_xticklabels(["判定", "診断項目", "値", "目安"], fontsize=9)
    ax.xaxis.tick_top()
    for side in ("left", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(
        "緑 = 良い、黄 = まずまず、赤 = 悪い、青灰 = 参考（判定しない）、灰 = 計算なし。"
        "チュートリアル: この目安はあくまでも一例です。",
        fontsize=8,
    )
    ax.set_ylabel("診断項目")
    shown = [
        "reference" if r in REFERENCE_ROWS and str(s) != "n/a" else str(s)
        for r, s in zip(rows, diag_table["status"], strict=True)
    ]
    counts = pd.Series(shown).value_counts()
    ax.legend(
        handles=[
            Patch(color=STATUS_COLORS[s], label=f"{STATUS_JA[s]}: {counts.get(s, 0)}")
            for s in ("good", "fair", "bad", "reference", "n/a")
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=5,
        frameon=False,
    )
    ax.set_title(title)
    return fig


def plot_round_scores(table: pd.DataFrame, model_name: str) -> Figure:
    """A model's recent rounds (``python -m nbutils scores``): CORR and MMC bars per round above,
    the running sum of the payout below.

    ``table`` is :func:`nbutils.daily.scores.scores_table`'s: indexed by round, with columns
    ``corr``, ``mmc`` and ``payout`` (NMR, for the stake it was computed with); a NaN payout
    counts as 0 in the sum.
    """
    missing = [c for c in ("corr", "mmc", "payout") if c not in table.columns]
    if missing or table.empty:
        raise ScoringError(
            f"plot_round_scores needs a table of rounds with corr, mmc and payout columns "
            f"(missing {missing or 'none'}, {len(table)} rounds): pass scores_table(...)."
        )
    fig = NotebookFigure(figsize=(8, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(table))
    width = 0.4
    top.bar(x - width / 2, table["corr"].to_numpy(dtype=float), width, label="CORR")
    top.bar(x + width / 2, table["mmc"].to_numpy(dtype=float), width, label="MMC")
    top.axhline(0.0, color="black", linewidth=0.8)
    top.set_title(f"{model_name}: ラウンドごとのスコア")
    top.set_xlabel("ラウンド")
    top.set_ylabel("スコア")
    top.legend(loc="best", framealpha=0.9)
    top.grid(axis="y", alpha=0.3)
    cumulative = table["payout"].astype(float).fillna(0.0).cumsum().to_numpy()
    bottom.plot(x, cumulative, marker="o")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_xticks(x, [str(r) for r in table.index], rotation=90)
    bottom.set_xlabel("ラウンド")
    bottom.set_ylabel("配当の累積（NMR）")
    bottom.grid(alpha=0.3)
    return fig
