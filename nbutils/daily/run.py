"""What a finished run saved, and its live predictions computed exactly as the run computed them.

A run directory (``python -m nbutils run``) holds ``data.json`` (01), ``feature_spec.json`` (02),
``model.txt`` (03) and the executed notebooks. The daily commands predict a new round's live
rows with them:

    raw = mean over boosters of booster.predict(FeatureSpec.apply(live)[model.features])
    neutralized = neutralize(raw, neutralizers, proportion, era_col)   # when notebook 06 ran
    submitted = (rank - 0.5) / n per era                               # build_submission

The neutralization settings (notebook 06's ``proportion``, ``neutralize_against``, ``per_era``;
notebook 05's ``rank_per_era``) are in ``neutralization.json``, which notebook 06 writes. Runs
made before notebook 06 wrote it have none: then :func:`load_settings` reads the settings from
the executed notebooks' ``parameters`` and papermill's ``injected-parameters`` cells (literal
values only, nothing is executed) and writes the file, so every later call uses the same settings.
Notebook 06 neutralizes only the rows its submission file holds (live, in today's layout), so a
new round's live rows neutralized alone get the same treatment. Runs of older versions of 06
with ``per_era=False`` neutralized validation and live as one block; :func:`load_settings` warns
that a new round can only neutralize its live rows as a block of their own.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nbutils.checks import check_proportion
from nbutils.daily.errors import DailyError
from nbutils.errors import DataError
from nbutils.features import FeatureSpec
from nbutils.run.artifacts import artifact_path, read_artifact_json
from nbutils.train import SeedAveragedModel, load_model, predict
from nbutils.util import read_json, write_json

SETTINGS_NAME = "neutralization.json"
#: notebook 08's target ensemble: its targets, weights and model files
ENSEMBLE_NAME = "ensemble.json"
NEUTRALIZE_AGAINST = ("features", "example_predictions")


@dataclass(frozen=True)
class DailySettings:
    """How the run turned raw predictions into the submitted values."""

    neutralize: bool = False
    proportion: float = 0.0
    neutralize_against: str = "features"
    per_era: bool = True
    rank_per_era: bool = False
    source: str = "defaults"

    def check(self, where: str) -> DailySettings:
        """Raise :class:`DailyError` naming ``where`` when a value is invalid."""
        try:
            check_proportion(self.proportion)
        except Exception as err:
            raise DailyError(f"{where}: {err}") from None
        if self.neutralize_against not in NEUTRALIZE_AGAINST:
            raise DailyError(
                f"{where}: neutralize_against must be one of {NEUTRALIZE_AGAINST}, "
                f"not {self.neutralize_against!r}."
            )
        for name in ("neutralize", "per_era", "rank_per_era"):
            if not isinstance(getattr(self, name), bool):
                raise DailyError(f"{where}: {name} must be true or false.")
        return self


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Literal assignments of an executed notebook's ``parameters`` then ``injected-parameters``
    cells (papermill's overrides win). Nothing is executed."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DailyError(f"cannot read {path}: {err}; rerun the chain.") from None
    values: dict[str, Any] = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.get("cells", []):
            if tag not in cell.get("metadata", {}).get("tags", []):
                continue
            source = "".join(cell.get("source", []))
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        with contextlib.suppress(ValueError):
                            values[target.id] = ast.literal_eval(node.value)
    return values


def recover_settings(run_dir: Path) -> DailySettings:
    """The settings the run used, read from its executed notebooks 05 and 06."""
    nb05, nb06 = run_dir / "05_submission.ipynb", run_dir / "06_neutralization.ipynb"
    rank = bool(notebook_parameters(nb05).get("rank_per_era", False)) if nb05.is_file() else False
    if not nb06.is_file():
        return DailySettings(
            rank_per_era=rank, source="05_submission.ipynb" if nb05.is_file() else "defaults"
        )
    p = notebook_parameters(nb06)
    return DailySettings(
        neutralize=True,
        proportion=float(p.get("proportion", 0.5)),
        neutralize_against=str(p.get("neutralize_against", "features")),
        per_era=bool(p.get("per_era", True)),
        rank_per_era=True,  # notebook 06 always ranks the neutralized submission
        source="06_neutralization.ipynb",
    )


def save_settings(run_dir: str | os.PathLike, settings: DailySettings) -> Path:
    """Write ``neutralization.json`` (what notebook 06 should write itself)."""
    settings.check("neutralization settings")
    return write_json(Path(run_dir) / SETTINGS_NAME, asdict(settings))


def load_settings(run_dir: str | os.PathLike) -> DailySettings:
    """``neutralization.json``; when missing, recovered from the executed notebooks and saved."""
    run_path = Path(run_dir)
    path = run_path / SETTINGS_NAME
    if path.is_file():
        try:
            raw = read_json(path)
            settings = DailySettings(**raw)
        except (ValueError, TypeError) as err:
            raise DailyError(
                f"{path} is not valid ({err}); delete it to recover it from the executed notebooks."
            ) from None
        return settings.check(str(path))
    settings = recover_settings(run_path).check(f"the executed notebooks in {run_path}")
    save_settings(run_path, settings)
    if settings.neutralize and not settings.per_era:
        warnings.warn(
            "this run (made before notebook 06 saved neutralization.json) neutralized with "
            "per_era=False, validation and live as one block; a new round's live rows are "
            "neutralized as one block of their own.",
            stacklevel=2,
        )
    return settings


@dataclass
class RunModel:
    """Everything needed to predict a new round like the run did."""

    run_dir: Path
    info: dict[str, Any]
    spec: FeatureSpec
    model: SeedAveragedModel
    settings: DailySettings
    #: notebook 08's ensemble (``load_run(..., ensemble=True)``): (model, weight) per target; the
    #: values are each model's per-era ranks averaged with these weights
    members: list[tuple[SeedAveragedModel, float]] | None = None

    @property
    def raw_features(self) -> list[str]:
        return list(self.info["features"])

    @property
    def groups(self) -> dict[str, list[str]]:
        """The feature groups in the order the model's statistic columns were made.

        ``data.json`` stores them sorted by name (``write_json``), while notebook 03 applied the
        spec with ``load_data``'s order; the model's own feature list tells that order.
        """
        groups = {k: list(v) for k, v in self.info["feature_groups"].items()}
        position = {name: i for i, name in enumerate(self.model.features)}
        first = self.spec.stats[0] if self.spec.stats else "mean"

        def rank(group: str) -> int:
            return position.get(f"feature_{group}_{first}", len(position))

        return {g: groups[g] for g in sorted(groups, key=rank)}

    def needed_columns(self) -> list[str]:
        """The live columns to read: the raw features (engineered ones are computed)."""
        return self.raw_features


@dataclass(frozen=True)
class EnsembleFiles:
    """Notebook 08's ensemble as ``ensemble.json`` describes it: the targets, their weights and
    their model files (artifact names relative to the run directory, in the order of targets)."""

    targets: list[str]
    weights: list[float]
    models: list[str]

    @property
    def artifacts(self) -> list[str]:
        """Every file the ensemble's predictions depend on: ``ensemble.json`` and the models."""
        return [ENSEMBLE_NAME, *self.models]


