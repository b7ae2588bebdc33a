"""Writers of the two layouts, and :func:`make_synthetic_dataset` (tutorial step 2A, offline).

Files are written row group by row group (v5 parquet) or batch by batch (legacy CSV) from the
generator's eras (:mod:`nbutils.data.synthetic`), each to a temporary name and renamed, with fixed
settings and no timestamps: the same inputs give byte-identical files.

Where a dataset goes: ``<data_dir>/seed<seed>-<key>/<version>`` (v5) or
``.../seed<seed>-<key>/numerai_dataset_<round>`` (legacy), where ``key`` is the first 12 hex digits
of the SHA-256 of the generator's inputs (layout, seed, every size, every model knob, the version or
round, and :data:`GENERATOR_VERSION`). Two datasets that differ in any input never share a file;
the same inputs always give the same directory, and a complete directory (its
:data:`SYNTHETIC_MARKER` matches the inputs and every file listed there has its size) is not
written again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nbutils.checks import check_int
from nbutils.data.layout import (
    BENCHMARK_SPLITS,
    DEFAULT_LEGACY_ROUND,
    DEFAULT_V5_VERSION,
    EXAMPLE_BENCHMARK,
    GROUPS,
    LEGACY_DIR_PREFIX,
    LEGACY_FILES,
    MAIN_TARGET,
    META_MODEL_COL,
    NAMED_TARGETS,
    PREDICTION_COL,
    V5_CSV_FILES,
    V5_FILES,
    V5_NEW_SETS,
    V5_OTHER_SETS,
    V5_VERSIONS,
    benchmark_columns,
    feature_sets_by_rule,
)
from nbutils.data.synthetic import (
    BENCHMARK_TARGETS,
    BenchmarkModels,
    EraBlock,
    Plan,
    SyntheticModel,
    SyntheticSizes,
    chunk_rows,
    chunks,
    iter_split,
    make_plan,
    meta_model,
    stack_eras,
    stacked_targets,
)
from nbutils.errors import DataError
from nbutils.util import atomic_path, read_json, release_memory, write_json

_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": False,
}


def _pandas_schema(columns: dict[str, str]) -> pa.Schema:
    """An Arrow schema with pandas metadata: ``id`` is the index, like Numerai's own files.

    The same schema and metadata under pandas 2 and 3: pandas 2 makes an empty ``dtype="str"``
    column object dtype, which Arrow types as null (writing strings into it then fails with
    ``ArrowInvalid``); so every string column is ``pa.string()`` and is described as pandas 2
    describes a column of strings (``unicode``, numpy ``object``), as Numerai's files are.
    """
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})
    empty.index = pd.Index([], dtype="str", name="id")
    schema = pa.Schema.from_pandas(empty, preserve_index=True)
    text = {name for name, dtype in columns.items() if dtype == "str"} | {"id"}
    # pandas' metadata records the writing pandas version; drop it for byte-identical files.
    meta = json.loads(schema.metadata[b"pandas"])
    meta.pop("pandas_version", None)
    if not meta.get("attributes"):
        meta.pop("attributes", None)  # written (empty) by newer pyarrow only
    meta["creator"] = {"library": "nbutils", "version": "synthetic"}
    for column in [*meta["columns"], *meta["column_indexes"]]:
        if column["name"] in text or column["numpy_type"] == "str":
            column.update(pandas_type="unicode", numpy_type="object")
    strings = [pa.field(f.name, pa.string()) if f.name in text else f for f in schema]
    return pa.schema(strings, metadata={b"pandas": json.dumps(meta, sort_keys=True).encode()})


def _v5_table(schema: pa.Schema, columns: dict[str, np.ndarray]) -> pa.Table:
    arrays = []
    for f in schema:
        values = columns[f.name]
        mask = np.isnan(values) if values.dtype.kind == "f" else None
        arrays.append(pa.array(values, type=f.type, mask=mask))
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(path: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> Path:
    """Write row groups atomically with fixed settings (no timestamps: same input, same bytes)."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, **_PARQUET_OPTIONS) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=max(len(table), 1))
    return path


#: Share of the features that v5.3 adds as its "quantum" set (807 of 3,555 in the real v5.3);
#: the synthetic v5.2 files do not have them, as the real ones do not.
QUANTUM_SHARE = 0.2
#: Shares of the v5.2 features in the sets equivalent to older releases (real v5.2: 304, 1,000
#: and 400 of 2,748).
_OTHER_SET_SHARES = {
    "v2_equivalent_features": 0.11,
    "v3_equivalent_features": 0.36,
    "fncv3_features": 0.15,
}
#: Targets of the v5 files: ``target`` first, then every named target.
V5_TARGETS: tuple[str, ...] = (MAIN_TARGET, *NAMED_TARGETS)


