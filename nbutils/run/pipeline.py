"""The papermill chain: the nine notebooks run headlessly, in order, into one run directory.

``run_pipeline(run_dir, parameters)`` executes ``notebooks/01_*.ipynb`` ... ``06_*.ipynb`` on a
kernel of the running interpreter's own environment, passes each notebook only the parameters it
declares, saves the executed notebooks in ``run_dir``, renders them to HTML with an index page,
and returns the run's summary. The command line is ``python -m nbutils run``.

Reliability (README, "信頼性 / Reliability"): parameters are checked against the notebooks'
schemas (:mod:`nbutils.run.parameters`) before anything runs; relative ``run_dir`` and ``data_dir``
are both resolved against the working directory; a run directory holding the source notebooks
or inside the package is refused; the run directory is locked while the chain writes
(:mod:`nbutils.run.lock`); each notebook is executed into a temporary file renamed into place
(a full disk or a killed kernel never leaves a truncated notebook under its final name); a
kernel killed by the OS is reported as most likely out of memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from nbutils.daily.cli import add_commands as add_daily_commands
from nbutils.daily.cli import dispatch
from nbutils.errors import NbutilsError, PipelineError
from nbutils.run.catalog import skip_reason
from nbutils.run.fingerprints import record_outputs
from nbutils.run.keys import NumeraiKeys, load_keys, redact, refuse_key_values
from nbutils.run.lock import run_lock
from nbutils.run.parameters import check_run_parameters, schema_for
from nbutils.run.project import NOTEBOOK_NAMES, copy_notebooks, notebooks_dir
from nbutils.util import atomic_write_bytes, atomic_write_text, make_dir, read_json, write_json
from nbutils.versions import require

#: The nine notebooks, in the order they run (one list: :data:`nbutils.run.project.NOTEBOOK_NAMES`).
NOTEBOOKS: tuple[str, ...] = NOTEBOOK_NAMES
KERNEL_NAME = "nbutils-venv"
#: The kernels' matplotlib backend (figures as outputs of the executed notebooks).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_SECRET_NAME = re.compile(r"secret|public_id|api_key|apikey|token|password", re.IGNORECASE)


def default_notebooks_dir() -> Path:
    """The packaged notebooks (``nbutils.notebooks``): the clone's ``notebooks/`` in an editable
    install, ``site-packages/nbutils/notebooks`` after ``pip install``."""
    return notebooks_dir()


@dataclass
class RunResult:
    """What one run of the chain produced."""

    run_dir: Path
    executed: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # notebook -> why (catalog.skip_reason)
    seconds: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    index_html: Path | None = None


# -- parameters ----------------------------------------------------------------------------------
def check_parameters(parameters: Mapping[str, Any]) -> None:
    """Refuse anything that looks like a secret: keys come from the environment or ``.env`` only."""
    for name in parameters:
        if _SECRET_NAME.search(name):
            raise PipelineError(
                f"parameter {name!r} looks like a secret. API keys are never notebook parameters: "
                "set NUMERAI_PUBLIC_ID and NUMERAI_SECRET_KEY in the environment or a .env file."
            )


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its cell tagged ``parameters`` (name -> default)."""
    import nbformat
    from papermill.translators import PythonTranslator

    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise PipelineError(f"{Path(notebook).name} has no cell tagged 'parameters'")
    return {p.name: p.default for p in PythonTranslator.inspect(cells[0])}


