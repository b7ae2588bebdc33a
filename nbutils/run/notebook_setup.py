"""What a notebook's setup cell does once nbutils imports: check the parameters, then make the
missing earlier artifacts, one Japanese line each.

Every notebook opens with its parameters cell (tag ``parameters``) and, right after it, the one
setup cell (:func:`nbutils.run.project.setup_cell_source`): the install part (Colab and Kaggle
only), then ``setup_notebook("NN_name.ipynb", globals())``. Being the cell run right after the
parameters cell (or after papermill's injected cell) is what lets
:func:`~nbutils.run.parameters.check_notebook_parameters` find a typo in either of them.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from nbutils.run.artifacts import resolve_dir
from nbutils.run.parameters import check_notebook_parameters, schema_for
from nbutils.run.steps import STEP_ARTIFACTS, UPSTREAM, ensure_upstream, step_number


def changed_parameters(notebook: str, values: dict[str, Any]) -> dict[str, Any]:
    """The checked parameters whose value differs from the notebook's declared default."""
    schema = schema_for(notebook)
    return {name: value for name, value in values.items() if value != schema[name].default}


def parameters_line(notebook: str, values: dict[str, Any]) -> str:
    """``パラメータ: ...``: how many were checked and which differ from the defaults."""
    changed = changed_parameters(notebook, values)
    if not changed:
        return f"パラメータ: {len(values)} 個を確かめました（すべて既定の値）"
    shown = ", ".join(f"{name}={value!r}" for name, value in changed.items())
    return f"パラメータ: {len(values)} 個を確かめました（既定から変えたもの: {shown}）"


def setup_notebook(
    notebook: str, namespace: MutableMapping[str, Any], *, log: Callable[[str], Any] = print
) -> None:
    """Check notebook ``notebook``'s parameters in ``namespace`` (its ``globals()``; coerced values
    are written back), then make the earlier steps' artifacts missing in its ``run_dir``.

    Prints one line for the parameters and one for the earlier artifacts (one per step made,
    :func:`nbutils.run.steps.ensure_upstream`). A wrong parameter stops here with a
    :class:`~nbutils.errors.ParameterError` naming it and the fix. Returns nothing, so that the
    cell shows only these lines.
    """
    values = check_notebook_parameters(notebook, namespace)
    log(parameters_line(notebook, values))
    step = step_number(notebook)
    needed = UPSTREAM[step]
    if not needed:
        log("前のノートブックの成果物: いりません（01 はシリーズの最初です）")
        return
    made = ensure_upstream(resolve_dir(values["run_dir"], create=True), step, log=log)
    if not made:
        names = ", ".join(name for s in needed for name in STEP_ARTIFACTS[s])
        log(f"前のノートブックの成果物: run_dir にそろっています（{names}）")
