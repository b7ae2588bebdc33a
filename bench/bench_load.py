"""Peak memory and time of ``load_data`` against ``pd.read_parquet(columns=...)``, at Numerai's shape.

Usage::

    python bench/bench_load.py                     # 2.75M train rows x 705 features (v5 medium)
    python bench/bench_load.py --features 2376 --era-step 4   # the "all" width, every 4th era
    python bench/bench_load.py --quick             # 100,000 rows x 100 features, a smoke run

The v5 dataset is made once per shape with the project's generator (``make_synthetic_dataset``)
under ``--cache-dir`` (default ``/tmp/nbutils_bench``; a complete directory is reused) and read
by each path in a fresh Python process that reports its own peak RSS (``VmHWM``) and the time
of the read alone:

- peer: ``pd.read_parquet(path, columns=["id", "era", "data_type", *features, *targets])`` of
  the three splits; with ``era_step`` > 1, train is read with ``filters=[("era", "in", kept)]``
  (every ``era_step``-th era, natural order), so only the kept rows are decoded;
- nbutils: ``load_data(dataset, era_step=...)`` (int8 features, every target).

The payload is rows x features bytes (int8) of the rows kept. Goal (issue 20): nbutils' peak
RSS <= payload + 300 MiB and its time no slower than the peer's in the same run.
Memory is in MiB (2**20 bytes), as ``bench/_common.py`` reads it from ``/proc/self/status``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import peak_rss_mib, rss_mib  # noqa: E402 - after the path to the project

MIB = 1024 * 1024
#: v5 train: about 2.75M rows in 550 eras of 5,000; the medium feature set has 705 features.
FULL = {"n_train_eras": 550, "rows_per_era": 5000, "n_features": 705}
QUICK = {"n_train_eras": 20, "rows_per_era": 5000, "n_features": 100}
SPLITS = ("train", "validation", "live")


def run_peer(dataset: Path, era_step: int) -> dict:
    """``pd.read_parquet`` with column projection, then every ``era_step``-th training era."""
    import pandas as pd
    import pyarrow.parquet as pq

    from nbutils.util import natural_sorted, read_json

    imports = rss_mib()
    features = read_json(dataset / "features.json")["feature_sets"]["all"]
    start = time.perf_counter()
    rows = 0
    frames = {}
    for split in SPLITS:
        path = dataset / f"{split}.parquet"
        schema = pq.read_schema(path).names
        cols = ["era", "data_type", *features, *[c for c in schema if c.startswith("target")]]
        filters = None
        if split == "train" and era_step > 1:
            eras = pq.read_table(path, columns=["era"]).column("era").unique().to_pylist()
            filters = [("era", "in", natural_sorted(eras)[::era_step])]
        df = pd.read_parquet(path, columns=[c for c in cols if c in schema], filters=filters)
        rows += len(df)
        frames[split] = df
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows, "features": len(features), "imports": imports}


def run_nbutils(dataset: Path, era_step: int) -> dict:
    """``nbutils.data.load_data`` with its defaults (int8 features, every target)."""
    from nbutils.data import load_data

    imports = rss_mib()
    start = time.perf_counter()
    data = load_data(dataset, era_step=era_step)
    seconds = time.perf_counter() - start
    rows = len(data.train) + len(data.validation) + len(data.live)
    return {"seconds": seconds, "rows": rows, "features": len(data.features), "imports": imports}


def child(kind: str, dataset: str, era_step: str) -> None:
    """Entry point of a measuring subprocess: print one JSON line."""
    import numpy  # noqa: F401 - both paths pay for the same imports before the baseline
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    result = (run_peer if kind == "peer" else run_nbutils)(Path(dataset), int(era_step))
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


#: The peer's peak over the int8 payload it keeps: 2.78-2.81x measured at 2.9M x 705; with an era
#: filter (``era_step`` > 1) 6.53x at 2,376 features, every 4th train era (it decodes every row).
PEER_FACTOR = 2.9
PEER_FACTOR_FILTERED = 6.6


def peer_needs(dataset: Path, era_step: int) -> int:
    """Bytes the peer would need: :data:`PEER_FACTOR` times the rows it keeps x features."""
    import pyarrow.parquet as pq

    total = 0
    for split in SPLITS:
        meta = pq.ParquetFile(dataset / f"{split}.parquet").metadata
        rows = meta.num_rows // (era_step if split == "train" else 1)
        features = sum(
            1 for i in range(meta.num_columns) if meta.schema.column(i).name.startswith("feature_")
        )
        total += rows * features
    return int((PEER_FACTOR if era_step == 1 else PEER_FACTOR_FILTERED) * total)


def build(cache: Path, sizes: dict) -> Path:
    """The v5 dataset of ``sizes`` (generated on the first run, then reused)."""
    from nbutils.data import make_synthetic_dataset

    start = time.perf_counter()
    out = make_synthetic_dataset(cache, layout="v5", seed=0, **sizes)
    print(f"dataset ready in {time.perf_counter() - start:.1f} s: {out}", file=sys.stderr)
    return out


def measure(kind: str, dataset: Path, era_step: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(dataset), str(era_step)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--features", type=int, help="feature count (default 705)")
    parser.add_argument("--era-step", type=int, default=1, help="keep every n-th training era")
    parser.add_argument("--cache-dir", default="/tmp/nbutils_bench", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "DATASET", "STEP"), help="internal")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = dict(QUICK if args.quick else FULL)
    if args.features:
        sizes["n_features"] = args.features
    dataset = build(args.cache_dir, sizes)
    from nbutils.data.plan import available_memory  # here: the children do not import it

    peer = None
    needs, available = peer_needs(dataset, args.era_step), available_memory()
    if needs < 0.8 * available:
        peer = measure("peer", dataset, args.era_step)
    else:
        print(
            f"peer skipped: it needs about "
            f"{needs / MIB:,.0f} MiB (as measured: 2.9x the int8 payload it keeps, 6.6x with an "
            f"era filter); {available / MIB:,.0f} MiB are available now\n"
        )
    ours = measure("nbutils", dataset, args.era_step)
    payload = ours["rows"] * ours["features"] / MIB
    goal = payload + 300
    print(
        f"{ours['rows']:,} rows x {ours['features']} int8 features (era_step={args.era_step}), "
        f"payload {payload:,.0f} MiB; goal: peak RSS <= payload + 300 MiB = {goal:,.0f} MiB "
        "and time <= the peer's\n"
    )
    print("| path | peak RSS MiB | peak / payload | time s | RSS vs peer | time vs peer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [("`pd.read_parquet(columns=...)`", peer), ("nbutils `load_data` (int8)", ours)]
    for name, r in rows:
        if r is None:
            print(f"| {name} | skipped (memory) | | | | |")
            continue
        vs = (
            f"{r['peak_rss_mib'] / peer['peak_rss_mib']:.2f} | {r['seconds'] / peer['seconds']:.2f}"
            if peer
            else "| "
        )
        print(
            f"| {name} | {r['peak_rss_mib']:,.0f} | {r['peak_rss_mib'] / payload:.2f}x | "
            f"{r['seconds']:.1f} | {vs} |"
        )
    met_rss = ours["peak_rss_mib"] <= goal
    met_time = peer is not None and ours["seconds"] <= peer["seconds"]
    print(
        f"\nmemory goal {'met' if met_rss else 'NOT met'} "
        f"({ours['peak_rss_mib'] - payload:,.0f} MiB above the payload, of which "
        f"{ours['imports']:,.0f} MiB are the interpreter and imports); "
        f"time goal {'met' if met_time else 'NOT met' if peer else 'not measured (no peer)'}"
    )


if __name__ == "__main__":
    main()