def _ensemble_changed(run_path: Path, err: Exception) -> DailyError:
    return DailyError(
        f"the ensemble of {run_path} is not the one notebook 08 wrote: {err} Nothing was "
        "submitted, exported or uploaded."
    )


def ensemble_files(run_path: Path) -> EnsembleFiles:
    """``ensemble.json`` read and every file of the ensemble checked against its fingerprint.

    Refused (:class:`DailyError` naming the file and the fix: rerun notebook 08, or ``python -m
    nbutils adopt FILE``): no ``ensemble.json``; an ``ensemble.json``, a model under
    ``ensemble_models/`` or an ``ensemble_submission.csv`` whose bytes changed since notebook 08
    wrote them (or that has no fingerprint: copied in or from an older run); an invalid
    ``ensemble.json`` (missing keys, a model outside ``ensemble_models/``, bad weights).
    """
    from nbutils.ensemble import ensemble_weights
    from nbutils.errors import PipelineError
    from nbutils.run.catalog import producer_of

    path = run_path / ENSEMBLE_NAME
    if not path.is_file():
        raise DailyError(
            f"no {path}: run 08_target_ensemble.ipynb with this run directory first, or leave "
            "out --ensemble to use the run's model.txt."
        )
    try:
        raw = read_artifact_json(run_path, ENSEMBLE_NAME)
    except PipelineError as err:
        raise _ensemble_changed(run_path, err) from None
    try:
        targets = [str(t) for t in raw["targets"]]
        weights = ensemble_weights(targets, [float(x) for x in raw["weights"]])
        models = [f"{raw['model_dir']}/{raw['model_files'][t]}" for t in targets]
    except Exception as err:  # missing keys, wrong types, bad weights
        raise DailyError(f"{path} is not valid ({err}); run notebook 08 again.") from None
    outside = [m for m in models if producer_of(m) != "08_target_ensemble.ipynb"]
    if outside:
        raise DailyError(
            f"{path} is not valid (its models {outside} are not files of ensemble_models/); "
            "run notebook 08 again."
        )
    files = EnsembleFiles(targets, [float(w) for w in weights], models)
    checked = [*files.models]
    if (run_path / "ensemble_submission.csv").is_file():
        checked.append("ensemble_submission.csv")
    try:
        for name in checked:
            artifact_path(run_path, name)
    except PipelineError as err:
        raise _ensemble_changed(run_path, err) from None
    return files


