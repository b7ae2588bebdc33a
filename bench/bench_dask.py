"""Training and scoring on a Dask LocalCluster with data larger than one worker's memory.

A synthetic int8 dataset in the v5 layout (``train.parquet`` written in row groups,
``validation.parquet``, ``features.json``) is generated chunk by chunk in a child process, so
the generator stays small. Then, on a LocalCluster of ``--workers`` worker processes with
``--worker-memory`` each (distributed terminates a worker at 95% of it):

1. the local engine (``nbutils.train.train_lgbm`` + ``predict`` + ``per_era_corr``) on a subset
   (every ``--subset-step``-th era) that fits one process, in a fresh subprocess;
2. the Dask engine (``train_lgbm_dask``, ``method="stream"``; ``predict_dask``;
   ``per_era_scores_dask``) on the same subset;
3. the Dask engine on the whole dataset: its int8 payload (rows x features bytes) is at least
   1.5x one worker's memory limit.

Peak memory: the local run's ``VmHWM`` (peak RSS) of its own process; each worker's ``VmHWM``
read with ``client.run`` (workers are restarted before each Dask run, so the figure belongs to
that run). Times are wall-clock seconds, reading the parquet files included.

    python bench/bench_dask.py            # 4.4 M rows x 400 int8 features (1.64 GiB), 5 x 1 GiB workers
    python bench/bench_dask.py --quick    # smoke run: 60,000 rows x 40 features
    python bench/bench_dask.py --with-lightgbm-dask   # also DaskLGBMRegressor on the subset

Nothing is kept: the data lives in a temporary directory unless ``--data-dir`` is given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


# -- helpers shared by the children --------------------------------------------------------------
def worker_peak_mib() -> float:
    """A worker's peak RSS in MiB (defined here, in ``__main__``, so it is pickled by value)."""
    return peak_rss_mib()


def feature_names(n: int) -> list[str]:
    return [f"feature_{i:04d}" for i in range(n)]


def era_label(i: int) -> str:
    return f"{i + 1:04d}"