def parameters_for(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``parameters`` that ``notebook`` declares."""
    declared = declared_parameters(notebook)
    return {k: v for k, v in parameters.items() if k in declared}


# -- kernel --------------------------------------------------------------------------------------
def kernel_spec_dir(python: str | None = None) -> Path:
    """A temporary Jupyter data dir holding a kernel spec for ``python`` (default: this one).

    Putting it first on ``JUPYTER_PATH`` makes papermill run the notebooks with the project's own
    interpreter, in a fresh ``.venv`` or in CI, with no separately registered kernel. The spec
    sets ``MPLBACKEND`` to the inline backend, whatever the caller's (issue 13, item 12), and
    starts the kernel with IPython's inline matplotlib support configured.
    """
    root = Path(tempfile.mkdtemp(prefix="nbutils-kernel-"))
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    kernel = {
        "argv": [
            python or sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=CRITICAL",  # no TCP or shutdown noise in the output
            # IPython's own inline setup at start: with MPLBACKEND alone, matplotlib 3.8 (the
            # minimum) under IPython 9 defers it to the end of the first cell, whose figures
            # were then shown as "<Figure ...>" text only
            "--IPKernelApp.matplotlib=inline",
        ],
        "display_name": "nbutils (project venv)",
        "language": "python",
        # A kernel inherits the caller's environment: with MPLBACKEND=Agg (CI, a headless shell)
        # matplotlib would draw nowhere and the executed notebooks would show no figures.
        "env": {
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "MPLBACKEND": INLINE_BACKEND,
        },
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    return root


# -- running -------------------------------------------------------------------------------------
def run_pipeline(
    run_dir: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    notebooks_dir: str | os.PathLike | None = None,
    notebooks: Sequence[str] = NOTEBOOKS,
    progress: bool = True,
    html: bool = True,
    log: Callable[[str], object] = print,
) -> RunResult:
    """Execute the notebooks in order with papermill; return a :class:`RunResult`.

    Every notebook gets ``run_dir`` (absolute) and those of ``parameters`` it declares. A failing
    notebook stops the chain with a :class:`PipelineError` naming the notebook and the cell; the
    partly executed notebook is kept in ``run_dir``. Key strings from the environment or ``.env``
    are scrubbed from every executed notebook and HTML page.
    """
    params = dict(parameters or {})
    check_parameters(params)
    source_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    sources = [source_dir / name for name in notebooks]
    for source in sources:
        if not source.is_file():
            raise PipelineError(f"notebook {source} not found (notebooks_dir={source_dir})")
    declared = {s.name: declared_parameters(s) for s in sources}
    schemas = {name: schema_for(name, d) for name, d in declared.items()}
    params = check_run_parameters(params, schemas, always=("run_dir", "data_dir", "data_source"))
    keys = load_keys()
    refuse_key_values(params, keys)
    run_path = resolve_run_dir(run_dir, sources)
    # Relative paths mean the working directory, for run_dir and data_dir alike.
    params["run_dir"] = str(run_path)
    params["data_dir"] = str(Path(params.get("data_dir", "data")).expanduser().resolve())
    source = params.get("data_source")
    if isinstance(source, str) and source not in ("synthetic", "numerai"):
        params["data_source"] = str(Path(source).expanduser().resolve())
    result = RunResult(run_dir=run_path)

    make_dir(run_path, "--run-dir")
    with run_lock(run_path):
        jupyter_path = kernel_spec_dir()
        old_path = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_path), old_path]))
        try:
            for i, source in enumerate(sources, start=1):
                nb_params = {k: v for k, v in params.items() if k in declared[source.name]}
                reason = skip_reason(source.name, _run_layout(run_path))
                if reason:
                    log(f"[{i}/{len(sources)}] {source.name} {reason}")
                    result.skipped[source.name] = reason
                    continue
                log(f"[{i}/{len(sources)}] {source.name} " + _format_params(nb_params))
                since = time.time() - 1.0  # file systems keep mtimes coarser than time.time()
                start = time.perf_counter()
                output = execute_notebook(source, run_path, nb_params, keys, progress=progress)
                record_outputs(run_path, source.name, nb_params, since)
                result.seconds[source.name] = time.perf_counter() - start
                result.executed.append(output)
        finally:
            if old_path is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old_path
            _remove_tree(jupyter_path)

        result.summary = summarize(run_path)
        result.summary["seconds"] = {k: round(v, 1) for k, v in result.seconds.items()}
        write_json(run_path / "summary.json", result.summary)
        if html:
            result.index_html = render_html(run_path, result.executed, result.summary, keys=keys)
    return result


def _run_layout(run_path: Path) -> str | None:
    """The layout notebook 01 recorded in ``data.json`` (None before 01 has run)."""
    try:
        return read_json(run_path / "data.json").get("layout")
    except (OSError, ValueError, AttributeError):
        return None


def resolve_run_dir(run_dir: str | os.PathLike, sources: Sequence[Path] = ()) -> Path:
    """``run_dir`` made absolute against the working directory; refused when the chain would
    write over its own source notebooks or into the installed package."""
    run_path = Path(run_dir).expanduser().resolve()
    package = Path(__file__).resolve().parents[1]
    for source in sources:
        target = run_path / source.name
        if source.resolve() == target.resolve() or source.resolve().parent == run_path:
            raise PipelineError(
                f"--run-dir {run_dir} is the directory of the source notebooks ({run_path}): "
                "the executed notebooks would overwrite them. Choose another run directory, "
                "e.g. runs/latest."
            )
    if run_path == package or package in run_path.parents:
        raise PipelineError(
            f"--run-dir {run_dir} is inside the nbutils package ({package}); choose a run "
            "directory outside it, e.g. runs/latest."
        )
    return run_path


def execute_notebook(
    source: Path,
    run_path: Path,
    parameters: Mapping[str, Any],
    keys: NumeraiKeys | None,
    progress: bool = True,
) -> Path:
    """Execute ``source`` with papermill into ``run_path``, atomically; return the output path.

    papermill writes its output in place while the notebook runs, so it writes into a hidden
    temporary file that is scrubbed of keys and then renamed onto ``run_path / source.name``.
    A failing cell keeps the partly executed notebook (renamed into place, as a record); a dead
    kernel, a full disk or any other failure removes the temporary file and leaves the previous
    output as it was.
    """
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    name = source.name
    output = run_path / name
    tmp = run_path / f".{name}.{os.getpid()}.tmp.ipynb"
    try:
        papermill.execute_notebook(
            str(source),
            str(tmp),
            parameters=dict(parameters),
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=progress,
            cwd=str(run_path),
        )
    except PapermillExecutionError as err:
        _scrub(tmp, keys)
        if tmp.exists():
            os.replace(tmp, output)
        first_line = (err.source or "").strip().splitlines()[:1] or [""]
        raise PipelineError(
            f"{name} failed at cell {err.cell_index + 1} of the executed notebook "
            f"(In [{err.exec_count}]: {first_line[0][:80]!r}): "
            f"{err.ename}: {redact(str(err.evalue), keys)}\n"
            f"The partly executed notebook is kept at {output}"
        ) from None
    except DeadKernelError:
        kept = _keep_if_valid(tmp, output, keys)
        raise PipelineError(
            f"the kernel running {name} died (killed by the operating system): most likely it "
            "ran out of memory. Use less data (feature_set small or medium, a larger era_step, "
            "fewer n_estimators) or engine dask, or close other programs, then run again."
            + (f" The notebook up to the dead cell is kept at {output}" if kept else "")
        ) from None
    except OSError as err:
        _discard(tmp)
        raise PipelineError(
            f"writing the executed {name} into {run_path} failed ({err.strerror or err}); "
            "if the disk is full, free space or choose another --run-dir. The previous "
            f"{output.name}, if any, is unchanged."
        ) from None
    except BaseException:
        _discard(tmp)
        raise
    _scrub(tmp, keys)
    os.replace(tmp, output)
    return output


def _discard(path: Path) -> None:
    if path.exists():
        path.unlink()


def _keep_if_valid(tmp: Path, output: Path, keys) -> bool:
    """Rename ``tmp`` onto ``output`` when it is a complete notebook; else remove it."""
    import nbformat

    try:
        nbformat.read(tmp, as_version=4)
    except Exception:
        _discard(tmp)
        return False
    _scrub(tmp, keys)
    os.replace(tmp, output)
    return True


def _format_params(params: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k not in ("run_dir",)}
    return "(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")" if shown else ""


def _scrub(path: Path, keys) -> None:
    """Replace key strings in a saved file (notebook or HTML) by ``***``."""
    if keys is None or not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    clean = redact(text, keys)
    if clean != text:
        atomic_write_text(path, clean)


def _remove_tree(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    root.rmdir()


# -- summary -------------------------------------------------------------------------------------
SUMMARY_ROWS = ("Validation Mean", "Validation Sharpe", "Max Drawdown")


def summarize(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Validation corr mean, Sharpe and max drawdown before and after neutralization.

    Read from ``diagnostics.csv`` (notebook 06: columns metric, before, after, ...) and the paths
    of both submission files.
    """
    import pandas as pd

    run_path = Path(run_dir)
    summary: dict[str, Any] = {"run_dir": str(run_path)}
    diag_path = run_path / "diagnostics.csv"
    if diag_path.is_file():
        diag = pd.read_csv(diag_path).set_index("metric")
        for row in SUMMARY_ROWS:
            if row in diag.index:
                summary[row] = {
                    "before": float(diag.loc[row, "before"]),
                    "after": float(diag.loc[row, "after"]),
                }
    for name in ("submission.csv", "neutralized_submission.csv"):
        path = run_path / name
        summary[name] = str(path) if path.is_file() else None
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as the few lines printed at the end of a run."""
    lines = ["", "Summary (validation, numerai corr per era):"]
    lines.append(f"  {'':<18} {'before':>10} {'after':>10}   (neutralization)")
    for row in SUMMARY_ROWS:
        if row in summary:
            b, a = summary[row]["before"], summary[row]["after"]
            lines.append(f"  {row:<18} {b:>10.4f} {a:>10.4f}")
    lines.append(f"  submission:             {summary.get('submission.csv')}")
    lines.append(f"  neutralized submission: {summary.get('neutralized_submission.csv')}")
    if summary.get("index_html"):
        lines.append(f"  browse the run:         {summary['index_html']}")
    return "\n".join(lines)


# -- HTML ----------------------------------------------------------------------------------------
#: The files of a run that the index links to, with what each holds (Japanese, for the learner).
INDEX_FILES = {
    "submission.csv": "提出ファイル（05）",
    "neutralized_submission.csv": "中和した提出ファイル（06）",
    "metrics.json": "まとめの数字（04）",
    "per_era.csv": "era ごとのスコア（04）",
    "diagnostics.csv": "診断表、中和の前と後（06）",
    "benchmark_scores.csv": "era ごとの CORR・MMC・BMC（07）",
    "feature_risk.csv": "特徴量リスク（07）",
    "ensemble_submission.csv": "ターゲットアンサンブルの提出ファイル（08）",
    "ensemble_scores.csv": "単独のモデルとアンサンブルの比較（08）",
    "validation.json": "ウォークフォワード、エラブースティング、探索の数字（09）",
    "param_search.csv": "パラメータ探索の表（09）",
    "model.txt": "学習したモデル（03）",
    "summary.json": "この実行のまとめ",
}
_PAGE_STYLE = """body{font-family:"Noto Sans CJK JP","Noto Sans JP",sans-serif;max-width:64em;
margin:2em auto;padding:0 1em;line-height:1.6}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .8em}
td{text-align:right}th{text-align:left}td.text{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{color:#444;font-size:.9em}"""
_NAV_STYLE = (
    "display:flex;gap:1.5em;justify-content:space-between;font-family:sans-serif;"
    "padding:.6em 1em;margin:0 0 1em;background:#f3f5f8;border-bottom:1px solid #d0d7de"
)


def notebook_figures(executed: Sequence[Path], out_dir: Path) -> list[tuple[str, str, Path]]:
    """Every PNG figure the executed notebooks show, in notebook order, written to ``out_dir``.

    Returns ``(notebook stem, caption, path)`` per figure. The caption is the figure's own title,
    which every :class:`nbutils.plots.NotebookFigure` writes into its PNG; a figure without one
    (drawn with pyplot) is captioned by the last markdown ``#`` line above its cell, numbered when
    several figures share that heading. Figures that are only shown inline are included, not
    only the PNG files the notebooks save.
    """
    import base64

    import nbformat

    from nbutils.plots import png_title

    make_dir(out_dir)
    found: list[tuple[str, str, Path, str]] = []  # stem, title, path, heading
    for nb_path in executed:
        heading = nb_path.stem
        number = 0
        for cell in nbformat.read(nb_path, as_version=4).cells:
            if cell.cell_type == "markdown":
                titles = [
                    ln.lstrip("#").strip() for ln in cell.source.splitlines() if ln.startswith("#")
                ]
                heading = titles[-1] if titles else heading
                continue
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    number += 1
                    path = out_dir / f"{nb_path.stem}-{number:02d}.png"
                    data = base64.b64decode(png)
                    atomic_write_bytes(path, data)
                    found.append((nb_path.stem, png_title(data), path, heading))
    untitled: dict[tuple[str, str], int] = {}
    for stem, title, _, heading in found:
        if not title:
            untitled[(stem, heading)] = untitled.get((stem, heading), 0) + 1
    seen: dict[tuple[str, str], int] = {}
    out = []
    for stem, title, path, heading in found:
        caption = title
        if not caption:
            key = (stem, heading)
            seen[key] = seen.get(key, 0) + 1
            caption = heading + (f"（図 {seen[key]}）" if untitled[key] > 1 else "")
        out.append((stem, caption, path))
    return out


def _notebook_title(nb_path: Path) -> str:
    """The first ``# `` heading of an executed notebook ("" if none)."""
    import nbformat

    for cell in nbformat.read(nb_path, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _navigation(stems: Sequence[str], i: int) -> str:
    """Previous / index / next links of notebook page ``i`` (pages are html/<stem>.html)."""
    prev_link = (
        f'<a href="{escape(stems[i - 1])}.html">← 前: {escape(stems[i - 1])}</a>'
        if i > 0
        else "<span></span>"
    )
    next_link = (
        f'<a href="{escape(stems[i + 1])}.html">次: {escape(stems[i + 1])} →</a>'
        if i + 1 < len(stems)
        else "<span></span>"
    )
    return (
        f'<nav class="nbutils-nav" style="{_NAV_STYLE}">{prev_link}'
        f'<a href="../index.html">一覧（index）</a>{next_link}</nav>'
    )


def _with_navigation(body: str, nav: str) -> str:
    """The nbconvert page with ``nav`` right after ``<body ...>`` and again before ``</body>``."""
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav, body, count=1)
    head, sep, tail = body.rpartition("</body>")
    return head + nav + "\n" + sep + tail if sep else body + nav


def _status_table(run_dir: Path, summary: Mapping[str, Any]) -> str:
    """The summary rows (before / after neutralization) with their status words in Japanese."""
    from nbutils.diagnostics import STATUS_JA, guideline_ja

    statuses: dict[str, dict[str, str]] = {}
    diag_path = run_dir / "diagnostics.csv"
    if diag_path.is_file():
        import pandas as pd

        diag = pd.read_csv(diag_path).set_index("metric")
        for row in diag.index:
            statuses[row] = {
                k: STATUS_JA.get(str(diag.loc[row, f"{k}_status"]), "")
                for k in ("before", "after")
                if f"{k}_status" in diag.columns
            }
    rows = []
    for name, v in summary.items():
        if not (isinstance(v, dict) and "before" in v):
            continue
        st = statuses.get(name, {})
        try:
            guideline = guideline_ja(name)
        except KeyError:
            guideline = ""
        rows.append(
            f"<tr><th>{escape(name)}</th><td>{v['before']:.4f}</td>"
            f"<td>{escape(st.get('before', ''))}</td><td>{v['after']:.4f}</td>"
            f'<td>{escape(st.get("after", ""))}</td><td class="text">{escape(guideline)}</td></tr>'
        )
    if not rows:
        return "<p>診断表（06 の diagnostics.csv）はまだありません。</p>"
    return (
        "<table><tr><th>診断項目</th><th>中和前</th><th>判定</th><th>中和後</th><th>判定</th>"
        "<th>目安</th></tr>" + "".join(rows) + "</table>"
        "<p>判定に使う Sharpe は 1 つだけです: era ごとの numerai corr の平均 ÷ 標準偏差"
        "（ddof=0、Numerai の定義）。04 の判定と 06 の診断表も同じです。チュートリアルの Sharpe"
        "（Spearman、ddof=1）は 04 に並べてあります。</p>"
    )


def _embargo_note(run_dir: Path) -> str:
    """One line on the embargo the validation scores used (metrics.json), if recorded."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return ""
    try:
        validation = json.loads(path.read_text(encoding="utf-8")).get("validation", {})
    except (json.JSONDecodeError, AttributeError):
        return ""
    n = validation.get("embargo_eras") if isinstance(validation, dict) else None
    if not isinstance(n, int | float):
        return ""
    return (
        f"<p>検証のスコアは、学習に使った最後の era の直後 {int(n)} era を除いて計算しています"
        "（エンバーゴ: ターゲットの期間が重なる era を除く）。</p>"
    )


def render_html(
    run_dir: Path,
    executed: Sequence[Path],
    summary: Mapping[str, Any],
    keys: NumeraiKeys | None = None,
) -> Path:
    """Render each executed notebook to ``html/<name>.html`` and write ``index.html``.

    Every notebook page gets previous / index / next links at its top and bottom. The index
    (Japanese, for the learner) names the run by its directory's name only, shows the summary
    with its status words, links the run's files, and shows every figure at its natural size
    (never wider than the page) with its own caption (:func:`notebook_figures`).
    """
    import nbformat

    require("nbconvert")
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    html_dir = make_dir(run_dir / "html")
    stems = [nb_path.stem for nb_path in executed]
    items = []
    for i, nb_path in enumerate(executed):
        body, _ = exporter.from_notebook_node(
            nbformat.read(nb_path, as_version=4), resources={"metadata": {"name": nb_path.stem}}
        )
        out = html_dir / (nb_path.stem + ".html")
        atomic_write_text(out, redact(_with_navigation(body, _navigation(stems, i)), keys))
        items.append((nb_path.stem, f"html/{out.name}", nb_path.name, _notebook_title(nb_path)))
    figures = notebook_figures(executed, html_dir / "figures")
    links = "".join(
        f'<li><a href="{escape(href)}">{escape(title or stem)}</a>'
        f'（{escape(stem)}、<a href="{escape(nb)}">ipynb</a>）</li>'
        for stem, href, nb, title in items
    )
    figs = "".join(
        f'<figure><a href="{escape(rel)}" title="原寸で開く"><img src="{escape(rel)}" '
        f'alt="{escape(caption)}"></a>'
        f"<figcaption>{escape(stem)} — {escape(caption)}</figcaption></figure>"
        for stem, caption, rel in (
            (stem, caption, path.relative_to(run_dir).as_posix()) for stem, caption, path in figures
        )
    )
    files = "".join(
        f'<li><a href="{escape(n)}">{escape(n)}</a> — {escape(what)}</li>'
        for n, what in INDEX_FILES.items()
        if (run_dir / n).is_file()
    )
    name = escape(run_dir.name)
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>nbutils の実行結果: {name}</title>
<style>{_PAGE_STYLE}</style></head><body>
<h1>nbutils の実行結果: {name}</h1>
<h2>ノートブック</h2><ol>{links}</ol>
<h2>結果（検証データ、era ごとの numerai corr）</h2>
{_status_table(run_dir, summary)}
{_embargo_note(run_dir)}
<h2>ファイル</h2><ul>{files}</ul>
<h2>図（ノートブックの順。クリックで原寸）</h2>{figs}
</body></html>
"""
    index = run_dir / "index.html"
    atomic_write_text(index, redact(page, keys))
    return index


# -- command line --------------------------------------------------------------------------------
def _parse_value(text: str) -> Any:
    """A ``-p`` value: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _non_empty(text: str) -> str:
    """``--run-dir``'s value, refused when empty (an unset shell variable would write the run into
    the working directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset variable?); give a directory")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nbutils",
        description="The nine notebooks (run, notebooks, adopt) and the daily round (submit, export-model, "
        "upload-model, scores).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the nine notebooks with papermill")
    run.add_argument(
        "--run-dir",
        type=_non_empty,
        default="runs/latest",
        help="where artifacts and executed notebooks go (relative: to the working directory)",
    )
    run.add_argument(
        "--data-source",
        default=None,
        help='"synthetic" (default), "numerai" (download with numerapi) or a local data directory',
    )
    run.add_argument(
        "--data-dir",
        default=None,
        help="where datasets are built or downloaded (default data/; relative: to the working "
        "directory, like --run-dir)",
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, repeatable; VALUE is checked against the notebook's schema "
        "(booleans: True/False, true/false, 1/0, yes/no; lists as JSON)",
    )
    run.add_argument("--notebooks-dir", default=None, help="where the .ipynb files are")
    run.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    copy = sub.add_parser("notebooks", help="copy the nine notebooks into DIR for editing")
    copy.add_argument("dir", metavar="DIR", help="where to copy them (created if missing)")
    copy.add_argument("--overwrite", action="store_true", help="replace notebooks already in DIR")
    adopt = sub.add_parser(
        "adopt",
        help="accept a hand-made artifact (predictions.parquet, model.txt...) into a run directory",
        description="nbutils reads only the artifacts a run directory made itself. adopt checks "
        "FILE as its reader would, copies it into the run directory when it is elsewhere, and "
        "records its fingerprint, so the later notebooks read it.",
    )
    adopt.add_argument(
        "file", metavar="FILE", help="the artifact (its name in --run-dir, or a path)"
    )
    adopt.add_argument(
        "--run-dir",
        default="runs/latest",
        help="the run directory (default runs/latest; relative: to the working directory)",
    )
    add_daily_commands(sub)  # listed by --help; main() hands them to nbutils.daily.cli.dispatch
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if (code := dispatch(argv)) is not None:
        return code
    args = build_parser().parse_args(argv)
    if args.command == "notebooks":
        try:
            copied = copy_notebooks(args.dir, overwrite=args.overwrite)
        except NbutilsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"copied {len(copied)} notebooks to {Path(args.dir).expanduser().resolve()}")
        return 0
    if args.command == "adopt":
        from nbutils.run.artifacts import adopt_artifact

        try:
            run_dir = Path(args.run_dir).expanduser().resolve()  # like run: the working dir
            path = adopt_artifact(args.file, run_dir)
        except NbutilsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"adopted {path}: its fingerprint is recorded in {run_dir / 'fingerprints.json'}")
        return 0
    params: dict[str, Any] = {name: _parse_value(value) for name, value in args.parameter}
    if args.data_source is not None:
        params["data_source"] = args.data_source
    if args.data_dir is not None:
        params["data_dir"] = args.data_dir
    try:
        result = run_pipeline(
            args.run_dir,
            params,
            notebooks_dir=args.notebooks_dir,
            progress=not args.no_progress,
            html=not args.no_html,
        )
    except NbutilsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = dict(result.summary)
    if result.index_html:
        summary["index_html"] = str(result.index_html)
    print(format_summary(summary))
    total = sum(result.seconds.values())
    print(f"  total time:             {total:.1f} s")
    return 0
