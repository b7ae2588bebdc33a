"""The run's index.html lists every figure the executed notebooks show, in notebook order, each
with its own caption; notebook pages link to each other; the index speaks Japanese."""

from __future__ import annotations

import base64
import io
import re

import nbformat
from matplotlib.figure import Figure

from nbutils.plots import NotebookFigure
from nbutils.run.pipeline import notebook_figures, render_html


def png_bytes(label: str, title: str | None = None) -> bytes:
    """A small PNG; with ``title``, drawn as a NotebookFigure whose PNG carries that title."""
    fig = NotebookFigure(figsize=(2, 1)) if title else Figure(figsize=(2, 1))
    if title:
        fig.suptitle(title)
    fig.text(0.5, 0.5, label)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def executed_notebook(path, sections, titles=None):
    """A notebook whose code cells show one PNG each, under the given markdown headings
    (a heading of None adds no markdown cell: the figure shares the heading above)."""
    nb = nbformat.v4.new_notebook()
    titles = titles or [None] * len(sections)
    for (heading, label), title in zip(sections, titles, strict=True):
        if heading is not None:
            nb.cells.append(nbformat.v4.new_markdown_cell(f"## {heading}\n\ntext"))
        cell = nbformat.v4.new_code_cell("fig")
        png = base64.b64encode(png_bytes(label, title)).decode()
        data = {"image/png": png, "text/plain": "<Fig>"}
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_every_shown_figure_is_listed_in_notebook_order_at_full_width(tmp_path):
    first = executed_notebook(tmp_path / "01_load_data.ipynb", [("era", "a")])
    # 03's figure is only shown inline: no PNG file of it exists in the run directory.
    third = executed_notebook(tmp_path / "03_training.ipynb", [("importance", "b"), ("zz", "c")])
    (tmp_path / "aaa_saved.png").write_bytes(png_bytes("saved"))  # sorted first by name
    index = render_html(tmp_path, [first, third], {}).read_text(encoding="utf-8")
    srcs = [part.split('"')[0] for part in index.split('<img src="')[1:]]
    assert srcs == [
        "html/figures/01_load_data-01.png",
        "html/figures/03_training-01.png",
        "html/figures/03_training-02.png",
    ]
    for src in srcs:
        assert (tmp_path / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'<a href="{src}"' in index  # a click opens the full-size image
    # natural size, never wider than the page: no forced width
    assert 'width="480"' not in index and "max-width:100%" in index
    assert not re.search(r"img\{width:100%", index)
    assert "03_training — importance" in index


def test_notebook_figures_names_each_figure_after_its_section(tmp_path):
    nb = executed_notebook(tmp_path / "06.ipynb", [("trade-off", "x")])
    [(stem, heading, path)] = notebook_figures([nb], tmp_path / "figs")
    assert (stem, heading, path.name) == ("06", "trade-off", "06-01.png")


def test_figures_under_one_heading_get_their_own_titles_as_captions(tmp_path):
    """Issue 19: 04's bars and cumulative curves shared one section's caption."""
    nb = executed_notebook(
        tmp_path / "04_evaluation.ipynb",
        [("numerai corr を手計算する", "a"), (None, "b"), ("plain", "c"), (None, "d")],
        titles=["era ごとの CORR", "CORR の累積", None, None],
    )
    captions = [caption for _, caption, _ in notebook_figures([nb], tmp_path / "figs")]
    assert captions == ["era ごとの CORR", "CORR の累積", "plain（図 1）", "plain（図 2）"]
    index = render_html(tmp_path, [nb], {}).read_text(encoding="utf-8")
    assert "04_evaluation — era ごとの CORR" in index and "04_evaluation — CORR の累積" in index


def test_notebook_pages_link_previous_index_and_next(tmp_path):
    names = ["01_load_data", "02_feature_engineering", "03_training"]
    executed = [executed_notebook(tmp_path / f"{n}.ipynb", [("h", n)]) for n in names]
    render_html(tmp_path, executed, {})
    pages = {n: (tmp_path / "html" / f"{n}.html").read_text(encoding="utf-8") for n in names}
    for i, n in enumerate(names):
        page = pages[n]
        assert page.count('href="../index.html"') == 2, n  # top and bottom
        linked = set(re.findall(r'href="(\d\d_\w+)\.html"', page))
        assert linked == {names[j] for j in (i - 1, i + 1) if 0 <= j < len(names)}, n
        nav = page.index('class="nbutils-nav"')
        assert page.index("<body") < nav < page.index("</body>")
        assert f"<title>{n}</title>" in page


def test_index_names_the_run_relatively_and_speaks_japanese(tmp_path):
    run = tmp_path / "latest"
    run.mkdir()
    nb = executed_notebook(run / "06_neutralization.ipynb", [("診断", "x")])
    (run / "diagnostics.csv").write_text(
        "metric,guideline,before,before_status,after,after_status\n"
        "Validation Sharpe,>= 1 (tutorial),0.9,bad,1.2,good\n",
        encoding="utf-8",
    )
    (run / "metrics.json").write_text('{"validation": {"embargo_eras": 4}}', encoding="utf-8")
    summary = {"Validation Sharpe": {"before": 0.9, "after": 1.2}, "run_dir": str(run)}
    index = render_html(run, [nb], summary).read_text(encoding="utf-8")
    assert str(tmp_path) not in index  # no absolute path of this machine
    assert "<title>nbutils の実行結果: latest</title>" in index
    row = re.search(r"<tr><th>Validation Sharpe</th>(.*?)</tr>", index).group(1)
    assert re.findall(r"<td>(.*?)</td>", row)[:4] == ["0.9000", "悪い", "1.2000", "良い"]
    assert "1 以上（チュートリアル）" in row
    assert "ddof=0" in index and "直後 4 era を除いて" in index
    for english in ("before neutralization", "Summary", "Figures", "Files"):
        assert english not in index