def _quantum(plan: Plan) -> list[str]:
    """The features v5.3 adds: the last :data:`QUANTUM_SHARE` of the columns (file order)."""
    n = math.ceil(QUANTUM_SHARE * plan.n_features)
    return [plan.v5_names[j] for j in plan.v5_order[plan.n_features - n :]]


def _v5_columns(plan: Plan, version: str) -> list[str]:
    """The feature columns of a version's files, in file order (v5.2: without the quantum ones)."""
    names = [plan.v5_names[j] for j in plan.v5_order]
    if "quantum" in V5_NEW_SETS.get(version, ()):
        return names
    dropped = set(_quantum(plan))
    return [n for n in names if n not in dropped]


def _v5_split_tables(
    plan: Plan,
    splits: tuple[str, ...],
    schema: pa.Schema,
    columns_of: list[str],
    visit: Any,
) -> Iterator[pa.Table]:
    """Tables of the eras of ``splits`` (in order) with the features ``columns_of``; ``visit``
    is called on each era block (to fit models or keep light copies)."""
    position = {name: j for j, name in enumerate(plan.v5_names)}
    blocks = (b for split in splits for b in iter_split(plan, "v5", split))
    for chunk in chunks(blocks, plan.n_features):
        for block in chunk:
            visit(block)
        ids, eras, types, cols = stack_eras(chunk)
        columns: dict[str, np.ndarray] = {"id": ids, "era": eras, "data_type": types}
        for name in columns_of:
            columns[name] = cols[position[name]]
        columns.update(stacked_targets(chunk, V5_TARGETS))
        yield _v5_table(schema, columns)


def _v5_features_json(plan: Plan, version: str) -> dict[str, Any]:
    """``feature_sets`` and ``targets`` of features.json, shaped like the version's real file.

    Sets: small, medium and all; the sets equivalent to older releases; one per feature group
    (the synthetic data has the six 2021 groups); and the version's new sets (v5.3: quantum).
    Every set lists only the version's columns, in file order (a group: in its own order).
    """
    names = plan.v5_names
    present = _v5_columns(plan, version)
    order = {name: k for k, name in enumerate(present)}
    by_rule = feature_sets_by_rule(
        {g: [names[j] for j in np.flatnonzero(plan.group_of == i)] for i, g in enumerate(GROUPS)}
    )

    def listed(members: list[str]) -> list[str]:
        return sorted((m for m in members if m in order), key=order.__getitem__)

    sets: dict[str, list[str]] = {key: listed(by_rule[key]) for key in ("small", "medium")}
    sets["all"] = list(present)
    older = [n for n in present if n not in set(_quantum(plan))]
    shuffled = [
        older[k] for k in np.random.default_rng([20210, len(older), 2]).permutation(len(older))
    ]
    for key in V5_OTHER_SETS:
        sets[key] = listed(shuffled[: max(1, round(_OTHER_SET_SHARES[key] * len(older)))])
    for group in GROUPS:  # in the group's own order: feature k of group g is legacy's <g><k>
        sets[group] = [m for m in by_rule[group] if m in order]
    for key in V5_NEW_SETS.get(version, ()):
        sets[key] = listed(_quantum(plan))
    return {"feature_sets": sets, "targets": [*NAMED_TARGETS, MAIN_TARGET]}


@dataclass
class _Kept:
    """What the v5 writer keeps of each era for the prediction files (no features, no targets)."""

    blocks: dict[str, list[EraBlock]]

    def keep(self, split: str) -> Any:
        def visit(block: EraBlock) -> None:
            self.blocks[split].append(replace(block, cols=block.cols[:0], targets=None))

        return visit


def _train_cover(plan: Plan) -> tuple[int, int]:
    """Train eras the benchmark files cover, walk-forward as Numerai makes them.

    Numerai's train benchmark predictions start after a first training window (era 158 of 574);
    here the second half of train, predicted by models fitted on the first half less a purge of
    4 eras. Returns ``(last era number of the early fit, first era number covered)``.
    """
    first_covered = plan.sizes.n_train_eras // 2 + 1
    return max(1, first_covered - 1 - 4), first_covered


