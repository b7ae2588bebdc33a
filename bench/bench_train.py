"""Peak memory of training on int8 features: nbutils.train.train_lgbm against the plain path.

The plain path is what most notebooks do: ``lgb.Dataset(df[features].astype(float))`` then
``lgb.train`` with the same parameters. Each path runs in a fresh subprocess on the same synthetic
int8 frame (generated with numpy, era as ``load_data`` gives it: Arrow-backed strings); the child reports
its peak RSS (``VmHWM``), and the predictions of both on 2,000 rows are compared.

    python bench/bench_train.py            # 2.75M rows x 705 features (v5 train, medium), 20 trees
    python bench/bench_train.py --quick    # 50,000 x 100, smoke run

The plain path needs a float64 copy of the matrix (8 bytes a value: 15 GB at the full shape); it is
skipped, with the reason printed, when that copy would not fit in the memory available now.
Goal (issue 20): train_lgbm's peak at most 1.5x the int8 payload (rows x features bytes).
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
    from nbutils.util import string_dtype

    imports = rss_mib()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(rows, features), dtype=np.int8)
    names = [f"feature_{i}" for i in range(features)]
    df = pd.DataFrame(x, columns=names, copy=False)
    del x
    labels = np.array([f"{e:04d}" for e in range(1, 551)])
    eras = labels[(np.arange(rows) // max(rows // 550, 1)) % 550]
    df["era"] = pd.array(eras, dtype=string_dtype())  # as load_data gives it
    del eras
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
    parser.add_argument("--rows", type=int, default=2_750_000)
    parser.add_argument("--features", type=int, default=705)
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--child", choices=["nbutils", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.features = 50_000, 100
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.features, args.trees)))
        return
    payload = args.rows * args.features / 2**20
    sys.path.insert(0, str(ROOT))
    from nbutils.data.plan import available_memory

    paths = ["nbutils"]
    plain_needs = 1.2 * args.rows * args.features * 9 / 2**20  # float64 copy, int8 frame, bins
    if plain_needs < 0.8 * available_memory() / 2**20:
        paths.insert(0, "plain")
    else:
        print(
            f"plain path skipped: it needs about {plain_needs:,.0f} MiB and "
            f"{available_memory() / 2**20:,.0f} MiB are available now\n"
        )
    results = {p: run_child(p, args.rows, args.features, args.trees) for p in paths}
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
    ours = results["nbutils"]
    print(
        f"\nnbutils peak / payload: {ours['peak'] / payload:.2f}x (goal <= 1.5x); above the "
        f"data it built on: {(ours['peak'] - ours['with_data']) / payload:.2f}x the payload"
    )
    if "plain" in results:
        ratio = ours["peak"] / results["plain"]["peak"]
        diff = max(
            abs(a - b)
            for a, b in zip(ours["predictions"], results["plain"]["predictions"], strict=True)
        )
        print(f"nbutils / plain peak RSS: {ratio:.2f}x")
        print(f"max |prediction difference| on 2,000 rows: {diff:.3g} (same model: 0)")


if __name__ == "__main__":
    main()
