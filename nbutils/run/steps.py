"""Each notebook stands alone: the earlier steps, made with the library when their artifacts are
missing.

Notebook NN reads what notebooks 01..NN-1 wrote into ``run_dir`` (DESIGN.md, "Artifacts of one
run"). Opened alone (one Colab runtime or one Kaggle kernel per notebook) those files are missing;
:func:`ensure_upstream` then makes them here, with the library and the earlier notebooks' default
parameters (:data:`STEP_DEFAULTS`, checked against the notebooks' parameters cells by
tests/test_steps.py), and says so in one Japanese line per step::

    02 の成果物がないので既定の設定で作ります (feature_spec.json)

It never runs the other notebooks. Steps 04 and 05 write nothing that a later notebook reads, so
only 01 (``data.json``), 02 (``feature_spec.json``) and 03 (``model.txt``,
``predictions.parquet``) are ever made here. When a step is missing, it and every later needed step
are made anew, so that no artifact of an older run is mixed with new ones.

Every artifact made here is recorded in ``fingerprints.json`` (:mod:`nbutils.run.fingerprints`) as
the producing notebook would record it: that notebook's name, its parameters (the defaults,
checked by its schema, with this ``run_dir``) and the upstream artifacts it was made from. So a
later notebook accepts them, and a run directory that mixes them with artifacts of another run
(01 rerun on other data, say) is refused as after a chain.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbutils.errors import PipelineError
from nbutils.run.fingerprints import record_artifact
from nbutils.run.parameters import coerce, schema_for
from nbutils.util import make_dir

if TYPE_CHECKING:
    from nbutils.data import NumeraiData

NOTEBOOK_OF_STEP: dict[str, str] = {
    "01": "01_load_data.ipynb",
    "02": "02_feature_engineering.ipynb",
    "03": "03_training.ipynb",
}


def _schema_defaults(step: str, leave_out: tuple[str, ...]) -> dict[str, Any]:
    """The defaults of step ``step``'s notebook (its parameters cell, as nbutils.run.parameters
    declares them), without the parameters the step does not take."""
    schema = schema_for(NOTEBOOK_OF_STEP[step])
    return {name: copy.deepcopy(p.default) for name, p in schema.items() if name not in leave_out}


#: the default parameters of the steps this module can make: those of the notebooks' parameters
#: cells, from their one declaration in nbutils.run.parameters (run_dir is the caller's; step 01 only
#: builds the synthetic dataset, so no download ``version``; step 03 trains on this machine)
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "01": _schema_defaults("01", ("run_dir", "version")),
    "02": _schema_defaults("02", ("run_dir",)),
    "03": _schema_defaults("03", ("run_dir", "dask_scheduler")),
}

#: the artifacts each step writes that a later notebook reads
STEP_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "01": ("data.json",),
    "02": ("feature_spec.json",),
    "03": ("model.txt", "predictions.parquet"),
}

#: the steps whose artifacts notebook NN reads (directly or through an earlier step)
UPSTREAM: dict[str, tuple[str, ...]] = {
    "01": (),
    "02": ("01",),
    "03": ("01", "02"),
    "04": ("01", "02", "03"),
    "05": ("01", "02", "03"),
    "06": ("01", "02", "03"),
    "07": ("01", "02", "03"),
    "08": ("01", "02", "03"),
    "09": ("01", "02", "03"),
}


def step_number(notebook: str | int) -> str:
    """``"03"`` for 3, ``"3"``, ``"03"`` or ``"03_training.ipynb"``; refuses anything else."""
    text = str(notebook).strip()
    digits = text.split("_", 1)[0]
    if isinstance(notebook, bool) or not digits.isdigit() or f"{int(digits):02d}" not in UPSTREAM:
        known = sorted(UPSTREAM)
        raise PipelineError(
            f"notebook={notebook!r} is not one of the notebooks {known}: give a number such as 3 "
            "or '03', or a notebook file name such as '03_training.ipynb'"
        )
    return f"{int(digits):02d}"


def missing_steps(run_dir: str | os.PathLike, notebook: str | int) -> list[str]:
    """The earlier steps notebook ``notebook`` needs whose artifacts are not all in ``run_dir``."""
    run_path = Path(run_dir)
    return [
        step
        for step in UPSTREAM[step_number(notebook)]
        if not all((run_path / name).is_file() for name in STEP_ARTIFACTS[step])
    ]


# -- the steps -----------------------------------------------------------------------------------
def make_data_step(
    run_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, **overrides: Any
) -> NumeraiData:
    """Step 01 with its defaults: the built-in synthetic dataset, loaded as notebook 01 loads it;
    writes ``data.json``. Returns the loaded ``NumeraiData``.

    ``overrides`` replace entries of ``STEP_DEFAULTS["01"]`` (tests use tiny sizes).
    """
    from nbutils.data import load_data, make_synthetic_dataset
    from nbutils.run.artifacts import resolve_dir, save_data_info

    p = _params("01", overrides)
    if p["data_source"] != "synthetic":
        raise PipelineError(
            f"step 01 is made here only from synthetic data, not data_source={p['data_source']!r}: "
            "run 01_load_data.ipynb with that data_source and the same run_dir first"
        )
    data_path = resolve_dir(data_dir if data_dir is not None else p["data_dir"], create=True)
    layout = p["synthetic_layout"]
    dataset_dir = make_synthetic_dataset(
        data_path / "synthetic" / layout, layout=layout, seed=p["seed"], **p["synthetic_sizes"]
    )
    data = load_data(
        dataset_dir,
        feature_set=p["feature_set"],
        era_step=p["era_step"],
        targets=p["targets"] or None,
    )
    save_data_info(
        run_dir,
        data,
        dataset_dir,
        data_source="synthetic",
        feature_set=p["feature_set"],
        era_step=p["era_step"],
    )
    _record(run_dir, "01", {**p, "data_dir": str(data_path)})
    return data


def make_feature_step(
    run_dir: str | os.PathLike, data: NumeraiData | None = None, **overrides: Any
) -> Path:
    """Step 02 with its defaults: group statistics on, and interactions among the
    ``interaction_count`` features whose mean per-era correlation with the target is largest in
    absolute value (notebook 02's rule). Writes ``feature_spec.json`` and returns its path."""
    from nbutils.features import FeatureSpec
    from nbutils.metrics import per_era_corr
    from nbutils.run.artifacts import load_run_data

    p = _params("02", overrides)
    if data is None:
        data, _ = load_run_data(run_dir)
    if p["interaction_columns"]:
        chosen = list(p["interaction_columns"])
    elif p["interaction_count"] > 1:
        corr = per_era_corr(data.train, pred_col=data.features, target_col="target").mean()
        chosen = corr.abs().sort_values(ascending=False).index[: p["interaction_count"]].tolist()
    else:
        chosen = []
    spec = FeatureSpec(group_stats=bool(p["group_stats"]), interactions=chosen)
    path = spec.save(Path(run_dir) / "feature_spec.json")
    _record(run_dir, "02", p)
    return path


def make_training_step(
    run_dir: str | os.PathLike, data: NumeraiData | None = None, **overrides: Any
) -> list[Path]:
    """Step 03 with its defaults: the tutorial's ``SEED_PARAMS`` with notebook 03's tree count and
    learning rate, on this machine; writes ``model.txt`` and ``predictions.parquet`` (validation
    and live) and returns their paths."""
    import pandas as pd

    from nbutils.features import FeatureSpec
    from nbutils.run.artifacts import load_run_data, save_predictions
    from nbutils.train import EXAMPLE_MODEL_PARAMS, SEED_PARAMS, predict, save_model, train_lgbm

    p = _params("03", overrides)
    if p["engine"] != "local":
        raise PipelineError(f"step 03 is made here only with engine='local', not {p['engine']!r}")
    if data is None:
        data, _ = load_run_data(run_dir)
    spec = FeatureSpec.load(Path(run_dir) / "feature_spec.json")
    base = SEED_PARAMS if p["model_preset"] == "seed" else EXAMPLE_MODEL_PARAMS
    params = {
        **base,
        "n_estimators": int(p["n_estimators"]),
        "learning_rate": float(p["learning_rate"]),
    }
    train_df, features = spec.apply(data.train, data.feature_groups)
    model = train_lgbm(
        train_df,
        features,
        target=p["target"],
        params=params,
        seeds=tuple(p["seeds"]),
        progress=False,
    )
    del train_df
    frames = []
    for frame in (data.validation, data.live):
        out = frame[["era", "data_type"]].copy()
        out["prediction"] = predict(model, spec.apply(frame, data.feature_groups)[0])
        frames.append(out)
    paths = [
        save_model(model, Path(run_dir) / "model.txt"),
        save_predictions(pd.concat(frames), run_dir),
    ]
    _record(run_dir, "03", p)
    return paths


STEP_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "01": make_data_step,
    "02": make_feature_step,
    "03": make_training_step,
}