def _blocks_table(
    blocks: list[EraBlock], values: dict[str, np.ndarray], schema: pa.Schema, with_era: bool
) -> pa.Table:
    columns: dict[str, np.ndarray] = {"id": np.concatenate([b.ids for b in blocks])}
    if with_era:
        columns["era"] = np.concatenate([np.full(len(b), b.era, dtype=object) for b in blocks])
    columns.update(values)
    return _v5_table(schema, columns)


def _write_v5(plan: Plan, out: Path, version: str) -> None:
    feature_names = _v5_columns(plan, version)
    data_schema = _pandas_schema(
        {
            "era": "str",
            "data_type": "str",
            **dict.fromkeys(feature_names, "int8"),
            **dict.fromkeys(V5_TARGETS, "float32"),
        }
    )
    full, early = (BenchmarkModels(plan.design_columns(), plan.design_tilt()) for _ in range(2))
    early_end, first_covered = _train_cover(plan)
    kept = _Kept({"train": [], "validation": [], "live": []})
    keep_train = kept.keep("train")

    def fit(block: EraBlock) -> None:
        number = int(block.era)
        full.add(block)
        if number <= early_end:
            early.add(block)
        if number >= first_covered:
            keep_train(block)

    _write_parquet(
        out / V5_FILES["train"],
        data_schema,
        _v5_split_tables(plan, ("train",), data_schema, feature_names, fit),
    )
    for split, parts in (("validation", ("validation", "test")), ("live", ("live",))):
        tables = _v5_split_tables(plan, parts, data_schema, feature_names, kept.keep(split))
        _write_parquet(out / V5_FILES[split], data_schema, tables)
    coefs = {"train": early.coef(), "validation": full.coef(), "live": full.coef()}
    predicted = {
        split: [BenchmarkModels.predict(coefs[split], b) for b in kept.blocks[split]]
        for split in BENCHMARK_SPLITS
    }
    columns = benchmark_columns(version)
    bench_schema = _pandas_schema({"era": "str", **dict.fromkeys(columns, "float32")})
    for split in BENCHMARK_SPLITS:
        per_era = predicted[split]
        values = {
            col: np.concatenate([p[_model_of(col)] for p in per_era]).astype(np.float32)
            for col in columns
        }
        table = _blocks_table(kept.blocks[split], values, bench_schema, with_era=True)
        _write_parquet(out / V5_FILES[f"{split}_benchmark_models"], bench_schema, iter([table]))
    pred_schema = _pandas_schema({PREDICTION_COL: "float32"})  # the blend's values, exactly
    for split in ("validation", "live"):
        example = np.concatenate([p["blend"] for p in predicted[split]]).astype(np.float32)
        table = _blocks_table(kept.blocks[split], {PREDICTION_COL: example}, pred_schema, False)
        _write_parquet(out / V5_FILES[f"{split}_example_preds"], pred_schema, iter([table]))
        csv = table.select(["id", PREDICTION_COL]).replace_schema_metadata(None)
        _write_csv(out / V5_CSV_FILES[f"{split}_example_preds_csv"], iter([csv]))
    meta_schema = _pandas_schema({"era": "str", "data_type": "str", META_MODEL_COL: "float32"})
    scored = [
        (b, p)
        for b, p in zip(kept.blocks["validation"], predicted["validation"], strict=True)
        if b.data_type == "validation"
    ]
    blocks = [b for b, _ in scored]
    values = {
        "data_type": np.full(sum(len(b) for b in blocks), "validation", dtype=object),
        META_MODEL_COL: np.concatenate([meta_model(plan, b, p["blend"]) for b, p in scored]),
    }
    table = _blocks_table(blocks, values, meta_schema, with_era=True)
    _write_parquet(out / V5_FILES["meta_model"], meta_schema, iter([table]))
    write_json(out / V5_FILES["features"], _v5_features_json(plan, version))


def _model_of(column: str) -> str:
    """The :class:`BenchmarkModels` output behind a benchmark column."""
    if column == EXAMPLE_BENCHMARK:
        return "blend"
    name = column.split("_lgbm_", 1)[1]
    assert name in BENCHMARK_TARGETS, column
    return name


# -- legacy writer -----------------------------------------------------------------------------


def _legacy_table(
    names: list[str],
    ids: np.ndarray,
    eras: np.ndarray,
    types: np.ndarray,
    cols: np.ndarray,
    target: np.ndarray,
) -> pa.Table:
    """A legacy CSV batch: features as 0, 0.25, ..., 1 (float32), target empty where unknown."""
    arrays = [pa.array(ids, pa.string()), pa.array(eras, pa.string()), pa.array(types, pa.string())]
    values = cols.astype(np.float32) * np.float32(0.25)
    arrays.extend(pa.array(values[j]) for j in range(len(names)))
    arrays.append(pa.array(target, pa.float32(), mask=np.isnan(target)))
    return pa.Table.from_arrays(arrays, names=["id", "era", "data_type", *names, MAIN_TARGET])


