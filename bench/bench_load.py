"""Peak memory and time of ``load_data`` against the tutorial's ``pd.read_csv`` + ``astype(float32)``.

Usage::

    python bench/bench_load.py            # 500,000 train rows x 500 features (about 1.3 GB of CSV)
    python bench/bench_load.py --quick    # 20,000 rows x 100 features, a smoke run

The dataset is generated once per size into ``--cache-dir`` (default ``/tmp/nbutils_bench_load``),
in both layouts from the same seed, so both hold the same rows. Each path then runs in a fresh
Python process that reports its own peak RSS (``VmHWM``) and the time of the load alone:

- tutorial: ``pd.read_csv`` of the training and the tournament CSV, then
  ``df[features] = df[features].astype(np.float32)`` (the tutorial's ``reduce_memory``);
- nbutils legacy: ``load_data`` on the same CSV files (int8 features);
- nbutils v5: ``load_data`` on the parquet files (int8 features).

Goal: nbutils' peak RSS <= 1.5 x the int8 payload (rows x features bytes) + 300 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
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


def peak_rss_mb() -> float:
    """This process's peak resident set size (``VmHWM``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    sys.path.insert(0, str(ROOT))
    from nbutils.data import load_data

    start = time.perf_counter()
    data = load_data(dataset)
    seconds = time.perf_counter() - start
    rows = len(data.train) + len(data.validation) + len(data.live)
    return {"seconds": seconds, "rows": rows, "features": len(data.features)}


def child(kind: str, dataset: str) -> None:
    """Entry point of a measuring subprocess: print one JSON line."""
    result = (run_tutorial if kind == "tutorial" else run_nbutils)(Path(dataset))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def build(cache: Path, sizes: dict) -> dict[str, Path]:
    """Both layouts of one synthetic dataset, generated once per size."""
    sys.path.insert(0, str(ROOT))
    from nbutils.data import make_synthetic_dataset

    tag = "x".join(str(sizes[k]) for k in sorted(sizes))
    out = {}
    for layout in ("v5", "legacy"):
        target = cache / tag / layout
        done = target / "complete"
        if not done.exists():
            start = time.perf_counter()
            path = make_synthetic_dataset(target, layout=layout, seed=0, **sizes)
            done.write_text(str(path))
            print(
                f"generated {layout} in {time.perf_counter() - start:.1f} s: {path}",
                file=sys.stderr,
            )
        out[layout] = Path(done.read_text())
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
        "| path | rows | features | peak RSS MB | time s | RSS vs tutorial | time vs tutorial | goal met |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in runs:
        payload_mb = r["rows"] * r["features"] / MB
        goal = 1.5 * payload_mb + 300
        met = "-" if name.startswith("tutorial") else ("yes" if r["peak_rss_mb"] <= goal else "NO")
        print(
            f"| {name} | {r['rows']:,} | {r['features']} | {r['peak_rss_mb']:,.0f} | "
            f"{r['seconds']:.1f} | {r['peak_rss_mb'] / reference['peak_rss_mb']:.2f} | "
            f"{r['seconds'] / reference['seconds']:.2f} | {met} |"
        )
    rows, features = runs[1][1]["rows"], runs[1][1]["features"]
    print(
        f"\nint8 payload {rows * features / MB:,.0f} MB; goal: peak RSS <= 1.5 x payload + 300 MB "
        f"= {1.5 * rows * features / MB + 300:,.0f} MB"
    )


if __name__ == "__main__":
    main()
