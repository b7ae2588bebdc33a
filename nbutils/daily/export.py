"""``python -m nbutils export-model``: the run's model as a pickled ``predict`` for Numerai.

Numerai's model upload runs ``predict(live_features, live_benchmark_models)`` from a cloudpickle
in a container (1 CPU, 4 GB of memory, 10 minutes) where nbutils is not installed. The pickle
written here is the function of :func:`nbutils.daily.standalone.make_predict`, pickled by value,
with the LightGBM model as text, the feature lists, the feature-engineering spec and the
neutralization settings inside it. It needs numpy, pandas and lightgbm only.

:func:`check_pickle` loads it in a fresh Python whose path has no nbutils, calls it as Numerai's
runner does (with ``live_benchmark_models``; then with ``live_features`` alone, unless the model
is neutralized against example predictions and so needs them), checks the answer (a DataFrame with a ``prediction``
column, indexed like the live rows, no NaN, values in [0, 1]) and reports time and peak memory
against Numerai's limits, and version differences against the chosen image.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from nbutils.daily.errors import DailyError
from nbutils.daily.run import RunModel, load_run
from nbutils.util import atomic_path

#: Numerai's limits for an uploaded model.
LIMIT_SECONDS = 600.0
LIMIT_MEMORY_MIB = 4096.0
LIMIT_CPUS = 1
LIBRARIES = ("numpy", "pandas", "lightgbm", "cloudpickle", "pyarrow")


def local_versions() -> dict[str, str]:
    """Python's and the libraries' versions here (what the pickle is made with)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def bundle_of(run: RunModel) -> dict[str, Any]:
    """Everything ``predict`` needs, as plain data (no nbutils object)."""
    s = run.settings
    return {
        "model_texts": [b.model_to_string() for b in run.model.boosters],
        "features": list(run.model.features),
        "raw_features": run.raw_features,
        "spec": {
            "groups": run.spec.selected_groups(run.groups),
            "stats": list(run.spec.stats),
            "interactions": list(run.spec.interactions),
        },
        "settings": {
            "neutralize": s.neutralize,
            "proportion": s.proportion,
            "neutralize_against": s.neutralize_against,
            "per_era": s.per_era,
            "rank_per_era": s.rank_per_era,
            "benchmark_column": "prediction",
        },
    }


def _standalone_module() -> types.ModuleType:
    """A private copy of :mod:`nbutils.daily.standalone`, compiled under a neutral file name so
    that the pickle names neither nbutils nor a local path."""
    source = (Path(__file__).with_name("standalone.py")).read_text(encoding="utf-8")
    module = types.ModuleType("numerai_model")
    exec(compile(source, "numerai_model.py", "exec"), module.__dict__)  # noqa: S102 (our own file)
    return module


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the cloudpickle of the run's ``predict`` to ``out`` (a ``.pkl`` file), atomically."""
    import cloudpickle

    target = Path(out).expanduser()
    if target.suffix != ".pkl":
        raise DailyError(f"--out {target}: Numerai's model upload needs a file ending in .pkl.")
    run = load_run(run_dir)
    standalone = _standalone_module()
    predict = standalone.make_predict(bundle_of(run))
    predict.nbutils_export = {
        "versions": local_versions(),
        "needs_benchmark": run.settings.neutralize
        and run.settings.neutralize_against == "example_predictions",
    }
    sys.modules[standalone.__name__] = standalone
    cloudpickle.register_pickle_by_value(standalone)
    try:
        payload = cloudpickle.dumps(predict)
    finally:
        cloudpickle.unregister_pickle_by_value(standalone)
        del sys.modules[standalone.__name__]
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)
    return target


