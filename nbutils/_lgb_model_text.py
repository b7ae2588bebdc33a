"""Check a LightGBM text model before LightGBM parses it (``train.load_model``).

LightGBM's C++ parser trusts its input: a truncated or corrupt ``model.txt`` makes it abort
(``terminate called``, exit code 134) or crash (segmentation fault) and takes the whole Python
process (the notebook's kernel) with it. So the text is checked here first, in the order
LightGBM reads it:

1. the header starts with ``tree`` and gives ``max_feature_idx``;
2. the tree section ends with ``end of trees`` and the file with ``end of parameters`` (a
   truncated file misses one of them);
3. ``tree_sizes`` (when written) matches the byte length of every ``Tree=`` block;
4. in every tree, each array field holds numbers only, as many as ``num_leaves`` asks for, and
   the split features and child indices are in range.

Anything else is a :class:`~nbutils.errors.DataError` naming the file, raised before LightGBM
sees the text.
"""

from __future__ import annotations

import math

from nbutils.errors import DataError

__all__ = ["check_model_text"]

_END_TREES = "\nend of trees\n"
_END_PARAMS = "\nend of parameters"
#: Array fields of a tree and their length in terms of ``num_leaves`` (n): n - 1 or n.
_INNER = (
    "split_feature",
    "split_gain",
    "threshold",
    "decision_type",
    "left_child",
    "right_child",
    "internal_value",
    "internal_weight",
    "internal_count",
)
_LEAF = ("leaf_value", "leaf_weight", "leaf_count")


class _Corrupt(Exception):
    """The reason a model text is not usable (turned into a DataError naming the file)."""


def _numbers(tree: dict[str, str], key: str, expected: int) -> list[float]:
    raw = tree.get(key)
    if raw is None:
        return []
    try:
        values = [float(v) for v in raw.split()]
    except ValueError as err:
        raise _Corrupt(f"tree field {key} holds a non-number ({err})") from err
    if len(values) != expected or not all(math.isfinite(v) or key == "split_gain" for v in values):
        raise _Corrupt(f"tree field {key} has {len(values)} values, {expected} expected")
    return values


def _check_tree(block: str, n_features: int) -> None:
    fields = dict(line.split("=", 1) for line in block.strip().splitlines() if "=" in line)
    try:
        leaves = int(fields["num_leaves"])
    except (KeyError, ValueError) as err:
        raise _Corrupt("a tree has no valid num_leaves") from err
    if leaves < 1 or "leaf_value" not in fields:
        raise _Corrupt("a tree has no leaves")
    for key in _LEAF:
        _numbers(fields, key, leaves)
    if leaves == 1:
        return
    inner = {key: _numbers(fields, key, leaves - 1) for key in _INNER}
    if any(not 0 <= f < n_features for f in inner["split_feature"]):
        raise _Corrupt("a tree splits on a feature the model does not have")
    for side in ("left_child", "right_child"):
        if any(not -leaves <= c < leaves - 1 for c in inner[side]):
            raise _Corrupt(f"a tree's {side} points outside the tree")


def _check(text: str) -> None:
    if not text.startswith("tree\n"):
        raise _Corrupt("it does not start with LightGBM's 'tree' header")
    header, sep, rest = text.partition("\nTree=")
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    try:
        n_features = int(fields["max_feature_idx"]) + 1
    except (KeyError, ValueError) as err:
        raise _Corrupt("its header has no max_feature_idx") from err
    if not sep or _END_TREES not in rest:
        raise _Corrupt("it has no 'end of trees' line: the file is cut short")
    if _END_PARAMS not in rest:
        raise _Corrupt("it has no 'end of parameters' line: the file is cut short")
    trees = "Tree=" + rest[: rest.index(_END_TREES) + 1]
    blocks = [b for b in trees.split("\nTree=") if b.strip()]
    if "tree_sizes" in fields:
        sizes = fields["tree_sizes"].split()
        if len(sizes) != len(blocks) or sum(map(int, sizes)) != len(trees.encode("utf-8")):
            raise _Corrupt("its trees do not have the sizes its header lists")
    for block in blocks:
        _check_tree(block, n_features)


def check_model_text(text: str, source: str) -> None:
    """Raise DataError (naming ``source``) unless ``text`` is a complete LightGBM text model."""
    try:
        _check(text)
    except (_Corrupt, ValueError) as err:
        raise DataError(
            f"{source} is not a complete LightGBM model ({err}); it may be truncated or "
            "corrupt. Train and save the model again (notebook 03)."
        ) from err
