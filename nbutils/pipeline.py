"""The papermill chain: the six notebooks run headlessly, in order, into one run directory.

``run_pipeline(run_dir, parameters)`` executes ``notebooks/01_*.ipynb`` ... ``06_*.ipynb`` on a
kernel of the running interpreter's own environment, passes each notebook only the parameters it
declares, saves the executed notebooks in ``run_dir``, renders them to HTML with an index page,
and returns the run's summary. The command line is ``python -m nbutils run``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from nbutils.artifacts import project_root
from nbutils.errors import PipelineError
from nbutils.keys import load_keys, redact
from nbutils.project import clone_root, copy_notebooks, notebooks_dir
from nbutils.util import atomic_write_text, write_json

NOTEBOOKS: tuple[str, ...] = (
    "01_load_data.ipynb",
    "02_feature_engineering.ipynb",
    "03_training.ipynb",
    "04_evaluation.ipynb",
    "05_submission.ipynb",
    "06_neutralization.ipynb",
)
KERNEL_NAME = "nbutils-venv"
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
    interpreter, in a fresh ``.venv`` or in CI, with no separately registered kernel.
    """
    root = Path(tempfile.mkdtemp(prefix="nbutils-kernel-"))
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    kernel = {
        "argv": [
            python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.log_level=CRITICAL",  # no TCP or shutdown noise in the output
        ],
        "display_name": "nbutils (project venv)",
        "language": "python",
        "env": {"PYTHONWARNINGS": "ignore::DeprecationWarning"},
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
    log=print,
) -> RunResult:
    """Execute the notebooks in order with papermill; return a :class:`RunResult`.

    Every notebook gets ``run_dir`` (absolute) and those of ``parameters`` it declares. A failing
    notebook stops the chain with a :class:`PipelineError` naming the notebook and the cell; the
    partly executed notebook is kept in ``run_dir``. Key strings from the environment or ``.env``
    are scrubbed from every executed notebook and HTML page.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = dict(parameters or {})
    check_parameters(params)
    run_path = Path(run_dir).expanduser().resolve()
    run_path.mkdir(parents=True, exist_ok=True)
    params["run_dir"] = str(run_path)
    # Relative data paths mean the clone's data/ directory, as they do in Jupyter; after a
    # wheel install (no clone) they mean the working directory.
    data_dir = Path(params.get("data_dir", "data")).expanduser()
    if not data_dir.is_absolute():
        data_dir = project_root(clone_root() or Path.cwd()) / data_dir
    params["data_dir"] = str(data_dir)
    source = params.get("data_source")
    if isinstance(source, str) and source not in ("synthetic", "numerai"):
        params["data_source"] = str(Path(source).expanduser().resolve())
    source_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    keys = load_keys()
    result = RunResult(run_dir=run_path)

    jupyter_path = kernel_spec_dir()
    old_path = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_path), old_path]))
    try:
        for i, name in enumerate(notebooks, start=1):
            source = source_dir / name
            if not source.is_file():
                raise PipelineError(f"notebook {source} not found (notebooks_dir={source_dir})")
            output = run_path / name
            nb_params = parameters_for(source, params)
            log(f"[{i}/{len(notebooks)}] {name} " + _format_params(nb_params))
            start = time.perf_counter()
            try:
                papermill.execute_notebook(
                    str(source),
                    str(output),
                    parameters=nb_params,
                    kernel_name=KERNEL_NAME,
                    language="python",
                    progress_bar=progress,
                    cwd=str(run_path),
                )
            except PapermillExecutionError as err:
                _scrub(output, keys)
                first_line = (err.source or "").strip().splitlines()[:1] or [""]
                raise PipelineError(
                    f"{name} failed at cell {err.cell_index + 1} of the executed notebook "
                    f"(In [{err.exec_count}]: {first_line[0][:80]!r}): "
                    f"{err.ename}: {redact(str(err.evalue), keys)}\n"
                    f"The partly executed notebook is kept at {output}"
                ) from None
            finally:
                if output.exists():
                    _scrub(output, keys)
            result.seconds[name] = time.perf_counter() - start
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
def render_html(
    run_dir: Path, executed: Sequence[Path], summary: Mapping[str, Any], keys=None
) -> Path:
    """Render each executed notebook to ``html/<name>.html`` and write ``index.html``."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    html_dir = run_dir / "html"
    html_dir.mkdir(exist_ok=True)
    items = []
    for nb_path in executed:
        body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
        out = html_dir / (nb_path.stem + ".html")
        atomic_write_text(out, redact(body, keys))
        items.append((nb_path.stem, f"html/{out.name}", nb_path.name))
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{v['before']:.4f}</td><td>{v['after']:.4f}</td></tr>"
        for k, v in summary.items()
        if isinstance(v, dict) and "before" in v
    )
    links = "".join(
        f'<li><a href="{escape(href)}">{escape(stem)}</a> (<a href="{escape(nb)}">ipynb</a>)</li>'
        for stem, href, nb in items
    )
    figs = "".join(f'<figure><img src="{escape(p)}" width="480"><figcaption>{escape(p)}'
                   "</figcaption></figure>" for p in pngs)
    files = "".join(
        f'<li><a href="{escape(n)}">{escape(n)}</a></li>'
        for n in ("submission.csv", "neutralized_submission.csv", "metrics.json",
                  "per_era.csv", "diagnostics.csv", "model.txt", "summary.json")
        if (run_dir / n).is_file()
    )
    page = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>nbutils run: {escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:right}}
figure{{display:inline-block;margin:.5em}}</style></head><body>
<h1>nbutils run: {escape(str(run_dir))}</h1>
<h2>Notebooks / ノートブック</h2><ol>{links}</ol>
<h2>Summary / 結果 (validation, numerai corr)</h2>
<table><tr><th></th><th>before neutralization</th><th>after</th></tr>{rows}</table>
<h2>Files / ファイル</h2><ul>{files}</ul>
<h2>Figures / 図</h2>{figs}
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nbutils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the six notebooks with papermill")
    run.add_argument("--run-dir", default="runs/latest", help="where artifacts and executed notebooks go")
    run.add_argument(
        "--data-source",
        default=None,
        help='"synthetic" (default), "numerai" (download with numerapi) or a local data directory',
    )
    run.add_argument("--data-dir", default=None, help="where datasets are built or downloaded (default data/)")
    run.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="a notebook parameter (VALUE parsed as JSON when it can be), repeatable",
    )
    run.add_argument("--notebooks-dir", default=None, help="where the .ipynb files are")
    run.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    copy = sub.add_parser("notebooks", help="copy the six notebooks into DIR for editing")
    copy.add_argument("dir", metavar="DIR", help="where to copy them (created if missing)")
    copy.add_argument("--overwrite", action="store_true", help="replace notebooks already in DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "notebooks":
        try:
            copied = copy_notebooks(args.dir, overwrite=args.overwrite)
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"copied {len(copied)} notebooks to {Path(args.dir).expanduser().resolve()}")
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
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = dict(result.summary)
    if result.index_html:
        summary["index_html"] = str(result.index_html)
    print(format_summary(summary))
    total = sum(result.seconds.values())
    print(f"  total time:             {total:.1f} s")
    return 0
