"""Peak memory and time of ``load_data`` against the tutorial's ``pd.read_csv`` + ``astype(float32)``.

Usage::

    python bench/bench_load.py            # 500,000 train rows x 500 features (about 1.3 GB of CSV)
    python bench/bench_load.py --quick    # 20,000 rows x 100 features, a smoke run

The dataset is generated once per size into ``--cache-dir`` (default ``/tmp/nbutils_bench_load``;
``make_synthetic_dataset`` keys its directory by seed and sizes and reuses a complete one), in both
layouts from the same seed, so both hold the same rows. Each path then runs in a fresh
Python process that reports its own peak RSS (``VmHWM``) and the time of the load alone:

- tutorial: ``pd.read_csv`` of the training and the tournament CSV, then
  ``df[features] = df[features].astype(np.float32)`` (the tutorial's ``reduce_memory``);
- nbutils legacy: ``load_data`` on the same CSV files (int8 features);
- nbutils v5: ``load_data`` on the parquet files (int8 features).

Goal: nbutils' peak RSS <= 1.5 x the int8 payload (rows x features bytes) + 300 MiB.
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

from bench._common import peak_rss_mib  # noqa: E402 - after the path to the project

MIB = 1024 * 1024
FULL = {
    "n_train_eras": 100,
    "rows_per_era": 5000,
    "n_validation_eras": 4,
    "n_test_eras": 1,
    "n_live": 5000,
    "n_features": 500,
}
QUICK = {
    "n_train_eras": 10,
    "rows_per_era": 2000,
    "n_validation_eras": 2,
    "n_test_eras": 1,
    "n_live": 500,
    "n_features": 100,
}


def run_tutorial(dataset: Path) -> dict:
    """The tutorial's path: read both CSV files with pandas, then cast the features to float32."""
    import numpy as np
    import pandas as pd

    start = time.perf_counter()
    rows = 0
    frames = []
    for name in ("numerai_training_data.csv", "numerai_tournament_data.csv"):
        df = pd.read_csv(dataset / name)
        features = [c for c in df.columns if c.startswith("feature_")]
        df[features] = df[features].astype(np.float32)
        rows += len(df)
        frames.append(df)
    return {"seconds": time.perf_counter() - start, "rows": rows, "features": len(features)}


def run_nbutils(dataset: Path) -> dict:
    """``nbutils.data.load_data`` with its defaults (int8 features, every era)."""
    from nbutils.data import load_data

    start = time.perf_counter()
    data = load_data(dataset)
    seconds = time.perf_counter() - start
    rows = len(data.train) + len(data.validation) + len(data.live)
    return {"seconds": seconds, "rows": rows, "features": len(data.features)}


def child(kind: str, dataset: str) -> None:
    """Entry point of a measuring subprocess: print one JSON line."""
    result = (run_tutorial if kind == "tutorial" else run_nbutils)(Path(dataset))
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def build(cache: Path, sizes: dict) -> dict[str, Path]:
    """Both layouts of one synthetic dataset (generated on the first run, then reused)."""
    from nbutils.data import make_synthetic_dataset

    out = {}
    for layout in ("v5", "legacy"):
        start = time.perf_counter()
        out[layout] = make_synthetic_dataset(cache, layout=layout, seed=0, **sizes)
        seconds = time.perf_counter() - start
        print(f"{layout} dataset ready in {seconds:.1f} s: {out[layout]}", file=sys.stderr)
    return out


def measure(kind: str, dataset: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(dataset)],
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
    parser.add_argument("--cache-dir", default="/tmp/nbutils_bench_load", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = QUICK if args.quick else FULL
    datasets = build(args.cache_dir, sizes)
    runs = [
        ("tutorial: pd.read_csv + astype(float32)", measure("tutorial", datasets["legacy"])),
        ("nbutils load_data, legacy CSV (int8)", measure("nbutils", datasets["legacy"])),
        ("nbutils load_data, v5 parquet (int8)", measure("nbutils", datasets["v5"])),
    ]
    reference = runs[0][1]
    print(
        "| path | rows | features | peak RSS MiB | time s | RSS vs tutorial | time vs tutorial | goal met |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in runs:
        payload_mib = r["rows"] * r["features"] / MIB
        goal = 1.5 * payload_mib + 300
        met = "-" if name.startswith("tutorial") else ("yes" if r["peak_rss_mib"] <= goal else "NO")
        print(
            f"| {name} | {r['rows']:,} | {r['features']} | {r['peak_rss_mib']:,.0f} | "
            f"{r['seconds']:.1f} | {r['peak_rss_mib'] / reference['peak_rss_mib']:.2f} | "
            f"{r['seconds'] / reference['seconds']:.2f} | {met} |"
        )
    rows, features = runs[1][1]["rows"], runs[1][1]["features"]
    print(
        f"\nint8 payload {rows * features / MIB:,.0f} MiB; goal: peak RSS <= 1.5 x payload + "
        f"300 MiB = {1.5 * rows * features / MIB + 300:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
