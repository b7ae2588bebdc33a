"""Notebook parameters: one declared schema per notebook, checked before anything runs.

Each notebook's cell tagged ``parameters`` holds defaults; :data:`SCHEMAS` declares for each name
its type, range and choices. The same check runs in two places:

- ``python -m nbutils run`` (:func:`check_run_parameters`): every ``-p NAME VALUE`` is coerced to
  its declared type, checked, and an unknown name is refused with the closest valid one;
- the cell right after the parameters cell (:func:`check_notebook_parameters`), so Jupyter, Colab
  and a direct ``papermill`` call are checked too.

Booleans accept ``True/False/true/false/1/0/yes/no`` (``-p upload False`` is ``False``, never the
truthy string "False"). Strings with choices refuse anything else, naming the closest choice.
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbutils.errors import ParameterError

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class Param:
    """One declared parameter: ``kind`` is bool, int, float, str, list or dict.

    ``low``/``high`` bound numbers (inclusive) and every number of a list; ``choices`` are the
    only strings allowed (``open_choices``: any existing directory is allowed too); ``item`` is
    the type of a list's elements; ``min_items`` the shortest list allowed.
    """

    name: str
    kind: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    item: type | None = None
    min_items: int = 0
    open_choices: bool = False


def _p(name: str, kind: type, default: Any, help: str = "", **kw: Any) -> Param:
    return Param(name, kind, default, help, **kw)


_RUN_DIR = _p("run_dir", str, "runs/latest", "where this run's artifacts go")
_ENGINE = _p("engine", str, "local", "local or dask", choices=("local", "dask"))
_SCHEDULER = _p("dask_scheduler", str, "", "scheduler address; empty: a local cluster")

#: notebook file name -> its parameters, in the order of its parameters cell
SCHEMAS: dict[str, tuple[Param, ...]] = {
    "01_load_data.ipynb": (
        _p(
            "data_source",
            str,
            "synthetic",
            '"synthetic", "numerai" or a data directory',
            choices=("synthetic", "numerai"),
            open_choices=True,
        ),
        _p("data_dir", str, "data", "where datasets are built or downloaded"),
        _RUN_DIR,
        _p("synthetic_layout", str, "v5", "v5 or legacy", choices=("v5", "legacy")),
        _p("synthetic_sizes", dict, {}, "sizes of the synthetic dataset"),
        _p("seed", int, 0, "seed of the synthetic dataset", low=0),
        _p("version", str, "latest", "dataset version to download"),
        _p("feature_set", str, "all", "small, medium, all or a feature group"),
        _p("era_step", int, 1, "keep every n-th training era", low=1),
        _p("targets", list, [], "target columns to load; [] loads all", item=str),
    ),
    "02_feature_engineering.ipynb": (
        _RUN_DIR,
        _p("group_stats", bool, True, "add per-group mean, std and skew"),
        _p("interaction_count", int, 3, "interactions among the n best features", low=0),
        _p("interaction_columns", list, [], "features to multiply pairwise", item=str),
    ),
    "03_training.ipynb": (
        _RUN_DIR,
        _p("model_preset", str, "seed", "seed or example", choices=("seed", "example")),
        _p("n_estimators", int, 300, "number of trees", low=1, high=100_000),
        _p("learning_rate", float, 0.02, "LightGBM's learning rate", low=1e-6, high=1.0),
        _p("seeds", list, [0], "seeds whose models are averaged", item=int, low=0, min_items=1),
        _p("target", str, "target", "the column to learn"),
        _ENGINE,
        _SCHEDULER,
    ),
    "04_evaluation.ipynb": (_RUN_DIR, _ENGINE, _SCHEDULER),
    "05_submission.ipynb": (
        _RUN_DIR,
        _p("rank_per_era", bool, False, "rank predictions per era"),
        _p("upload", bool, False, "upload submission.csv (True) or not (False)"),
        _p("model_name", str, "", "your Numerai model's name"),
    ),
    "06_neutralization.ipynb": (
        _RUN_DIR,
        _p("proportion", float, 0.3, "how much to neutralize (the guide: 0.3)", low=0.0, high=1.0),
        _p(
            "neutralize_against",
            str,
            "example_predictions",
            "example_predictions (the guide) or features",
            choices=("features", "example_predictions"),
        ),
        _p("per_era", bool, False, "neutralize era by era (the guide: one block)"),
        _p(
            "sweep",
            list,
            [0.0, 0.25, 0.5, 0.75, 1.0],
            "proportions to try",
            item=float,
            low=0.0,
            high=1.0,
            min_items=1,
        ),
        _p(
            "today_proportion",
            float,
            0.5,
            "today's variant: against every feature, era by era",
            low=0.0,
            high=1.0,
        ),
    ),
    "07_benchmark_models.ipynb": (
        _RUN_DIR,
        _p("n_riskiest", int, 10, "riskiest features to neutralize against", low=1),
        _p("risk_by", str, "half_change", "rank features by", choices=("half_change", "std")),
        _p("proportion", float, 0.5, "neutralization proportion", low=0.0, high=1.0),
    ),
    "08_target_ensemble.ipynb": (
        _RUN_DIR,
        _p(
            "ensemble_targets",
            list,
            ["target", "target_cyrusd_20", "target_teager2b_20", "target_agnes_20"],
            "one small model per target",
            item=str,
            min_items=1,
        ),
        _p("weights", list, [], "one weight per target; [] averages equally", item=float, low=0.0),
        _p("n_estimators", int, 60, "trees of each small model", low=1, high=100_000),
        _p("learning_rate", float, 0.1, "their learning rate", low=1e-6, high=1.0),
    ),
    "09_validation.ipynb": (
        _RUN_DIR,
        _p("chunk", int, 0, "eras per walk-forward chunk; 0: 156, or fewer on small data", low=0),
        _p("n_estimators", int, 60, "trees of 09's small models", low=1, high=100_000),
        _p("learning_rate", float, 0.1, "their learning rate", low=1e-6, high=1.0),
        _p("boost_rounds", int, 4, "rounds of era boosting", low=1, high=1000),
        _p("worst_proportion", float, 0.5, "quantile of eras boosted on", low=0.01, high=1.0),
        _p(
            "grid",
            dict,
            {"num_leaves": [7, 31], "colsample_bytree": [0.3, 1.0]},
            "the parameter search: LightGBM parameter -> list of values",
        ),
        _p("save_as_run_model", bool, False, "the chosen model becomes the run's model.txt"),
        _p(
            "chosen_model",
            str,
            "search_best",
            "the model save_as_run_model saves",
            choices=("search_best", "era_boost"),
        ),
    ),
}


def schema_for(notebook: str | Path, declared: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The schema of ``notebook`` (by file name); for a notebook not in :data:`SCHEMAS`, one
    made from its declared defaults (type of each default, no range)."""
    name = Path(notebook).name
    if name in SCHEMAS:
        return {p.name: p for p in SCHEMAS[name]}
    if declared is None:
        raise ParameterError(f"no parameter schema for {name}; known: {sorted(SCHEMAS)}")
    return {k: Param(k, _kind_of(v), v) for k, v in declared.items()}


