"""Numerai's model-upload runner, played here: the harness of ``export-model --check`` and
``upload-model``.

What Numerai's runner does (numerai/numerai-predict, ``predict.py`` and ``py3.1x/`` at commit
19d1769; the facts and their sources are listed in docs/daily.md):

- it loads the uploaded file with ``pandas.read_pickle`` (``pickle.load``; cloudpickle is
  installed in the image) and counts the loaded function's parameters with
  ``inspect.signature``: one -> ``predict(live_features)``, two ->
  ``predict(live_features, live_benchmark_models)``, any other number fails;
- ``live_features`` is the whole ``live.parquet`` as ``pd.read_parquet`` reads it (index ``id``;
  ``era``, ``data_type``, every feature and the empty targets); ``live_benchmark_models`` is the
  whole ``live_benchmark_models.parquet`` (index ``id``, one column per benchmark model, named
  like ``v52_lgbm_ender20``; no ``prediction`` column);
- it refuses an answer that is None, not of type ``pd.DataFrame``, empty, has any NaN, or whose
  first column leaves [0, 1];
- each Python minor version has its own image (``python:3.X-slim`` with pinned numpy, pandas,
  lightgbm, cloudpickle): a pickle loads only under the Python that made it;
- Numerai gives it 1 CPU, 4 GB of memory and 10 minutes (docs.numer.ai, Model Uploads).

A variant that calls ``predict`` once per era, with the benchmark rows of that era
(``live_benchmark_models.loc[era_ids]``), has also been written (issue 16); a model must
survive both.

:func:`check_pickle` runs the pickle that way in a fresh Python where nbutils cannot be
imported: once on the whole live frame and once per era, with the runner's checks and two of
ours (one row per live id, no id twice); it reports the time and peak memory against Numerai's
limits, the largest difference between the whole-frame and the per-era predictions, and
refuses a pickle made with another Python than the chosen image's (unless ``force``).
:func:`inspect_pickle` only loads the file (in a subprocess) and reports what it holds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from nbutils.daily.errors import DailyError

#: Numerai's limits for an uploaded model.
LIMIT_SECONDS = 600.0
LIMIT_MEMORY_MIB = 4096.0
LIMIT_CPUS = 1
LIBRARIES = ("numpy", "pandas", "lightgbm", "cloudpickle", "pyarrow")
BENCHMARK_FILE = "live_benchmark_models.parquet"
#: Largest difference between the whole-frame and the per-era predictions counted as equal.
SAME = 1e-9


def local_versions() -> dict[str, str]:
    """Python's and the libraries' versions here (what a pickle is made with)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def minor(version: str) -> str:
    """``"3.11"`` from ``"3.11.7"``."""
    return ".".join(str(version).split(".")[:2])


def image_python(docker_image: str | None) -> str | None:
    """``"3.11"`` from an image name such as ``"Python 3.11"``; None when it names none."""
    match = re.search(r"(\d+\.\d+)", docker_image or "")
    return match.group(1) if match else None


def python_mismatch(exported: dict[str, Any], docker_image: str | None) -> str | None:
    """The message when the pickle's Python (recorded at export) is not the image's."""
    wanted = image_python(docker_image)
    made = exported.get("python") or minor(exported.get("versions", {}).get("python", ""))
    if not wanted or not made or minor(made) == wanted:
        return None
    return (
        f"the pickle was made with Python {minor(made)} but the image {docker_image!r} runs "
        f"Python {wanted}: a cloudpickled function loads only under the Python that made it "
        f"(Numerai's runner fails or crashes). Export with Python {wanted}, or choose the image "
        f"'Python {minor(made)}'; --force goes ahead anyway."
    )