def load_ensemble(run_path: Path) -> list[tuple[SeedAveragedModel, float]]:
    """Notebook 08's models and weights, from ``ensemble.json`` (in the order of its targets),
    each file checked first (:func:`ensemble_files`)."""
    files = ensemble_files(run_path)
    return [
        (load_model(run_path / name), weight)
        for name, weight in zip(files.models, files.weights, strict=True)
    ]


def load_run(run_dir: str | os.PathLike, ensemble: bool = False) -> RunModel:
    """Load ``data.json``, ``feature_spec.json``, ``model.txt`` and the settings of a run; with
    ``ensemble``, notebook 08's target ensemble (``ensemble.json``) instead of ``model.txt``,
    ranked per era and never neutralized, as 08's ``ensemble_submission.csv``."""
    run_path = Path(run_dir).expanduser().resolve()
    if not run_path.is_dir():
        raise DailyError(
            f"--run-dir {run_path} is not a directory; give a finished run's directory."
        )
    try:
        info = read_artifact_json(run_path, "data.json")
        spec = FeatureSpec.load(artifact_path(run_path, "feature_spec.json"))
        model = load_model(artifact_path(run_path, "model.txt"))
    except DailyError:
        raise
    except Exception as err:  # PipelineError, DataError, LightGBM's own
        raise DailyError(f"the run in {run_path} is incomplete or unreadable: {err}") from None
    if info.get("layout") != "v5":
        raise DailyError(
            f"{run_path} was run on {info.get('layout')!r} data; daily rounds use today's v5 data "
            "(run the chain with --data-source numerai)."
        )
    if ensemble:
        try:
            members = load_ensemble(run_path)
        except DataError as err:
            raise DailyError(f"the ensemble of {run_path} is unreadable: {err}") from None
        settings = DailySettings(rank_per_era=True, source="08_target_ensemble.ipynb")
        return RunModel(run_path, info, spec, members[0][0], settings, members)
    return RunModel(run_path, info, spec, model, load_settings(run_path))


def raw_predictions(run: RunModel, live: pd.DataFrame) -> pd.Series:
    """The model's predictions for ``live`` (feature spec applied, as notebook 03)."""
    frame, features = run.spec.apply(live, run.groups, run.raw_features)
    models = [m for m, _ in run.members] if run.members else [run.model]
    for model in models:
        if list(features) != list(model.features):
            raise DailyError(
                f"{run.run_dir}: feature_spec.json and data.json give {len(features)} columns "
                f"that do not match the model's {len(model.features)}; the artifacts come from "
                "different runs. Run the chain again into a fresh run directory."
            )
    if not run.members:
        return predict(run.model, frame, features)
    from nbutils.ensemble import target_ensemble

    ranked = live[["era"]].copy()
    cols = [f"member_{k}" for k in range(len(models))]
    for col, model in zip(cols, models, strict=True):
        ranked[col] = predict(model, frame, features).to_numpy()
    weights = [w for _, w in run.members]
    return target_ensemble(ranked, cols, weights=weights).rename("prediction")


def live_predictions(
    run: RunModel, live: pd.DataFrame, example_predictions: pd.Series | None = None
) -> pd.Series:
    """The values to submit before ranking: raw, or neutralized as notebook 06 did."""
    from nbutils.neutralize import neutralize

    values = raw_predictions(run, live)
    s = run.settings
    if not s.neutralize:
        return values
    frame = live[["era", *run.raw_features]].copy()
    frame["prediction"] = values
    if s.neutralize_against == "features":
        neutralizers = run.raw_features
    else:
        if example_predictions is None:
            raise DailyError(
                "the run neutralized against example predictions, but this round's "
                "live_example_preds.parquet is missing."
            )
        frame["example_prediction"] = example_predictions.reindex(frame.index)
        lacking = int(frame["example_prediction"].isna().sum())
        if lacking:
            raise DailyError(
                f"the round's example predictions lack {lacking} of its {len(frame)} live ids; "
                "they do not belong to this round's live data. Try again when Numerai has "
                "published both."
            )
        neutralizers = ["example_prediction"]
    era_col = "era" if s.per_era else None
    return neutralize(
        frame, ["prediction"], neutralizers, proportion=s.proportion, era_col=era_col
    )["prediction"]