def _kind_of(default: Any) -> type:
    """The type of a declared default (papermill gives its source text, e.g. ``'1'``)."""
    try:
        value = ast.literal_eval(default) if isinstance(default, str) else default
    except (ValueError, SyntaxError):
        return object
    if isinstance(value, int) and not isinstance(value, bool):
        return object  # an int default may take a float value: no check without a schema
    for kind in (bool, float, str, list, dict):
        if isinstance(value, kind):
            return kind
    return object


# -- coercion ------------------------------------------------------------------------------------
def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (difflib), or None when none is close."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    best = closest(name, candidates)
    return f"did you mean {best!r}? " if best else ""


def coerce(param: Param, value: Any, where: str = "") -> Any:
    """``value`` converted to ``param``'s type and checked; a :class:`ParameterError` otherwise.

    Strings from the command line are parsed: ``"False"`` -> False, ``"-5"`` -> -5,
    ``"[0, 1]"`` -> [0, 1].
    """
    label = f"parameter {param.name!r}" + (f" of {where}" if where else "")
    try:
        out = _convert(param, value)
    except (TypeError, ValueError) as err:
        raise ParameterError(
            f"{label} must be {_describe(param)}, got {value!r} ({err}). "
            f"Default: {param.default!r}."
        ) from None
    _check_range(param, out, label)
    return out


def _describe(param: Param) -> str:
    if param.kind is bool:
        return "a boolean (True/False, true/false, 1/0, yes/no)"
    if param.choices:
        more = " or an existing directory" if param.open_choices else ""
        return "one of " + ", ".join(repr(c) for c in param.choices) + more
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a dict (JSON object)",
    }
    return names.get(param.kind, "a value")


def _convert(param: Param, value: Any) -> Any:
    kind = param.kind
    if kind is bool:
        return _to_bool(value)
    if kind is int:
        return _to_int(value)
    if kind is float:
        return _to_float(value)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(f"not a string but {type(value).__name__}")
        return value
    if kind in (list, dict):
        if isinstance(value, str):
            value = json.loads(value)
        if kind is list and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, kind):
            raise TypeError(f"not a {kind.__name__} but {type(value).__name__}")
        if kind is list and param.item is not None:
            item = Param(param.name, param.item, None)
            value = [_convert(item, v) for v in value]
        return value
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("not a boolean")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"not an integer but {type(value).__name__}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int | float | str):
        out = float(value)
        if not math.isfinite(out):
            raise ValueError("not finite")
        return out
    raise TypeError(f"not a number but {type(value).__name__}")


