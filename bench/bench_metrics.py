"""Benchmark the scores at Numerai's real shapes against the references users would run instead.

References, each measured in the same run as nbutils:

- CORR, MMC, FNC, neutralize: what Numerai's example notebooks do,
  ``df.groupby("era").apply(lambda d: numerai_tools.scoring.<score>(...))``;
- ``evaluate`` (CORR, Spearman, drawdown, max feature exposure, FNC and MMC): numerblox's
  ``NumeraiClassicEvaluator.full_evaluation`` with the metrics that match those numbers, run in
  its own virtual environment (``--numerblox-python``; the row is skipped without it).

Data are made on the fly by the project's own generator (:mod:`nbutils.data.synthetic`,
validation eras: int8 features 0..4, 5-bin target, meta model), written once per shape to a
temporary parquet file that every measured process reads. Shapes (full run):

- CORR and MMC: 200 eras x 5,000 rows; predictions ``continuous`` (no ties) and ``ties``
  (LightGBM-like: a step function of 4 features, 625 values, about 8 tied rows per value in an
  era; the meta model stays continuous);
- FNC and neutralize: eras of 5,000 rows at 705 features (Numerai's medium set) and 2,376 (all
  features); nbutils on ``--wide-eras`` eras, numerai-tools on ``--wide-ref-eras`` of them, its
  time scaled to the same number of eras (the cost is per era);
- ``evaluate``: 100 eras x 5,000 rows x 50 features (numerblox needs minutes there already).

    python bench/bench_metrics.py                 # full run (35 minutes on a loaded 2-core machine)
    python bench/bench_metrics.py --quick         # smoke run at small shapes (< 60 s)
    python bench/bench_metrics.py --numerblox-python /tmp/nbx/bin/python   # with numerblox

Each path runs in a fresh process (read the frame, warm up on one era, time one call on all
eras), alternating ``--rounds`` times (``--small-rounds`` for CORR and MMC, whose calls take
well under a second and are easily hit by other jobs' load); the best time of each is kept so
both see the same load.
BLAS is single-threaded for both (``--threads``). Memory: the process's peak RSS (VmHWM, reset
after the frame is read) minus its RSS before the call. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, rss_mib  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: Goals (issue 20 for FNC, neutralize and MMC; issue 12 for CORR): speed-up over the reference.
GOALS = {"numerai corr": 20.0, "MMC": 10.0, "FNC": 10.0, "neutralize": 10.0, "evaluate": 1.0}
#: numerblox metrics that give evaluate's numbers (with benchmark_cols=["meta_model"]).
NUMERBLOX_METRICS = [
    "mean_std_sharpe",
    "legacy_mean_std_sharpe",
    "max_drawdown",
    "max_feature_exposure",
    "fn_mean_std_sharpe",
    "mc_mean_std_sharpe",
]
#: evaluate's key -> numerblox's column, compared in the "max abs diff" column.
MATCHED = {
    "numerai_corr_mean": "mean",
    "spearman_mean": "legacy_mean",
    "max_drawdown": "max_drawdown",
    "max_feature_exposure": "max_feature_exposure",
    "fnc_mean": "feature_neutral_mean",
    "mmc_mean": "mc_mean_meta_model",
}


@dataclass(frozen=True)
class Row:
    """One line of the table: a score, its predictions or width, and the shape."""

    score: str
    case: str
    eras: int
    rows: int
    features: int
    ref_eras: int  # eras the reference is timed on (its time is scaled to ``eras``)
    reference: str = "numerai-tools"


def plan_rows(args: argparse.Namespace) -> list[Row]:
    if args.quick:  # one row per score, one round: a smoke run that CI can afford
        small, wide, ev = (12, 500, 20), (4, 400, (120,)), (8, 400, 20)
        cases = {"numerai corr": ("continuous",), "MMC": ("ties",)}
    else:
        small, wide, ev = (200, 5000, 20), (args.wide_eras, 5000, (705, 2376)), (100, 5000, 50)
        cases = {"numerai corr": ("continuous", "ties"), "MMC": ("continuous", "ties")}
    rows = []
    for score, score_cases in cases.items():
        for case in score_cases:
            rows.append(Row(score, case, *small, ref_eras=small[0]))
    ref_eras = min(args.wide_ref_eras, wide[0])
    for score in ("FNC", "neutralize"):
        for width in wide[2]:
            rows.append(Row(score, f"{width} features", wide[0], wide[1], width, ref_eras))
    rows.append(Row("evaluate", "MMC + FNC", *ev, ref_eras=ev[0], reference="numerblox"))
    return [r for r in rows if r.score in args.scores]


# ------------------------------------------------------------------------------- the data


def make_frame(n_eras: int, rows: int, n_features: int, case: str, seed: int = 0):
    """Validation eras of the project's generator as one frame (features: one int8 block)."""
    import numpy as np
    import pandas as pd

    from nbutils.data.synthetic import (
        BenchmarkModels,
        SyntheticModel,
        SyntheticSizes,
        iter_split,
        make_plan,
        meta_model,
    )

    sizes = SyntheticSizes(
        n_train_eras=2, n_validation_eras=n_eras, rows_per_era=rows, n_features=n_features
    )
    plan = make_plan(sizes, SyntheticModel(), seed)
    # The meta model leans on the example predictions: the benchmark models' blend, fitted on
    # the training eras (as the data writer does).
    bench = BenchmarkModels(plan.design_columns(), plan.design_tilt())
    for block in iter_split(plan, "v5", "train"):
        bench.add(block)
    coef = bench.coef()
    n = n_eras * rows
    feats = np.empty((n, n_features), dtype=np.int8)
    eras, target, meta = [], np.empty(n), np.empty(n)
    for i, block in enumerate(iter_split(plan, "v5", "validation")):
        sl = slice(i * rows, (i + 1) * rows)
        feats[sl] = block.cols.T
        target[sl] = block.targets["target"]
        meta[sl] = meta_model(plan, block, BenchmarkModels.predict(coef, block)["blend"])
        eras.append(block.era)
    names = [f"feature_{i}" for i in range(n_features)]
    df = pd.DataFrame(feats, columns=names, copy=False)
    df.insert(0, "era", np.repeat(eras, rows))
    df["target"] = target
    df["meta_model"] = meta
    rng = np.random.default_rng(seed)
    if case == "ties":  # a step function of 4 features: 5**4 = 625 leaf values
        leaves = rng.normal(size=(5, 5, 5, 5)) * 0.05
        f = feats[:, :4].astype(np.intp)
        df["prediction"] = 0.5 + leaves[f[:, 0], f[:, 1], f[:, 2], f[:, 3]]
    else:  # the meta model plus noise, kept in (0, 1)
        df["prediction"] = 0.5 + 0.4 * np.tanh(2 * (meta - 0.5) + 0.5 * rng.normal(size=n))
    return df


