"""Peak memory of training on int8 features: nbutils.train.train_lgbm against the plain path.

The plain path is what most notebooks do: ``lgb.Dataset(df[features].astype(float))`` then
``lgb.train``. Each path runs in a fresh subprocess on the same synthetic int8 frame (generated
with numpy, no nbutils.data needed); the child reports its peak RSS (``VmHWM``).

    python bench/bench_train.py            # 500,000 rows x 500 features, 10 trees
    python bench/bench_train.py --quick    # 50,000 x 100, smoke run

Goal (issue 4): train_lgbm's peak at most 2.5x the int8 payload (rows x features bytes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import peak_rss_mib, rss_mib

ROOT = Path(__file__).resolve().parents[1]


def child(path: str, rows: int, features: int, trees: int) -> dict:
    """Build the frame, train one way, report memory figures in MiB."""
    sys.path.insert(0, str(ROOT))
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from nbutils.train import SEED_PARAMS, lgb_params, predict, train_lgbm

    imports = rss_mib()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(rows, features), dtype=np.int8)
    names = [f"feature_{i}" for i in range(features)]
    df = pd.DataFrame(x, columns=names, copy=False)
    del x
    df["era"] = (np.arange(rows) // max(rows // 100, 1)).astype(str)
    df["target"] = np.clip(
        (df["feature_0"].to_numpy() + df["feature_1"].to_numpy()) / 8
        + rng.normal(0, 0.1, rows).astype(np.float32),
        0,
        1,
    )
    with_data = rss_mib()
    params = dict(SEED_PARAMS, n_estimators=trees)
    start = time.perf_counter()
    if path == "nbutils":
        model = train_lgbm(df, names, params=params, progress=False)
        seconds = time.perf_counter() - start
        sample = predict(model, df.iloc[:2000]).to_numpy()
    else:
        run, rounds = lgb_params(params, 0)
        ds = lgb.Dataset(df[names].astype(float), label=df["target"], params=run)
        booster = lgb.train(run, ds, num_boost_round=rounds)
        seconds = time.perf_counter() - start
        sample = booster.predict(df[names].iloc[:2000].to_numpy(np.float64))
    return {
        "predictions": sample.tolist(),
        "imports": imports,
        "with_data": with_data,
        "peak": peak_rss_mib(),
        "seconds": seconds,
    }


def run_child(path: str, rows: int, features: int, trees: int) -> dict:
    cmd = [sys.executable, __file__, "--child", path]
    cmd += ["--rows", str(rows), "--features", str(features), "--trees", str(trees)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 rows x 100 features")
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--child", choices=["nbutils", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.features = 50_000, 100
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.features, args.trees)))
        return
    payload = args.rows * args.features / 2**20
    results = {p: run_child(p, args.rows, args.features, args.trees) for p in ("plain", "nbutils")}
    print(
        f"train_lgbm peak RSS, {args.rows:,} rows x {args.features} int8 features "
        f"(payload {payload:.0f} MiB), {args.trees} trees, each path in a fresh process\n"
    )
    print(
        "| path | peak RSS (MiB) | peak / payload | (peak - imports) / payload "
        "| training peak - data (MiB) | seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    labels = {
        "plain": "`lgb.Dataset(df[features].astype(float))`",
        "nbutils": "`nbutils.train.train_lgbm`",
    }
    for path, r in results.items():
        print(
            f"| {labels[path]} | {r['peak']:.0f} | {r['peak'] / payload:.2f}x "
            f"| {(r['peak'] - r['imports']) / payload:.2f}x | {r['peak'] - r['with_data']:.0f} "
            f"| {r['seconds']:.1f} |"
        )
    ratio = results["nbutils"]["peak"] / results["plain"]["peak"]
    diff = max(
        abs(a - b)
        for a, b in zip(
            results["nbutils"]["predictions"], results["plain"]["predictions"], strict=True
        )
    )
    print(f"\nnbutils / plain peak RSS: {ratio:.2f}x (goal: nbutils peak <= 2.5x payload)")
    print(f"max |prediction difference| on 2,000 rows: {diff:.3g} (same model: 0)")


if __name__ == "__main__":
    main()
