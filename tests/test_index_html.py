"""The run's index.html lists every figure the executed notebooks show, in notebook order."""

from __future__ import annotations

import base64
import io

import nbformat
from matplotlib.figure import Figure

from nbutils.run.pipeline import notebook_figures, render_html


def png_bytes(label: str) -> bytes:
    fig = Figure(figsize=(2, 1))
    fig.text(0.5, 0.5, label)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def executed_notebook(path, sections):
    """A notebook whose code cells show one PNG each, under the given markdown headings."""
    nb = nbformat.v4.new_notebook()
    for heading, label in sections:
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {heading}\n\ntext"))
        cell = nbformat.v4.new_code_cell("fig")
        data = {"image/png": base64.b64encode(png_bytes(label)).decode(), "text/plain": "<Fig>"}
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
    assert 'width="480"' not in index and "width:100%" in index
    assert "03_training — importance" in index


def test_notebook_figures_names_each_figure_after_its_section(tmp_path):
    nb = executed_notebook(tmp_path / "06.ipynb", [("trade-off", "x")])
    [(stem, heading, path)] = notebook_figures([nb], tmp_path / "figs")
    assert (stem, heading, path.name) == ("06", "trade-off", "06-01.png")
