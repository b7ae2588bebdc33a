"""Benchmark nbutils.metrics / nbutils.neutralize against numerai-tools applied per era.

The reference is what Numerai's example notebooks do: ``df.groupby("era").apply(lambda d:
numerai_tools.scoring.<score>(...))``. Both paths run on the same synthetic validation-sized
frame (default 200 eras x 5,000 rows, 300 int8 features), each in a fresh subprocess so that
its peak memory can be measured; the results of the two paths are compared.

Two kinds of predictions (``--cases``), because ranking is most of the work of CORR and MMC:

- ``continuous``: a linear signal plus Gaussian noise, no ties;
- ``ties``: LightGBM-like, the prediction is a function of 4 int8 features only (625 possible
  leaf values, about 8 rows per tied value in an era of 5,000), as a shallow tree ensemble
  gives; the meta model, an ensemble of many models, stays continuous.

CORR and MMC run on both; FNC and neutralize (whose cost is the least squares, not the ranks)
on ``continuous`` only.

    python bench/bench_metrics.py            # full size (several minutes)
    python bench/bench_metrics.py --quick    # smoke run, seconds
    python bench/bench_metrics.py --scores "numerai corr" MMC   # only these scores
    python bench/bench_metrics.py --ref-eras 40   # time the reference on 40 eras, scale up

BLAS runs single-threaded by default (``--threads``) for both paths, so that the ratio is not
an artefact of thread contention on a shared machine. The two paths run alternately
``--rounds`` times (each a fresh process: build the frame, warm up on two eras, time one call on
all of them) and the best time of each is kept, so that both see the same machine load. Peak memory is the process's peak RSS (VmHWM, reset
after the frame is built) minus its RSS before the first call. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, rss_mib  # noqa: E402

SCORES = ("numerai corr", "MMC", "FNC", "neutralize")
CASES = ("continuous", "ties")
#: Scores whose cost is ranking, measured on both cases; the others on "continuous" only.
RANKED = ("numerai corr", "MMC")
# Goals (issues 3 and 12): speed-up of nbutils over the per-era numerai-tools reference.
GOALS = {"numerai corr": 20.0, "MMC": 10.0, "FNC": 5.0, "neutralize": 5.0}


def make_frame(n_eras: int, rows: int, n_features: int, case: str = "continuous", seed: int = 0):
    """A validation-shaped frame: int8 features 0..4, 5-bin target, predictions of ``case``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = n_eras * rows
    feats = rng.integers(0, 5, size=(n, n_features), dtype=np.int8)
    names = [f"feature_{i}" for i in range(n_features)]
    df = pd.DataFrame(feats, columns=names)
    w = rng.normal(size=min(20, n_features)) * 0.05
    signal = feats[:, : len(w)] @ w
    noise = rng.normal(size=n)
    bins = np.clip(np.round(2 + 0.6 * (signal - signal.mean()) / signal.std() + noise), 0, 4)
    df["era"] = np.repeat([f"{i:04d}" for i in range(1, n_eras + 1)], rows)
    df["target"] = bins / 4
    df["meta_model"] = signal + 0.4 * rng.normal(size=n)
    if case == "ties":  # a step function of 4 features: 5**4 = 625 leaf values
        leaves = rng.normal(size=(5, 5, 5, 5)) * 0.01
        f = feats[:, :4].astype(np.intp)
        df["prediction"] = 0.5 + leaves[f[:, 0], f[:, 1], f[:, 2], f[:, 3]]
    else:
        df["prediction"] = signal + 0.5 * rng.normal(size=n)
    return df, names


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_ours(score: str, df, names):
    from nbutils import metrics
    from nbutils.neutralize import neutralize

    if score == "numerai corr":
        return metrics.per_era_corr(df)
    if score == "MMC":
        return metrics.per_era_mmc(df)
    if score == "FNC":
        return metrics.per_era_fnc(df, names)
    return neutralize(df, "prediction", names)["prediction"]


def run_reference(score: str, df, names):
    from numerai_tools import scoring as nt

    if score == "numerai corr":
        return df.groupby("era").apply(
            lambda d: nt.numerai_corr(d[["prediction"]], d["target"]).iloc[0]
        )
    if score == "MMC":
        return df.groupby("era").apply(
            lambda d: nt.correlation_contribution(
                d[["prediction"]], d["meta_model"], d["target"]
            ).iloc[0]
        )
    if score == "FNC":
        return df.groupby("era").apply(
            lambda d: nt.feature_neutral_corr(d[["prediction"]], d[names], d["target"]).iloc[0]
        )
    return (
        df.groupby("era", group_keys=False)
        .apply(lambda d: nt.neutralize(d[["prediction"]], d[names]))
        .loc[df.index, "prediction"]
    )


