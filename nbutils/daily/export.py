"""``python -m nbutils export-model``: the run's model as a pickled ``predict`` for Numerai.

Numerai's model upload runs ``predict(live_features, live_benchmark_models)`` from a cloudpickle
in a container (1 CPU, 4 GB of memory, 10 minutes) where nbutils is not installed (what the
runner does: :mod:`nbutils.daily.runner`). The pickle written here is the function of
:func:`nbutils.daily.standalone.make_predict`, pickled by value, with the LightGBM model as text,
the feature lists, the feature-engineering spec and the neutralization settings inside it. It
needs numpy, pandas and lightgbm only.

The runner passes no example predictions, only ``live_benchmark_models``: one column per
benchmark model (``v52_lgbm_ender20``...). So a run neutralized against the example predictions
(the guide's recipe) reads the benchmark model they come from: :func:`benchmark_column` finds it
as the column whose Pearson correlation with ``live_example_preds.parquet`` on the live ids is
at least :data:`MATCH` (``--benchmark-column`` names it instead), and refuses, naming the
columns, when none is. Neutralizing on ``[x, 1]`` is unchanged by ``x -> a x + b``, so a column
that is an affine copy of the example predictions gives exactly ``submit``'s values.

``predict.nbutils_export`` (inside the pickle) records: the run's fingerprint
(:func:`run_fingerprint`), the Python (major.minor) and library versions, the benchmark column,
and when the whole-frame call and per-era calls differ (:func:`calls_differ`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import types
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nbutils.daily.errors import DailyError
from nbutils.daily.run import RunModel, ensemble_files, load_run
from nbutils.daily.runner import (
    BENCHMARK_FILE,
    LIMIT_SECONDS,
    CheckReport,
    check_pickle,
    local_versions,
    minor,
    version_warnings,
)
from nbutils.util import atomic_path

__all__ = [
    "LIMIT_SECONDS",
    "CheckReport",
    "benchmark_column",
    "check_pickle",
    "export_model",
    "local_versions",
    "run_fingerprint",
    "version_warnings",
]

#: The smallest Pearson correlation with the example predictions that names their benchmark model.
MATCH = 0.999


def run_fingerprint(run_dir: str | os.PathLike, ensemble: bool = False) -> str:
    """SHA-256 of what makes the run's predictions: ``model.txt``, ``feature_spec.json`` and the
    neutralization settings (without their ``source``). Copies of a run share it.

    With ``ensemble``, of what makes notebook 08's ensemble instead: ``ensemble.json``, each
    model it names under ``ensemble_models/`` (in its order), ``feature_spec.json`` and the
    settings (ranked per era, never neutralized); each file is checked against its fingerprint
    first (:func:`nbutils.daily.run.ensemble_files`)."""
    run = load_run(run_dir, ensemble=ensemble)
    names = ["model.txt", "feature_spec.json"]
    if ensemble:
        names = [*ensemble_files(run.run_dir).artifacts, "feature_spec.json"]
    digest = hashlib.sha256()
    for name in names:
        digest.update(hashlib.sha256((run.run_dir / name).read_bytes()).digest())
    settings = {k: v for k, v in asdict(run.settings).items() if k != "source"}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def needs_benchmark(run: RunModel) -> bool:
    """Whether the run neutralizes against the example predictions."""
    return run.settings.neutralize and run.settings.neutralize_against == "example_predictions"


def _read_indexed(path: Path) -> Any:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:
        raise DailyError(f"cannot read {path}: {err}; download it again.") from None
    if "id" in frame.columns:
        frame = frame.set_index("id")
    frame.index = frame.index.astype(str)
    return frame


def benchmark_column(
    run: RunModel,
    benchmark_models: str | os.PathLike | None = None,
    column: str | None = None,
) -> str | None:
    """The ``live_benchmark_models`` column the pickle neutralizes against (None when it reads
    none): ``column`` when given and present, else the one matching the example predictions."""
    if not needs_benchmark(run):
        return None
    dataset = Path(run.info["dataset_dir"])
    path = Path(benchmark_models) if benchmark_models else dataset / BENCHMARK_FILE
    if not path.is_file():
        raise DailyError(
            f"the run neutralizes against the example predictions, and Numerai's runner passes "
            f"them only as a column of {BENCHMARK_FILE}: there is none at {path}. Download it "
            f"(numerapi: download_dataset('{run.info.get('version') or 'v5.2'}/{BENCHMARK_FILE}')) "
            "or give it with --benchmark-models FILE."
        )
    bench = _read_indexed(path)
    columns = [str(c) for c in bench.columns]
    if column is not None:
        if column not in columns:
            raise DailyError(
                f"--benchmark-column {column!r} is not a column of {path}; its columns: {columns}."
            )
        return column
    example_path = dataset / "live_example_preds.parquet"
    if not example_path.is_file():
        raise DailyError(
            f"no {example_path} to find the benchmark model behind the example predictions; "
            f"name it with --benchmark-column (one of {columns})."
        )
    example = _read_indexed(example_path)
    example = example["prediction"] if "prediction" in example.columns else example.iloc[:, 0]
    common = example.index.intersection(bench.index)
    found = {}
    for name in columns:
        values = bench.loc[common, name]
        if len(common) > 2 and values.dtype.kind == "f":
            r = float(values.corr(example.loc[common]))
            found[name] = r if math.isfinite(r) else -1.0  # a constant column correlates with none
    best = max(found, key=found.__getitem__, default=None)
    if best is None or not found[best] >= MATCH:
        shown = {n: round(r, 4) for n, r in found.items()}
        raise DailyError(
            f"the run neutralizes against the example predictions, but no column of {path} "
            f"matches them (Pearson correlation on {len(common)} live ids: {shown}; "
            f"{MATCH} needed). Numerai's runner passes only these columns: {columns}. Name one "
            "with --benchmark-column, or neutralize against features "
            "(python -m nbutils run -p neutralize_against features)."
        )
    return best


def calls_differ(run: RunModel) -> str | None:
    """Why the whole-frame call and per-era calls can give different predictions, or None."""
    s = run.settings
    if s.per_era or not s.neutralize:
        return None
    return (
        "this run neutralizes all the live rows as one block (per_era=False): Numerai's runner "
        "calls "
        "predict once on the whole live frame, which gives submit's values; a runner calling it "
        "once per era would treat each era alone, so on live data of several eras the two give "
        "different predictions (export-model --check measures the difference)."
    )


def _live_eras(run: RunModel) -> str:
    """How many eras the run's live data holds ("?" when it cannot be read)."""
    import pandas as pd

    try:
        live = pd.read_parquet(Path(run.info["dataset_dir"]) / "live.parquet", columns=["era"])
    except Exception:  # a missing or unreadable file: the note stands without the count
        return "?"
    return str(live["era"].nunique())