def version_warnings(
    exported: dict[str, Any], docker_image: str | None, loaded_with: dict[str, str] | None = None
) -> list[str]:
    """Library differences between the pickle's making and the Python that ran it
    (``loaded_with``, default: this one); the Python version is :func:`python_mismatch`'s.
    The pickle holds LightGBM text and plain Python data, and imports numpy, pandas and
    lightgbm by name, so other versions matter only through their behaviour: the check runs it."""
    out = []
    here = loaded_with or local_versions()
    made_with = exported.get("versions", {})
    for name in LIBRARIES:
        if made_with.get(name) and here.get(name) and made_with[name] != here[name]:
            out.append(f"{name} {made_with[name]} made the pickle, {here[name]} ran it here.")
    if docker_image and not image_python(docker_image):
        out.append(f"cannot tell the Python version of image {docker_image!r}.")
    return out


# -- the child process ---------------------------------------------------------------------------
_CHILD = r"""
import importlib.abc, inspect, json, os, resource, sys, time

# No nbutils on the path: drop the project's entries and the editable-install finders, and
# refuse the import outright, so the pickle must stand on its own.
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "nbutils"))]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
class _NoNbutils(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "nbutils" or name.startswith("nbutils."):
            raise ImportError("nbutils is not installed where Numerai runs the model")
        return None
sys.meta_path.insert(0, _NoNbutils())

import cloudpickle, numpy as np, pandas as pd
from importlib import metadata

args = json.loads(sys.argv[1])
report = {"errors": [], "warnings": [], "nbutils_importable": False}
report["versions"] = {"python": sys.version.split()[0]}
for name in args.get("libraries", []):
    try:
        report["versions"][name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
def done():
    print("NBUTILS_REPORT " + json.dumps(report, default=str))
    sys.exit(0)
try:
    import nbutils  # noqa: F401
    report["nbutils_importable"] = True
except ImportError:
    pass

start = time.perf_counter()
try:
    with open(args["pickle"], "rb") as handle:
        predict = cloudpickle.load(handle)
except Exception as err:
    report["load_error"] = f"{type(err).__name__}: {err}"
    done()
report["type"] = type(predict).__name__
report["callable"] = callable(predict)
try:
    report["parameters"] = len(inspect.signature(predict).parameters)
except (TypeError, ValueError):
    report["parameters"] = None
export = getattr(predict, "nbutils_export", None)
report["export"] = export if isinstance(export, dict) else {}
if args["mode"] == "inspect":
    done()

def runner_checks(label, out, ids):
    # numerai-predict's checks, in its order, then ours (one row per live id)
    if out is None:
        return [f"{label}: returned None"]
    if type(out) is not pd.DataFrame:
        return [f"{label}: returned {type(out).__name__} instead of a pandas DataFrame"]
    if len(out) == 0:
        return [f"{label}: returned 0 predictions"]
    errors = []
    if out.isna().any().any():
        errors.append(f"{label}: {int(out.isna().sum().sum())} NaN prediction(s)")
    elif not out.iloc[:, 0].between(0, 1).all():
        first = out.iloc[:, 0]
        errors.append(f"{label}: values outside [0, 1] ({first.min():.4g}..{first.max():.4g})")
    if out.index.has_duplicates:
        errors.append(f"{label}: {int(out.index.duplicated().sum())} id(s) twice")
    missing, extra = ids.difference(out.index), out.index.difference(ids)
    if len(missing) or len(extra):
        errors.append(f"{label}: {len(missing)} live id(s) without a prediction, {len(extra)} unknown id(s)")
    return errors

live = pd.read_parquet(args["live"])
report["rows"] = len(live)
n = report["parameters"]
bench = pd.read_parquet(args["benchmark"]) if n == 2 else None
if n not in (1, 2):
    report["errors"].append(f"Numerai's runner calls a function of 1 or 2 parameters; this has {n}")
    done()
call = (lambda rows, b: predict(rows)) if n == 1 else (lambda rows, b: predict(rows, b))
try:
    whole = call(live, bench)
    report["errors"] += runner_checks("whole live frame", whole, live.index)
except Exception as err:
    whole = None
    report["errors"].append(f"whole live frame: {type(err).__name__}: {err}")
report["seconds"] = time.perf_counter() - start

if "era" not in live.columns:
    report["warnings"].append("live has no 'era' column: no per-era calls")
else:
    eras = pd.unique(live["era"])
    report["eras"] = len(eras)
    parts, era_start = [], time.perf_counter()
    for era in eras:
        rows = live[live["era"] == era]
        label = f"era {era}"
        try:
            part_bench = bench.loc[rows.index] if bench is not None else None
        except KeyError:
            report["errors"].append(f"{label}: the benchmark file lacks ids of this era")
            continue
        try:
            out = call(rows, part_bench)
        except Exception as err:
            report["errors"].append(f"{label}: {type(err).__name__}: {err}")
            continue
        problems = runner_checks(label, out, rows.index)
        report["errors"] += problems
        if not problems:
            parts.append(out.iloc[:, 0])
    report["per_era_seconds"] = time.perf_counter() - era_start
    if whole is not None and type(whole) is pd.DataFrame and len(parts) == len(eras):
        joined = pd.concat(parts).reindex(whole.index).to_numpy(dtype=float)
        report["per_era_gap"] = float(np.nanmax(np.abs(joined - whole.iloc[:, 0].to_numpy(dtype=float))))
if args.get("save") and whole is not None and type(whole) is pd.DataFrame:
    whole.iloc[:, :1].set_axis(["prediction"], axis=1).to_parquet(args["save"])
report["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
done()
"""