def child(args: argparse.Namespace) -> None:
    """Build the frame, time one path for one score, save its result, print JSON."""
    import numerai_tools.scoring  # noqa: F401
    import pandas as pd

    import nbutils.metrics  # noqa: F401  (imports are not part of the timing)
    import nbutils.neutralize  # noqa: F401

    df, names = make_frame(args.eras, args.rows, args.features, args.case)
    if args.only_eras:
        keep = sorted(df["era"].unique())[: args.only_eras]
        df = df[df["era"].isin(keep)]
    before = rss_mib()
    exact_peak = _reset_peak()
    func = run_ours if args.impl == "ours" else run_reference
    first_eras = sorted(df["era"].unique())[:2]
    func(args.score, df[df["era"].isin(first_eras)], names)  # warm-up: lazy imports, caches
    start = time.perf_counter()
    result = func(args.score, df, names)
    seconds = time.perf_counter() - start
    extra = peak_rss_mib() - before
    pd.Series(result).to_frame("value").to_parquet(args.out)
    print(json.dumps({"seconds": seconds, "peak_extra_mib": extra, "exact_peak": exact_peak}))


def spawn(
    score: str, case: str, impl: str, args: argparse.Namespace, out: Path, only_eras: int
) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    repo = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = f"{repo}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, __file__, "--child", "--score", score, "--case", case]
    cmd += ["--impl", impl, "--eras", str(args.eras), "--rows", str(args.rows)]
    cmd += ["--features", str(args.features), "--only-eras", str(only_eras), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {score} ({case}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(ours_path: Path, ref_path: Path) -> float:
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(ours_path)["value"]
    ref = pd.read_parquet(ref_path)["value"]
    ours = ours.loc[ref.index]  # the reference may cover a subset of eras
    return float(np.nanmax(np.abs(ours.to_numpy() - ref.to_numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--eras", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000, help="rows per era")
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--ref-eras", type=int, default=0, help="time the reference on N eras")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both paths")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs per path (best time kept)"
    )
    parser.add_argument("--scores", nargs="+", default=list(SCORES), choices=SCORES)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", default="continuous", help=argparse.SUPPRESS)
    parser.add_argument("--score", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--only-eras", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.eras, args.rows, args.features = 20, 1000, 50
    ref_eras = args.ref_eras if 0 < args.ref_eras < args.eras else args.eras
    scale = args.eras / ref_eras
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for score in args.scores:
            for case in args.cases if score in RANKED else ["continuous"]:
                rows.append(measure(score, case, args, Path(tmp), ref_eras, scale))
                print(f"done: {score} ({case})", file=sys.stderr)
    print_table(rows, args, ref_eras)


def measure(
    score: str, case: str, args: argparse.Namespace, tmp: Path, ref_eras: int, scale: float
) -> dict:
    """Best of ``args.rounds`` alternating runs of both paths, and their agreement."""
    ours_out, ref_out = tmp / "ours.parquet", tmp / "ref.parquet"
    ours_runs, ref_runs = [], []
    for _ in range(args.rounds):  # alternate the two paths: both see the same load
        ours_runs.append(spawn(score, case, "ours", args, ours_out, 0))
        ref_runs.append(spawn(score, case, "ref", args, ref_out, ref_eras if scale > 1 else 0))
    ours_s = min(r["seconds"] for r in ours_runs)
    ref_s = min(r["seconds"] for r in ref_runs) * scale
    return {
        "score": score,
        "case": case,
        "ours": ours_s,
        "ref": ref_s,
        "ratio": ref_s / ours_s,
        "goal": GOALS[score],
        "ours_mib": max(r["peak_extra_mib"] for r in ours_runs),
        "ref_mib": max(r["peak_extra_mib"] for r in ref_runs),
        "diff": agreement(ours_out, ref_out),
    }


def print_table(rows: list[dict], args: argparse.Namespace, ref_eras: int) -> None:
    scaled = ref_eras < args.eras
    ref_head = "numerai-tools per era (s)"
    if scaled:
        ref_head += f", timed on {ref_eras} eras x {args.eras / ref_eras:.2f}"
    print(
        f"\n{args.eras} eras x {args.rows} rows, {args.features} int8 features; "
        f"BLAS threads: {args.threads}; best of {args.rounds} alternating runs per path, each in a "
        "fresh process after a 2-era warm-up; reference = "
        "`df.groupby('era').apply(numerai_tools...)`\n"
    )
    print(
        f"| score | predictions | nbutils (s) | {ref_head} | speed-up | goal "
        "| nbutils peak extra MiB | reference peak extra MiB | max abs diff |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ok = "met" if r["ratio"] >= r["goal"] else "MISSED"
        print(
            f"| {r['score']} | {r['case']} | {r['ours']:.3f} | {r['ref']:.2f} | {r['ratio']:.1f}x | "
            f">= {r['goal']:.0f}x ({ok}) | {r['ours_mib']:.0f} | {r['ref_mib']:.0f} | "
            f"{r['diff']:.1e} |"
        )


if __name__ == "__main__":
    main()