# -- generation (child process) ------------------------------------------------------------------
def generate(
    out: Path,
    rows_per_era: int,
    train_eras: int,
    valid_eras: int,
    features: int,
    eras_per_group: int,
) -> dict:
    """Write train.parquet / validation.parquet / features.json, one row group at a time."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = feature_names(features)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weights = np.zeros(features)
    weights[:8] = rng.normal(0, 1, 8)

    def chunk(first_era: int, n_eras: int, split: str) -> pa.Table:
        n = n_eras * rows_per_era
        x = rng.integers(0, 5, size=(n, features), dtype=np.int8)
        signal = (x[:, :8] - 2.0) @ weights[:8] + 0.5 * (x[:, 8] - 2.0) * (x[:, 9] - 2.0)
        y = signal + rng.normal(0, 3.0 * signal.std(), n)
        target = np.clip(np.round((y - y.mean()) / y.std() + 2), 0, 4) / 4
        eras = np.repeat([era_label(first_era + k) for k in range(n_eras)], rows_per_era)
        frame = pd.DataFrame(x, columns=names, copy=False)
        frame.insert(0, "data_type", split)
        frame.insert(0, "era", eras)
        frame["target"] = target.astype(np.float32)
        start = first_era * rows_per_era
        frame.index = pd.Index([f"id{start + i:09d}" for i in range(n)], name="id")
        return pa.Table.from_pandas(frame, preserve_index=True)

    def write(path: Path, first_era: int, n_eras: int, split: str) -> None:
        writer = None
        for e in range(first_era, first_era + n_eras, eras_per_group):
            table = chunk(e, min(eras_per_group, first_era + n_eras - e), split)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=len(table))
            del table
        writer.close()

    write(out / "train.parquet", 0, train_eras, "train")
    write(out / "validation.parquet", train_eras + 4, valid_eras, "validation")
    sets = {"all": names}
    (out / "features.json").write_text(json.dumps({"feature_sets": sets, "targets": ["target"]}))
    return {"peak_mib": peak_rss_mib()}


# -- the local engine (child process) --------------------------------------------------------------
def kept_eras(n_eras: int, step: int) -> list[str]:
    return [era_label(i) for i in range(n_eras)][::step]


def local_run(data: Path, train_eras: int, step: int, features: int, trees: int) -> dict:
    """Read the subset with pandas, train with nbutils.train, predict and score validation."""
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from nbutils.metrics import per_era_corr
    from nbutils.train import SEED_PARAMS, predict, train_lgbm

    names = feature_names(features)
    start = time.perf_counter()
    train = pd.read_parquet(
        data / "train.parquet", filters=[("era", "in", kept_eras(train_eras, step))]
    )
    read_s = time.perf_counter() - start
    model = train_lgbm(train, names, params={**SEED_PARAMS, "n_estimators": trees}, progress=False)
    train_s = time.perf_counter() - start
    rows = len(train)
    del train
    start = time.perf_counter()
    valid = pd.read_parquet(data / "validation.parquet")
    valid["prediction"] = predict(model, valid)
    corr = float(per_era_corr(valid).mean())
    score_s = time.perf_counter() - start
    return {
        "rows": rows,
        "read_s": read_s,
        "train_s": train_s,
        "score_s": score_s,
        "corr": corr,
        "peak_mib": peak_rss_mib(),
    }


def run_child(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the Dask engine --------------------------------------------------------------------------------
def worker_peaks(client) -> list[float]:
    return sorted(client.run(worker_peak_mib).values())


def dask_run(client, data: Path, step: int, features: int, trees: int, method: str) -> dict:
    import nbutils.dask as de
    from nbutils.train import SEED_PARAMS

    client.restart(wait_for_workers=True)  # fresh worker processes: VmHWM belongs to this run
    names = feature_names(features)
    start = time.perf_counter()
    train = de.read_split(data, "train", features=names, era_step=step)
    model = de.train_lgbm_dask(
        client, train, names, params={**SEED_PARAMS, "n_estimators": trees}, method=method
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    valid = de.read_split(data, "validation", features=names)
    scored = valid[["era", "target"]].assign(prediction=de.predict_dask(model, valid))
    corr = float(de.per_era_scores_dask(scored, client=client).mean())
    score_s = time.perf_counter() - start
    return {
        "train_s": train_s,
        "score_s": score_s,
        "corr": corr,
        "worker_peaks": worker_peaks(client),
    }


def n_rows(data: Path, step: int, train_eras: int, rows_per_era: int) -> int:
    return len(kept_eras(train_eras, step)) * rows_per_era


# -- main -------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--worker-memory", default="1GiB")
    parser.add_argument("--features", type=int, default=400)
    parser.add_argument("--rows-per-era", type=int, default=5000)
    parser.add_argument("--train-eras", type=int, default=880)
    parser.add_argument("--valid-eras", type=int, default=40)
    parser.add_argument("--subset-step", type=int, default=4, help="local run: every n-th era")
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, help="keep the generated data here")
    parser.add_argument(
        "--with-lightgbm-dask",
        action="store_true",
        help="also train with DaskLGBMRegressor on the subset",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            out, rpe, te, ve, f, g = rest
            print(json.dumps(generate(Path(out), int(rpe), int(te), int(ve), int(f), int(g))))
        else:
            data, te, step, f, trees = rest
            print(json.dumps(local_run(Path(data), int(te), int(step), int(f), int(trees))))
        return
    if args.quick:
        args.features, args.rows_per_era, args.train_eras, args.valid_eras = 40, 500, 120, 20
        args.trees = 5

    sys.path.insert(0, str(ROOT))
    from dask.utils import parse_bytes

    import nbutils.dask as de

    limit = parse_bytes(args.worker_memory)
    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="bench_dask_")
    data = (args.data_dir or Path(tmp)) / "v5.2"
    payload = args.rows_per_era * args.train_eras * args.features
    try:
        start = time.perf_counter()
        gen = run_child(
            "generate",
            str(data),
            str(args.rows_per_era),
            str(args.train_eras),
            str(args.valid_eras),
            str(args.features),
            str(max(1, 50_000 // args.rows_per_era)),
        )
        gen_s = time.perf_counter() - start
        local = run_child(
            "local",
            str(data),
            str(args.train_eras),
            str(args.subset_step),
            str(args.features),
            str(args.trees),
        )
        client = de.connect(
            n_workers=args.workers, memory_limit=args.worker_memory, dashboard_address=None
        )
        try:
            runs = [("dask stream, subset", args.subset_step, "stream")]
            if args.with_lightgbm_dask:
                runs.append(("dask lightgbm.dask, subset", args.subset_step, "lightgbm.dask"))
            runs.append(("dask stream, all rows", 1, "stream"))
            results = []
            for label, step, method in runs:
                try:
                    results.append(
                        (
                            label,
                            step,
                            dask_run(client, data, step, args.features, args.trees, method),
                        )
                    )
                except de.DaskEngineError as err:
                    results.append((label, step, {"error": str(err).split(". ")[0]}))
        finally:
            client.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    sub_rows = n_rows(data, args.subset_step, args.train_eras, args.rows_per_era)
    print(
        f"\nLocalCluster: {args.workers} workers x {args.worker_memory} (terminated at 95%), "
        f"1 thread each; {args.trees} trees; {args.features} int8 features."
    )
    print(
        f"Generated {payload / GIB:.2f} GiB of int8 payload in {gen_s:.0f} s "
        f"(generator peak RSS {gen['peak_mib']:.0f} MiB).\n"
    )
    print(
        "| run | train rows | int8 payload | payload / worker limit | train s (incl. read) | "
        "vs local | score s | validation corr | peak RSS MiB (per process) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    sub_payload = sub_rows * args.features
    print(
        f"| local train_lgbm, subset | {sub_rows:,} | {sub_payload / GIB:.2f} GiB | "
        f"{sub_payload / limit:.2f} | {local['train_s']:.1f} | 1.00 | {local['score_s']:.1f} | "
        f"{local['corr']:.4f} | {local['peak_mib']:.0f} (one process) |"
    )
    for label, step, res in results:
        rows = n_rows(data, step, args.train_eras, args.rows_per_era)
        size = rows * args.features
        if "error" in res:
            print(
                f"| {label} | {rows:,} | {size / GIB:.2f} GiB | {size / limit:.2f} | failed: "
                f"{res['error']} | | | | |"
            )
            continue
        peaks = ", ".join(f"{p:.0f}" for p in res["worker_peaks"])
        print(
            f"| {label} | {rows:,} | {size / GIB:.2f} GiB | {size / limit:.2f} | {res['train_s']:.1f} | "
            f"{res['train_s'] / local['train_s']:.2f} | {res['score_s']:.1f} | {res['corr']:.4f} | "
            f"{peaks} (workers) |"
        )


if __name__ == "__main__":
    main()