def _child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH",) and not k.startswith("NUMERAI_")
    }
    env.update({"OMP_NUM_THREADS": str(LIMIT_CPUS), "PYTHONNOUSERSITE": "1"})
    return env


def _run_child(args: dict[str, Any], timeout: float, python: str | None = None) -> dict[str, Any]:
    """Run :data:`_CHILD` with ``args`` in ``python`` (default: this Python); its report, or
    :class:`DailyError` when it died."""
    executable = python or sys.executable
    if not Path(executable).is_file():
        raise DailyError(
            f"--runner-python {executable}: no such file; give a Python with numpy, pandas, "
            "lightgbm, pyarrow and cloudpickle (e.g. a venv with the image's pins)."
        )
    with tempfile.TemporaryDirectory(prefix="nbutils-runner-") as tmp:
        script = Path(tmp) / "numerai_runner.py"
        script.write_text(_CHILD, encoding="utf-8")
        try:
            proc = subprocess.run(
                [executable, str(script), json.dumps(args)],
                cwd=tmp,
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DailyError(
                f"{args['pickle']} ran more than {timeout:.0f} s; Numerai stops a model after "
                f"{LIMIT_SECONDS:.0f} s."
            ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NBUTILS_REPORT ")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise DailyError(
            f"{args['pickle']}: a fresh Python {minor(platform.python_version())} without nbutils "
            f"died running it (exit {proc.returncode}{': ' + tail if tail else ''}). A pickle "
            "made with another Python version can crash like this; export it again with "
            "`python -m nbutils export-model`."
        )
    return json.loads(lines[-1][len("NBUTILS_REPORT ") :])


# -- what the file holds -------------------------------------------------------------------------
@dataclass
class PickleInfo:
    """What :func:`inspect_pickle` found in a file."""

    path: Path
    parameters: int | None
    export: dict[str, Any]

    @property
    def made_by_export(self) -> bool:
        return bool(self.export.get("run_fingerprint"))


def _fix(path: Path) -> str:
    return f"write it again with `python -m nbutils export-model --run-dir RUN --out {path}`"


def inspect_pickle(pickle_path: str | os.PathLike, timeout: float = 120.0) -> PickleInfo:
    """Load the file with cloudpickle in a fresh Python and check it is what Numerai's runner
    calls: a function of one or two parameters. :class:`DailyError` naming the file otherwise."""
    path = Path(pickle_path).expanduser().resolve()
    if not path.is_file():
        raise DailyError(f"no pickle at {path}; {_fix(path)}.")
    if path.suffix != ".pkl":
        raise DailyError(f"{path}: Numerai's model upload takes .pkl files only; {_fix(path)}.")
    raw = _run_child({"pickle": str(path), "mode": "inspect"}, timeout)
    if raw.get("load_error"):
        raise DailyError(
            f"{path} does not unpickle ({raw['load_error'][:200]}): it is not a complete pickle "
            f"(a truncated copy, or another file renamed .pkl); {_fix(path)}."
        )
    if not raw.get("callable") or raw.get("parameters") not in (1, 2):
        held = raw.get("type") if not raw.get("callable") else f"{raw.get('parameters')} parameters"
        raise DailyError(
            f"{path} holds {held}; Numerai's runner calls a function of one or two parameters, "
            f"predict(live_features[, live_benchmark_models]); {_fix(path)}."
        )
    return PickleInfo(path, raw["parameters"], raw.get("export") or {})


# -- the check -----------------------------------------------------------------------------------
@dataclass
class CheckReport:
    """What :func:`check_pickle` found."""

    seconds: float
    peak_mib: float
    rows: int
    eras: int = 0
    per_era_gap: float | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nbutils_importable: bool = False
    export: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # of the Python that ran it

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe(self) -> str:
        calls = f"the whole live frame and each of its {self.eras} era(s)"
        if self.per_era_gap is not None:
            same = "the same" if self.per_era_gap <= SAME else "DIFFERENT"
            calls += f" ({same} predictions: max difference {self.per_era_gap:.3g})"
        ran = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        lines = [
            f"check: {self.rows:,} live rows in {self.seconds:.1f} s (limit {LIMIT_SECONDS:.0f} s), "
            f"peak memory {self.peak_mib:.0f} MiB (limit {LIMIT_MEMORY_MIB:.0f} MiB), 1 CPU",
            f"called as Numerai's runner does, on {calls}" + (f", with {ran}" if ran else ""),
            *(f"warning: {w}" for w in self.warnings),
            *(f"error: {e}" for e in self.errors),
            "check passed" if self.ok else "check FAILED",
        ]
        return "\n".join(lines)


def _live_of_run(run_dir: str | os.PathLike) -> Path:
    info = json.loads((Path(run_dir) / "data.json").read_text(encoding="utf-8"))
    return Path(info["dataset_dir"]) / "live.parquet"


def _empty_benchmark(live: Path, scratch: Path) -> Path:
    """A benchmark frame of Numerai's shape with no column, for runs that read none."""
    import pandas as pd

    ids = pd.read_parquet(live, columns=["era"]).index
    path = scratch / BENCHMARK_FILE
    pd.DataFrame(index=ids).to_parquet(path)
    return path


def check_pickle(
    pickle_path: str | os.PathLike,
    live: str | os.PathLike | None = None,
    benchmark: str | os.PathLike | None = None,
    docker_image: str | None = None,
    save_predictions: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    timeout: float = LIMIT_SECONDS * 2,
    *,
    force: bool = False,
    compare: bool = True,
    python: str | os.PathLike | None = None,
) -> CheckReport:
    """Run the pickle as Numerai's runner does (module docstring) and report.

    ``live``: a live parquet file (default: ``live.parquet`` of ``run_dir``'s dataset; the pickle
    holds no local path); ``benchmark``: the live benchmark models (default:
    ``live_benchmark_models.parquet`` beside ``live``; without one, a frame with no column).
    With ``run_dir`` and ``compare``, the pickle's predictions must equal what ``submit``
    computes from the run. A Python version other than ``docker_image``'s is an error, or a
    warning with ``force``. ``python``: the interpreter to run it with (default: this one; a
    venv with the pins of Numerai's image runs it with the image's libraries).
    """
    path = Path(pickle_path).resolve()
    if not path.is_file():
        raise DailyError(f"no pickle at {path}; write one with export-model.")
    if live is None:
        if run_dir is None:
            raise DailyError("say which live data to check the pickle with (live= or run_dir=).")
        live = _live_of_run(run_dir)
    live = Path(live).resolve()
    if not live.is_file():
        raise DailyError(f"no live data at {live} to check the pickle with; download it first.")
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nbutils-check-") as tmp:
        scratch = Path(tmp)
        if benchmark is None:
            beside = live.parent / BENCHMARK_FILE
            if beside.is_file():
                benchmark = beside
            else:
                benchmark = _empty_benchmark(live, scratch)
                warnings.append(
                    f"no {BENCHMARK_FILE} beside {live}: live_benchmark_models was a frame of the "
                    "live ids with no column."
                )
        saved = Path(save_predictions).resolve() if save_predictions else scratch / "p.parquet"
        args = {
            "pickle": str(path),
            "live": str(live),
            "benchmark": str(Path(benchmark).resolve()),
            "save": str(saved),
            "mode": "run",
            "libraries": list(LIBRARIES),
        }
        raw = _run_child(args, timeout, str(python) if python else None)
        if raw.get("load_error"):
            raise DailyError(f"{path} does not unpickle ({raw['load_error'][:200]}); {_fix(path)}.")
        export = raw.get("export") or {}
        report = CheckReport(
            seconds=raw.get("seconds", 0.0),
            peak_mib=raw.get("peak_mib", 0.0),
            rows=raw.get("rows", 0),
            eras=raw.get("eras", 0),
            per_era_gap=raw.get("per_era_gap"),
            errors=list(raw["errors"]),
            warnings=warnings + list(raw["warnings"]),
            nbutils_importable=raw["nbutils_importable"],
            export=export,
            versions=raw.get("versions", {}),
        )
        _judge(report, docker_image, force)
        if run_dir is not None and compare and report.ok and saved.is_file():
            _compare_with_run(report, run_dir, live, Path(benchmark), saved)
    return report


def _judge(report: CheckReport, docker_image: str | None, force: bool) -> None:
    """Limits, versions and the whole-frame/per-era agreement, into errors and warnings."""
    mismatch = python_mismatch(report.export, docker_image)
    if mismatch:
        (report.warnings if force else report.errors).append(mismatch)
    report.warnings.extend(version_warnings(report.export, docker_image, report.versions))
    if report.per_era_gap is not None and report.per_era_gap > SAME:
        why = report.export.get("calls_differ")
        report.warnings.append(
            "the whole-frame call and the per-era calls give different predictions (max "
            f"difference {report.per_era_gap:.3g})" + (f": {why}" if why else ".")
        )
    if report.nbutils_importable:
        report.errors.append("nbutils was importable in the check; the check is not meaningful.")
    if report.seconds > LIMIT_SECONDS:
        report.errors.append(f"took {report.seconds:.0f} s, over Numerai's {LIMIT_SECONDS:.0f} s.")
    if report.peak_mib > LIMIT_MEMORY_MIB:
        report.errors.append(f"peak memory {report.peak_mib:.0f} MiB, over Numerai's 4 GB.")


def _compare_with_run(
    report: CheckReport, run_dir: str | os.PathLike, live: Path, benchmark: Path, saved: Path
) -> None:
    """Guard against pickling the wrong model (example-scripts #150): the pickle's whole-frame
    predictions must equal what ``submit`` computes from the run for the same live rows (with
    the benchmark column the pickle reads as the example predictions)."""
    import numpy as np
    import pandas as pd

    from nbutils.daily.run import load_run
    from nbutils.daily.submit import read_live, round_submission

    run = load_run(run_dir, ensemble=bool(report.export.get("ensemble")))
    example = None
    column = report.export.get("benchmark_column")
    if column:
        bench = pd.read_parquet(benchmark)
        bench.index = bench.index.astype(str)
        example = bench[column]
    expected = round_submission(run, read_live(live, run), example)["prediction"]
    got = pd.read_parquet(saved)["prediction"]
    got.index = got.index.astype(str)
    gap = float(np.max(np.abs(got.to_numpy() - expected.reindex(got.index).to_numpy())))
    if not gap <= SAME:
        report.errors.append(
            f"the pickle's predictions differ from the run's own (max difference {gap:.3g}): "
            f"it does not hold the model of {run.run_dir}."
        )