def _write_csv(path: Path, tables: Iterator[pa.Table]) -> Path:
    """Write CSV batches atomically: a plain header line, no quoting, empty cells for missing values."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = None
        try:
            for table in tables:
                if writer is None:
                    fh.write((",".join(table.column_names) + "\n").encode())
                    writer = pacsv.CSVWriter(fh, table.schema, write_options=options)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    return path


def _legacy_train_tables(plan: Plan, fit: BenchmarkModels) -> Iterator[pa.Table]:
    names = plan.legacy_names
    for chunk in chunks(iter_split(plan, "legacy", "train"), plan.n_features):
        for block in chunk:
            fit.add(block)
        ids, eras, types, cols = stack_eras(chunk)
        yield _legacy_table(
            names, ids, eras, types, cols, stacked_targets(chunk, [MAIN_TARGET])[MAIN_TARGET]
        )


def _write_legacy(plan: Plan, out: Path) -> None:
    """Training CSV (era order), tournament CSV, example CSV.

    The tournament file holds the validation rows, then test, then live, as the 2021 files did;
    within each part the rows are sorted by id (eras interleaved), so only the file's own order
    is right for a submission.
    """
    fit = BenchmarkModels(plan.design_columns(), plan.design_tilt())
    _write_csv(out / LEGACY_FILES["train"], _legacy_train_tables(plan, fit))
    coef = fit.coef()
    tagged = [
        (k, b)
        for k, split in enumerate(("validation", "test", "live"))
        for b in iter_split(plan, "legacy", split)
    ]
    blocks = [b for _, b in tagged]
    ids, eras, types, cols = stack_eras(blocks)
    target = stacked_targets(blocks, [MAIN_TARGET])[MAIN_TARGET]
    preds = np.concatenate([BenchmarkModels.predict(coef, b)["blend"] for b in blocks])
    part = np.concatenate([np.full(len(b.id_codes), k) for k, b in tagged])
    order = np.lexsort((np.concatenate([b.id_codes for b in blocks]), part))
    step = chunk_rows(plan.n_features)
    names = plan.legacy_names
    _write_csv(
        out / LEGACY_FILES["tournament"],
        (
            _legacy_table(names, ids[rows], eras[rows], types[rows], cols[:, rows], target[rows])
            for rows in (order[i : i + step] for i in range(0, len(order), step))
        ),
    )
    example = pa.table(
        {"id": pa.array(ids[order], pa.string()), PREDICTION_COL: pa.array(preds[order])}
    )
    _write_csv(out / LEGACY_FILES["example_predictions"], iter([example]))


#: Bumped whenever the generator's output changes for the same inputs, so that directories
#: written by an older generator are never taken for complete ones.
GENERATOR_VERSION = 4
#: Hidden file written last in a synthetic dataset directory: its inputs and each file's size
#: and SHA-256.
SYNTHETIC_MARKER = ".nbutils_synthetic.json"


def synthetic_inputs(
    layout: str, seed: int, sizes: SyntheticSizes, model: SyntheticModel, name: str
) -> dict[str, Any]:
    """Everything the files of a synthetic dataset depend on, as plain JSON values."""
    return {
        "generator": GENERATOR_VERSION,
        "layout": layout,
        "seed": seed,
        "dataset": name,
        "sizes": asdict(sizes),
        "model": asdict(model),
    }


def synthetic_key(inputs: dict[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of ``inputs`` as key-sorted JSON."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def _is_complete(out: Path, inputs: dict[str, Any]) -> bool:
    """Whether ``out`` holds a finished dataset for ``inputs``: its marker records the same
    inputs, and every file the marker lists is there with the recorded size."""
    try:
        marker = read_json(out / SYNTHETIC_MARKER)
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("inputs") != inputs:
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, entry in files.items():
        path = out / name
        if not isinstance(entry, dict) or not path.is_file():
            return False
        if path.stat().st_size != entry.get("bytes"):
            return False
    return True


def _file_entry(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _check_inputs(
    layout: str, seed: object, version: str, round_: object, model: object, sizes: dict[str, Any]
) -> tuple[SyntheticSizes, str]:
    """The checked sizes and the dataset directory's name (version or numerai_dataset_<round>)."""
    if layout not in ("v5", "legacy"):
        raise DataError(f'unknown layout {layout!r}: use layout="v5" or layout="legacy"')
    known = {f.name for f in fields(SyntheticSizes)}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise DataError(f"unknown synthetic size(s) {unknown}: use {sorted(known)}")
    check_int(seed, "seed", 0, error=DataError)
    SyntheticSizes(**sizes).check()
    resolved = SyntheticSizes(**{k: int(v) for k, v in sizes.items()})
    if model is not None and not isinstance(model, SyntheticModel):
        raise DataError(f"model={model!r} is invalid: pass a SyntheticModel(...) or None")
    if layout == "legacy":
        return resolved, f"{LEGACY_DIR_PREFIX}{check_int(round_, 'round', 0, error=DataError)}"
    if version not in V5_VERSIONS:
        raise DataError(
            f"version={version!r} is not a v5 release the synthetic data mirrors: use one of "
            f"{list(V5_VERSIONS)} (default {DEFAULT_V5_VERSION!r}, the latest)"
        )
    return resolved, version