# ------------------------------------------------------------------------------- the paths


def run_ours(score: str, df, names):
    from nbutils import metrics
    from nbutils.diagnostics import evaluate
    from nbutils.neutralize import neutralize

    if score == "numerai corr":
        return metrics.per_era_corr(df)
    if score == "MMC":
        return metrics.per_era_mmc(df)
    if score == "FNC":
        return metrics.per_era_fnc(df, names)
    if score == "neutralize":
        return neutralize(df, "prediction", names)["prediction"]
    out = evaluate(df, "prediction", features=names, meta_col="meta_model")
    return out[list(MATCHED)]


def run_reference(score: str, df, names):
    if score == "evaluate":
        from numerblox.evaluation import NumeraiClassicEvaluator

        evaluator = NumeraiClassicEvaluator(
            metrics_list=NUMERBLOX_METRICS, show_detailed_progress_bar=False
        )
        out = evaluator.full_evaluation(df, ["prediction"], "target", benchmark_cols=["meta_model"])
        row = out.iloc[0]
        return row[list(MATCHED.values())].set_axis(list(MATCHED)).astype(float)
    from numerai_tools import scoring as nt

    by_era = df.groupby("era")
    if score == "numerai corr":
        return by_era.apply(lambda d: nt.numerai_corr(d[["prediction"]], d["target"]).iloc[0])
    if score == "MMC":
        return by_era.apply(
            lambda d: nt.correlation_contribution(
                d[["prediction"]], d["meta_model"], d["target"]
            ).iloc[0]
        )
    if score == "FNC":
        return by_era.apply(
            lambda d: nt.feature_neutral_corr(d[["prediction"]], d[names], d["target"]).iloc[0]
        )
    return (
        df.groupby("era", group_keys=False)
        .apply(lambda d: nt.neutralize(d[["prediction"]], d[names]))
        .loc[df.index, "prediction"]
    )


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    """Read the frame, time one path for one score, save its result, print JSON."""
    import warnings

    import pandas as pd

    warnings.simplefilter("ignore")  # both paths warn about the same things; not timed
    if args.score == "evaluate" and args.impl == "ref":
        import numerblox.evaluation  # noqa: F401
    elif args.impl == "ref":
        import numerai_tools.scoring  # noqa: F401
    else:
        import nbutils.diagnostics  # noqa: F401  (imports are not part of the timing)
    df = pd.read_parquet(args.frame)
    names = [c for c in df.columns if c.startswith("feature_")]
    if args.only_eras:
        keep = sorted(df["era"].unique())[: args.only_eras]
        df = df[df["era"].isin(keep)]
    func = run_ours if args.impl == "ours" else run_reference
    if args.score != "evaluate":
        first = sorted(df["era"].unique())[:1]
        func(args.score, df[df["era"].isin(first)], names)  # warm-up: lazy imports, caches
    before = rss_mib()
    exact_peak = _reset_peak()
    start = time.perf_counter()
    result = func(args.score, df, names)
    seconds = time.perf_counter() - start
    extra = peak_rss_mib() - before
    pd.Series(result).rename("value").to_frame().to_parquet(args.out)
    print(json.dumps({"seconds": seconds, "peak_extra_mib": extra, "exact_peak": exact_peak}))