def _check_range(param: Param, value: Any, label: str) -> None:
    numbers = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) < param.min_items:
        raise ParameterError(f"{label} needs at least {param.min_items} item(s), got {value!r}.")
    for number in numbers:
        if not isinstance(number, int | float) or isinstance(number, bool):
            continue
        if param.low is not None and number < param.low:
            raise ParameterError(
                f"{label} must be >= {param.low:g}, got {number!r}. Default: {param.default!r}."
            )
        if param.high is not None and number > param.high:
            raise ParameterError(
                f"{label} must be <= {param.high:g}, got {number!r}. Default: {param.default!r}."
            )
    if param.choices and value not in param.choices:
        if param.open_choices and _is_dir(str(value)):
            return
        more = " or an existing directory" if param.open_choices else ""
        raise ParameterError(
            f"{label} is {value!r}: {_did_you_mean(value, param.choices)}"
            f"choose one of {', '.join(repr(c) for c in param.choices)}{more}."
        )


def _is_dir(value: str) -> bool:
    """Whether ``value`` names a directory, as is or against the project root (the notebooks
    resolve relative paths there when they run inside a clone)."""
    from nbutils.run.artifacts import resolve_dir

    path = Path(value).expanduser()
    return path.is_dir() or resolve_dir(path).is_dir()


# -- the two entry points ------------------------------------------------------------------------
def check_run_parameters(
    parameters: Mapping[str, Any],
    schemas: Mapping[str, Mapping[str, Param]],
    always: Iterable[str] = (),
) -> dict[str, Any]:
    """Coerce and check the ``run`` command's parameters against the notebooks' schemas.

    ``schemas`` maps each notebook to run onto its schema; a name no notebook declares (and not
    in ``always``) is refused with the closest valid name.
    """
    known: dict[str, tuple[str, Param]] = {}
    for notebook, schema in schemas.items():
        for name, param in schema.items():
            known.setdefault(name, (notebook, param))
    allowed = set(known) | set(always)
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in allowed:
            raise ParameterError(
                f"unknown parameter {name!r}: {_did_you_mean(name, allowed)}"
                f"the notebooks take {', '.join(sorted(allowed))}."
            )
        if name in known:
            notebook, param = known[name]
            value = coerce(param, value, where=notebook)
        out[name] = value
    return out


def _assigned_literals(source: str) -> list[str] | None:
    """Names a cell assigns, when the cell is only ``name = literal`` lines; else None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = []
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            return None
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return None
        names.append(node.targets[0].id)
    return names


def _parameter_cells(history: Any, schema: Mapping[str, Param]) -> list[list[str]]:
    """The names assigned by the cells that set this notebook's parameters, from IPython's
    input history ``In``: papermill's injected cell (it starts with ``# Parameters``) and the
    cell run just before the check when it looks like the parameters cell (literal
    assignments, at least one of them a declared parameter)."""
    if not isinstance(history, list) or not history:
        return []
    found = []
    injected = [c for c in history if isinstance(c, str) and c.lstrip().startswith("# Parameters")]
    if injected:
        names = _assigned_literals(injected[-1])
        if names:
            found.append(names)
    if len(history) >= 2 and isinstance(history[-2], str):
        names = _assigned_literals(history[-2])
        if names and any(n in schema for n in names):
            found.append(names)
    return found


def check_notebook_parameters(
    notebook: str, namespace: MutableMapping[str, Any], *, check_keys: bool = True
) -> dict[str, Any]:
    """Check the parameters in a notebook's ``globals()`` and write back the coerced values.

    Called by the cell right after the parameters cell. Refuses a value of the wrong type or out
    of range; a name set by the parameters cell or by papermill's injected cell that the
    notebook does not declare (``n_estimator`` for ``n_estimators``: papermill injects unknown
    names silently), naming the closest valid one; and a value equal to a Numerai API key (keys
    come from the environment or ``.env`` only). Returns the checked parameters and registers
    them as this notebook's step for the artifacts' fingerprints.
    """
    schema = schema_for(notebook)
    for names in _parameter_cells(namespace.get("In"), schema):
        for name in names:
            if name not in schema:
                raise ParameterError(
                    f"unknown parameter {name!r} in {notebook}: {_did_you_mean(name, schema)}"
                    f"it takes {', '.join(schema)}."
                )
    values: dict[str, Any] = {}
    for name, param in schema.items():
        values[name] = coerce(param, namespace.get(name, param.default), where=notebook)
    if check_keys:
        from nbutils.run.keys import load_keys, refuse_key_values

        refuse_key_values(values, load_keys())
    if "run_dir" in values:  # a chain writing there now: stop before anything is computed
        from nbutils.run.artifacts import resolve_dir
        from nbutils.run.lock import check_not_locked_by_another

        check_not_locked_by_another(resolve_dir(values["run_dir"]))
    namespace.update(values)
    from nbutils.run.fingerprints import begin_step

    begin_step(notebook, values)
    return values