# -- the check ---------------------------------------------------------------------------------
_CHILD = r"""
import importlib.abc, importlib.util, json, os, resource, sys, time

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

args = json.loads(sys.argv[1])
report = {"errors": [], "nbutils_importable": False}
try:
    import nbutils  # noqa: F401
    report["nbutils_importable"] = True
except ImportError:
    pass
start = time.perf_counter()
with open(args["pickle"], "rb") as handle:
    predict = cloudpickle.load(handle)
report["exported_with"] = getattr(predict, "nbutils_export", {}).get("versions", {})
live = pd.read_parquet(args["live"])
if "id" in live.columns:
    live = live.set_index("id")
features = live[[c for c in live.columns if c.startswith("feature_")]]
bench = pd.read_parquet(args["benchmark"]) if args.get("benchmark") else None
if bench is not None and "id" in bench.columns:
    bench = bench.set_index("id")
export = getattr(predict, "nbutils_export", {})
calls = [("two arguments", lambda: predict(features, bench))]
if not export.get("needs_benchmark"):  # else it cannot work without live_benchmark_models
    calls.append(("one argument", lambda: predict(features)))
for label, call in calls:
    try:
        out = call()
    except Exception as err:
        report["errors"].append(f"{label}: {type(err).__name__}: {err}")
        continue
    if not isinstance(out, pd.DataFrame) or "prediction" not in out.columns:
        report["errors"].append(f"{label}: did not return a DataFrame with a 'prediction' column")
        continue
    if not out.index.equals(features.index):
        report["errors"].append(f"{label}: the index differs from live_features' index")
    values = out["prediction"].to_numpy(dtype=float)
    if np.isnan(values).any():
        report["errors"].append(f"{label}: {int(np.isnan(values).sum())} NaN prediction(s)")
    elif values.min() < 0 or values.max() > 1:
        report["errors"].append(f"{label}: values outside [0, 1] ({values.min():.4g}..{values.max():.4g})")
    if args.get("save") and label == "two arguments":
        out.to_parquet(args["save"])
report["seconds"] = time.perf_counter() - start
report["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
report["rows"] = len(features)
print("NBUTILS_REPORT " + json.dumps(report))
"""


@dataclass
class CheckReport:
    """What :func:`check_pickle` found."""

    seconds: float
    peak_mib: float
    rows: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nbutils_importable: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def describe(self) -> str:
        lines = [
            f"check: {self.rows:,} live rows in {self.seconds:.1f} s (limit {LIMIT_SECONDS:.0f} s), "
            f"peak memory {self.peak_mib:.0f} MiB (limit {LIMIT_MEMORY_MIB:.0f} MiB), 1 CPU",
            *(f"warning: {w}" for w in self.warnings),
            *(f"error: {e}" for e in self.errors),
            "check passed" if self.ok else "check FAILED",
        ]
        return "\n".join(lines)


def image_python(docker_image: str | None) -> str | None:
    """``"3.11"`` from an image name such as ``"Python 3.11"``; None when it names none."""
    import re

    match = re.search(r"(\d+\.\d+)", docker_image or "")
    return match.group(1) if match else None


def version_warnings(exported: dict[str, str], docker_image: str | None) -> list[str]:
    """Differences that break unpickling on Numerai's side (numerapi #117, example-scripts #141)."""
    out = []
    here = local_versions()
    wanted = image_python(docker_image)
    made = ".".join((exported.get("python") or here["python"]).split(".")[:2])
    if wanted and wanted != made:
        out.append(
            f"the pickle was made with Python {made} but the image {docker_image!r} runs Python "
            f"{wanted}: cloudpickle's functions do not load across Python versions. Export with "
            f"Python {wanted}, or choose the image for Python {made}."
        )
    for name in LIBRARIES:
        if exported.get(name) and exported[name] != here.get(name):
            out.append(f"{name} {exported[name]} made the pickle, {here.get(name)} loads it here.")
    if docker_image and not wanted:
        out.append(f"cannot tell the Python version of image {docker_image!r}.")
    if exported:
        made_with = ", ".join(f"{k} {v}" for k, v in exported.items())
        out.append(
            f"made with {made_with}: the image must have the same numpy/pandas/lightgbm majors."
        )
    return out