def bundle_of(run: RunModel) -> dict[str, Any]:
    """Everything ``predict`` needs, as plain data (no nbutils object)."""
    s = run.settings
    members = None
    if run.members:
        members = [
            {
                "model_texts": [b.model_to_string() for b in model.boosters],
                "features": list(model.features),
                "weight": float(weight),
            }
            for model, weight in run.members
        ]
    bundle = {
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
            "benchmark_column": None,
        },
    }
    if members:
        bundle["members"] = members
    return bundle


def _standalone_module() -> types.ModuleType:
    """A private copy of :mod:`nbutils.daily.standalone`, compiled under a neutral file name so
    that the pickle names neither nbutils nor a local path."""
    source = (Path(__file__).with_name("standalone.py")).read_text(encoding="utf-8")
    module = types.ModuleType("numerai_model")
    exec(compile(source, "numerai_model.py", "exec"), module.__dict__)  # noqa: S102 (our own file)
    return module


def export_model(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    benchmark_models: str | os.PathLike | None = None,
    column: str | None = None,
    say: Callable[[str], None] = print,
    ensemble: bool = False,
) -> Path:
    """Write the cloudpickle of the run's ``predict`` to ``out`` (a ``.pkl`` file), atomically.

    ``benchmark_models``/``column``: see :func:`benchmark_column`. ``ensemble``: notebook 08's
    target ensemble instead of ``model.txt`` (:func:`nbutils.daily.run.load_run`)."""
    import cloudpickle

    target = Path(out).expanduser()
    if target.suffix != ".pkl":
        raise DailyError(f"--out {target}: Numerai's model upload needs a file ending in .pkl.")
    run = load_run(run_dir, ensemble=ensemble)
    bundle = bundle_of(run)
    bundle["settings"]["benchmark_column"] = benchmark_column(run, benchmark_models, column)
    standalone = _standalone_module()
    predict = standalone.make_predict(bundle)
    versions = local_versions()
    predict.nbutils_export = {
        "run_fingerprint": run_fingerprint(run.run_dir, ensemble=bool(run.members)),
        "python": minor(versions["python"]),
        "versions": versions,
        "needs_benchmark": needs_benchmark(run),
        "benchmark_column": bundle["settings"]["benchmark_column"],
        "calls_differ": calls_differ(run),
        "ensemble": bool(run.members),
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
    export = predict.nbutils_export
    if export["benchmark_column"]:
        say(
            f"neutralizes against live_benchmark_models[{export['benchmark_column']!r}] "
            "(the benchmark model behind the example predictions)"
        )
    if export["calls_differ"]:
        say(f"note: {export['calls_differ']} The run's live data has {_live_eras(run)} era(s).")
    say(f"made with Python {export['python']}: upload it for the image 'Python {export['python']}'")
    return target