def ensure_upstream(
    run_dir: str | os.PathLike,
    notebook: str | int,
    *,
    data_dir: str | os.PathLike | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    log: Callable[[str], Any] = print,
) -> list[str]:
    """Make the earlier steps notebook ``notebook`` needs whose artifacts are missing in
    ``run_dir``; return the steps made (``[]`` when everything was there).

    From the first missing step on, every needed step is made anew with its defaults
    (:data:`STEP_DEFAULTS`, or ``overrides[step]``), and each says so in one line through ``log``.
    ``data_dir`` is where step 01 builds the synthetic dataset (default ``data``, relative to the
    project root or the working directory).
    """
    needed = UPSTREAM[step_number(notebook)]
    overrides = overrides or {}
    for step, extra in overrides.items():  # refuse typos before making anything
        if step not in STEP_DEFAULTS:
            raise PipelineError(f"overrides for unknown step {step!r}: use {sorted(STEP_DEFAULTS)}")
        _params(step, extra)
    missing = missing_steps(run_dir, notebook)
    if not missing:
        return []
    make_dir(run_dir, "run_dir")
    todo = needed[needed.index(missing[0]) :]
    data = None
    for step in todo:
        names = ", ".join(STEP_ARTIFACTS[step])
        log(f"{step} の成果物がないので既定の設定で作ります ({names})")
        extra = dict(overrides.get(step, {}))
        if step == "01":
            data = make_data_step(run_dir, data_dir=data_dir, **extra)
            continue
        if data is None:  # 01 was there: load its data once for the later steps
            from nbutils.run.artifacts import load_run_data

            data, _ = load_run_data(run_dir)
        STEP_FUNCTIONS[step](run_dir, data, **extra)
    return list(todo)


def _record(run_dir: str | os.PathLike, step: str, params: Mapping[str, Any]) -> None:
    """Record the step's artifacts as its notebook records them: its name, its parameters checked
    by its schema (the ones not given here take their defaults) and the upstream artifacts."""
    notebook = NOTEBOOK_OF_STEP[step]
    values = {**params, "run_dir": str(run_dir)}
    checked = {
        name: coerce(param, values.get(name, param.default), where=f"step {step} ({notebook})")
        for name, param in schema_for(notebook).items()
    }
    for name in STEP_ARTIFACTS[step]:
        record_artifact(run_dir, name, notebook, checked)


def _params(step: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(STEP_DEFAULTS[step]))
    if unknown:
        raise PipelineError(
            f"unknown parameter(s) {unknown} for step {step}: use {sorted(STEP_DEFAULTS[step])}"
        )
    schema = schema_for(NOTEBOOK_OF_STEP[step])
    where = f"step {step} ({NOTEBOOK_OF_STEP[step]})"
    checked = {name: coerce(schema[name], value, where=where) for name, value in overrides.items()}
    return {**STEP_DEFAULTS[step], **checked}