def check_pickle(
    pickle_path: str | os.PathLike,
    live: str | os.PathLike | None = None,
    benchmark: str | os.PathLike | None = None,
    docker_image: str | None = None,
    save_predictions: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    timeout: float = LIMIT_SECONDS * 2,
) -> CheckReport:
    """Run the pickle in a fresh Python without nbutils, as Numerai's runner would.

    ``live``: a live parquet file (default: ``live.parquet`` of ``run_dir``'s dataset; the pickle
    holds no local path); ``benchmark``: the live benchmark models
    (default: ``live_example_preds.parquet`` beside it, when present).
    """
    path = Path(pickle_path).resolve()
    if not path.is_file():
        raise DailyError(f"no pickle at {path}; write one with export-model.")
    if live is None:
        if run_dir is None:
            raise DailyError("say which live data to check the pickle with (live= or run_dir=).")
        info = json.loads((Path(run_dir) / "data.json").read_text(encoding="utf-8"))
        live = Path(info["dataset_dir"]) / "live.parquet"
    live = Path(live).resolve()
    if benchmark is None and (live.parent / "live_example_preds.parquet").is_file():
        benchmark = live.parent / "live_example_preds.parquet"
    scratch = Path(tempfile.mkdtemp(prefix="nbutils-check-"))
    if save_predictions is None and run_dir is not None:
        save_predictions = scratch / "predictions.parquet"
    args = {
        "pickle": str(path),
        "live": str(live),
        "benchmark": str(benchmark) if benchmark else None,
        "save": str(Path(save_predictions).resolve()) if save_predictions else None,
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH",) and not k.startswith("NUMERAI_")
    }
    env.update({"OMP_NUM_THREADS": str(LIMIT_CPUS), "PYTHONNOUSERSITE": "1"})
    try:
        report = _run_child(args, env, timeout, docker_image)
        if run_dir is not None and report.ok:
            _compare_with_run(report, run_dir, live, benchmark, Path(args["save"]))
    finally:
        for leftover in sorted(scratch.rglob("*"), reverse=True):
            leftover.unlink()
        scratch.rmdir()
    return report


def _compare_with_run(
    report: CheckReport, run_dir: str | os.PathLike, live: Path, benchmark: Path | None, saved: Path
) -> None:
    """Guard against pickling the wrong model (example-scripts #150): the pickle's predictions
    must equal what ``submit`` computes from the run for the same live rows."""
    import numpy as np
    import pandas as pd

    from nbutils.daily.submit import read_example_predictions, read_live, round_submission

    run = load_run(run_dir)
    example = read_example_predictions(Path(benchmark)) if benchmark else None
    expected = round_submission(run, read_live(live, run), example)["prediction"]
    got = pd.read_parquet(saved)["prediction"]
    gap = float(np.max(np.abs(got.to_numpy() - expected.reindex(got.index).to_numpy())))
    if not gap <= 1e-9:
        report.errors.append(
            f"the pickle's predictions differ from the run's own (max difference {gap:.3g}): "
            f"it does not hold the model of {run.run_dir}."
        )


def _run_child(
    args: dict[str, Any], env: dict[str, str], timeout: float, docker_image: str | None
) -> CheckReport:
    with tempfile.TemporaryDirectory(prefix="nbutils-check-") as tmp:
        script = Path(tmp) / "numerai_runner.py"
        script.write_text(_CHILD, encoding="utf-8")
        try:
            proc = subprocess.run(
                [sys.executable, str(script), json.dumps(args)],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise DailyError(
                f"the pickle ran more than {timeout:.0f} s; Numerai stops a model after "
                f"{LIMIT_SECONDS:.0f} s."
            ) from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NBUTILS_REPORT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DailyError(f"the pickle failed in a fresh Python without nbutils: {' | '.join(tail)}")
    raw = json.loads(lines[-1][len("NBUTILS_REPORT ") :])
    report = CheckReport(
        seconds=raw["seconds"],
        peak_mib=raw["peak_mib"],
        rows=raw["rows"],
        errors=raw["errors"],
        nbutils_importable=raw["nbutils_importable"],
        warnings=version_warnings(raw.get("exported_with", {}), docker_image),
    )
    if report.nbutils_importable:
        report.errors.append("nbutils was importable in the check; the check is not meaningful.")
    if report.seconds > LIMIT_SECONDS:
        report.errors.append(f"took {report.seconds:.0f} s, over Numerai's {LIMIT_SECONDS:.0f} s.")
    if report.peak_mib > LIMIT_MEMORY_MIB:
        report.errors.append(f"peak memory {report.peak_mib:.0f} MiB, over Numerai's 4 GB.")
    return report