def make_synthetic_dataset(
    data_dir: str | os.PathLike,
    layout: str = "v5",
    seed: int = 0,
    *,
    version: str = DEFAULT_V5_VERSION,
    round: int = DEFAULT_LEGACY_ROUND,  # noqa: A002 - Numerai's word
    model: SyntheticModel | None = None,
    **sizes: int,
) -> Path:
    """Write a synthetic Numerai-shaped dataset and return its directory (tutorial step 2A).

    Parameters
    ----------
    data_dir : path
        Parent directory. The dataset goes to ``<data_dir>/seed<seed>-<key>/<version>`` (v5,
        ``version`` one of :data:`~nbutils.data.layout.V5_VERSIONS`, default ``v5.3``) or ``<data_dir>/seed<seed>-<key>/numerai_dataset_<round>`` (legacy,
        default round 280); ``key`` hashes every input (see the module docstring), so datasets
        of other seeds, sizes, layouts or model knobs never share a file.
    layout : {"v5", "legacy"}
        Today's parquet files or the tutorial's 2021 CSV files, with design.md's file names.
    seed : int
        Same seed and sizes give the same directory and byte-identical files. Both layouts of one seed hold the same
        rows (ids, eras, feature values, target); the legacy names feature ``j`` of group ``g``
        ``feature_<g><j>``, the v5 files give it an opaque name listed in ``features.json``.
    model : SyntheticModel, optional
        The knobs of the statistical model (docs/data.md).
    **sizes
        Fields of :class:`SyntheticSizes`: ``n_train_eras``, ``n_validation_eras``,
        ``n_test_eras`` (legacy only), ``rows_per_era``, ``n_live``, ``n_features``;
        :data:`TINY_SIZES` for tests.

    Returns
    -------
    Path
        The dataset directory, to pass to :func:`load_data`.

    Notes
    -----
    Eras: ``n_train_eras`` train eras, then right after them (no gap, as in Numerai's v5 files)
    ``n_validation_eras`` validation eras, ``n_test_eras`` test eras without targets (v5: at the
    end of ``validation.parquet``; legacy: in the tournament file), and one live era (v5 labels
    ``0001``..., legacy ``era1``..., live ``eraX``). v5 also writes the benchmark models of
    ``version`` (:func:`~nbutils.data.layout.benchmark_columns`), the example predictions (the
    ``v5_lgbm_ct_blend`` column) and the meta model (validation eras); docs/data.md. Every file is written to a temporary name and renamed;
    :data:`SYNTHETIC_MARKER` is written last, and a directory whose marker matches is returned
    as it is, without writing anything.
    """
    resolved, name = _check_inputs(layout, seed, version, round, model, sizes)
    chosen = model or SyntheticModel()
    inputs = synthetic_inputs(layout, int(seed), resolved, chosen, name)
    out = Path(data_dir) / f"seed{int(seed)}-{synthetic_key(inputs)}" / name
    if _is_complete(out, inputs):
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / SYNTHETIC_MARKER).unlink(missing_ok=True)
    plan = make_plan(resolved, chosen, int(seed))
    if layout == "v5":
        _write_v5(plan, out, name)
        names = [*V5_FILES.values(), *V5_CSV_FILES.values()]
    else:
        _write_legacy(plan, out)
        names = list(LEGACY_FILES.values())
    write_json(
        out / SYNTHETIC_MARKER,
        {"inputs": inputs, "files": {n: _file_entry(out / n) for n in names}},
    )
    # the pages the generator freed go back to the system: notebook 01's memory plan counts the
    # kernel's resident size as its baseline, right after this call
    release_memory()
    return out