def spawn(row: Row, impl: str, args: argparse.Namespace, frame: Path, out: Path) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    python = sys.executable
    if row.reference == "numerblox" and impl == "ref":
        python = args.numerblox_python
    only = row.ref_eras if impl == "ref" and row.ref_eras < row.eras else 0
    cmd = [python, __file__, "--child", "--score", row.score, "--impl", impl]
    cmd += ["--frame", str(frame), "--only-eras", str(only), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {row.score} ({row.case}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(ours_path: Path, ref_path: Path) -> float:
    import numpy as np
    import pandas as pd

    ours = pd.read_parquet(ours_path)["value"]
    ref = pd.read_parquet(ref_path)["value"]
    ours = ours.loc[ref.index]  # the reference may cover a subset of eras
    return float(np.nanmax(np.abs(ours.to_numpy(dtype=float) - ref.to_numpy(dtype=float))))


def frame_file(row: Row, tmp: Path) -> Path:
    """The row's frame, generated once per shape (in a child process) and cached."""
    case = row.case if row.score in ("numerai corr", "MMC") else "continuous"
    path = tmp / f"frame_{row.eras}_{row.rows}_{row.features}_{case}.parquet"
    if not path.exists():
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); from bench_metrics import make_frame; "
            "make_frame(*map(int, sys.argv[2:5]), sys.argv[5]).to_parquet(sys.argv[6])"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(row.eras)]
            + [str(row.rows), str(row.features), case, str(path)],
            check=True,
            env=env,
        )
    return path


def measure(row: Row, args: argparse.Namespace, tmp: Path) -> dict:
    """Best of the alternating runs of both paths, and their agreement."""
    frame = frame_file(row, tmp)
    ours_out, ref_out = tmp / "ours.parquet", tmp / "ref.parquet"
    rounds = {"evaluate": 1, "numerai corr": args.small_rounds, "MMC": args.small_rounds}.get(
        row.score, args.rounds
    )
    ours_runs, ref_runs = [], []
    for _ in range(rounds):  # alternate the two paths: both see the same load
        ours_runs.append(spawn(row, "ours", args, frame, ours_out))
        ref_runs.append(spawn(row, "ref", args, frame, ref_out))
    scale = row.eras / row.ref_eras
    ours_s = min(r["seconds"] for r in ours_runs)
    ref_s = min(r["seconds"] for r in ref_runs) * scale
    return {
        "row": row,
        "ours": ours_s,
        "ref": ref_s,
        "ratio": ref_s / ours_s,
        "ours_mib": max(r["peak_extra_mib"] for r in ours_runs),
        "ref_mib": max(r["peak_extra_mib"] for r in ref_runs),
        "diff": agreement(ours_out, ref_out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 60 s)")
    parser.add_argument("--wide-eras", type=int, default=20, help="eras for FNC/neutralize")
    parser.add_argument(
        "--wide-ref-eras", type=int, default=4, help="eras numerai-tools is timed on (wide rows)"
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both paths")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per path")
    parser.add_argument(
        "--small-rounds", type=int, default=5, help="alternating runs per path for CORR and MMC"
    )
    parser.add_argument("--scores", nargs="+", default=list(GOALS), choices=list(GOALS))
    parser.add_argument("--numerblox-python", help="python of a venv with numerblox installed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--score", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--frame", help=argparse.SUPPRESS)
    parser.add_argument("--only-eras", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.rounds = args.small_rounds = 1
    results, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for row in plan_rows(args):
            if row.reference == "numerblox" and not args.numerblox_python:
                skipped.append(row)
                continue
            results.append(measure(row, args, Path(tmp)))
            print(f"done: {row.score} ({row.case})", file=sys.stderr)
    print_table(results, skipped, args)


def print_table(results: list[dict], skipped: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nBLAS threads: {args.threads}; best of {args.rounds} alternating runs per path "
        f"({args.small_rounds} for CORR and MMC, 1 for evaluate), each in a fresh process; times in seconds for all the row's eras "
        "(a reference timed on fewer eras is scaled up, see 'ref eras').\n"
    )
    print(
        "| score | case | eras x rows | features | nbutils (s) | reference | reference (s) "
        "| ref eras | speed-up | goal | nbutils peak extra MiB | reference peak extra MiB "
        "| max abs diff |"
    )
    print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in results:
        row: Row = r["row"]
        goal = GOALS[row.score]
        ok = "met" if r["ratio"] >= goal else "MISSED"
        if args.quick:  # the goals are for the real shapes, not the smoke run's
            ok = "not judged: --quick"
        print(
            f"| {row.score} | {row.case} | {row.eras} x {row.rows:,} | {row.features:,} "
            f"| {r['ours']:.3f} | {row.reference} | {r['ref']:.2f} | {row.ref_eras} "
            f"| {r['ratio']:.1f}x | >= {goal:g}x ({ok}) | {r['ours_mib']:.0f} | {r['ref_mib']:.0f} "
            f"| {r['diff']:.1e} |"
        )
    for row in skipped:
        print(
            f"| {row.score} | {row.case} | {row.eras} x {row.rows:,} | {row.features:,} | - "
            f"| {row.reference} | skipped (no --numerblox-python) | | | | | | |"
        )


if __name__ == "__main__":
    main()
