"""nbutils.data.plan: predicted peaks against measured ones (VmHWM of a subprocess).

Each measurement runs in a fresh interpreter: it imports the stack, records its resident size as
the baseline, loads with ``load_data`` (peak = load), then adds notebook 02's default feature spec
and trains with ``train_lgbm`` as notebook 03 does (peak = training). The plan gets the same
baseline and must be within 25% of each peak and never below it by more than 10%.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest

from nbutils.data import (
    TINY_SIZES,
    check_fits,
    check_memory,
    make_synthetic_dataset,
    plan_memory,
    smaller_choices,
)
from nbutils.data.plan import (
    CHECK_ROWS,
    LEGACY_SKIP,
    NOTEBOOK_01,
    NOTEBOOK_02,
    NOTEBOOK_03,
    QUICK_ROWS,
    current_hwm,
)
from nbutils.errors import DataError

MEASURE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:" if sys.argv[5] == "rss" else "VmHWM:"):
                return int(line.split()[1]) * 1024

    import lightgbm, numpy, pandas, pyarrow.parquet
    from nbutils.data import load_data
    from nbutils.features import FeatureSpec
    from nbutils.train import train_lgbm

    base = hwm()
    data = load_data(sys.argv[1], feature_set=sys.argv[2], era_step=int(sys.argv[3]),
                     dtype=sys.argv[4])
    load_peak = hwm()
    spec = FeatureSpec(group_stats=True, interactions=data.features[:3])
    train_df, features = spec.apply(data.train, data.feature_groups)
    params = {"n_estimators": 3, "learning_rate": 0.1, "num_leaves": 31, "max_depth": 5}
    train_lgbm(train_df, features, params=params, progress=False)
    print(json.dumps({"base": base, "load": load_peak, "train": hwm()}))
    """
)


#: notebook 02's steps on the loaded data: the group statistics added and scored, every feature
#: scored per era, the interactions, and the group-statistics comparison on at most QUICK_ROWS
#: training rows (whole eras) predicted on the validation rows with their statistics
MEASURE_02 = textwrap.dedent(
    """
    import json, math, sys
    from pathlib import Path

    def hwm():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

    import lightgbm, numpy, pandas, pyarrow.parquet
    from nbutils.data import load_data
    from nbutils.data.plan import QUICK_ROWS
    from nbutils.features import add_group_stats, add_interactions
    from nbutils.metrics import per_era_corr
    from nbutils.train import SEED_PARAMS, predict, train_lgbm

    base = hwm()
    data = load_data(sys.argv[1], feature_set=sys.argv[2], era_step=int(sys.argv[3]),
                     dtype=sys.argv[4])
    load_peak = hwm()
    stats = add_group_stats(data.train, data.feature_groups)
    stat_cols = [c for c in stats.columns if c not in data.train.columns]
    scored = stats[["era", "target"]].join(stats[stat_cols].fillna(0.0))
    per_era_corr(scored, pred_col=stat_cols)
    corr = per_era_corr(data.train, pred_col=data.features).mean()
    chosen = corr.abs().sort_values(ascending=False).index[:3].tolist()
    inter = add_interactions(data.train, chosen)
    per_era_corr(inter, pred_col=[c for c in inter.columns if c not in data.train.columns])
    eras = data.train["era"].unique()
    rows = data.train["era"].isin(eras[:: max(1, math.ceil(len(data.train) / QUICK_ROWS))])
    with_stats = add_group_stats(data.validation, data.feature_groups)
    params = {**SEED_PARAMS, "n_estimators": 5}
    for train, valid, cols in ((data.train[rows], data.validation, data.features),
                               (stats[rows], with_stats, [*data.features, *stat_cols])):
        predict(train_lgbm(train, cols, params=params, progress=False), valid)
    print(json.dumps({"base": base, "load": load_peak, "features": hwm()}))
    """
)


def measure(dataset, feature_set, era_step, dtype, script=MEASURE):
    done = subprocess.run(
        [sys.executable, "-c", script, str(dataset), feature_set, str(era_step), dtype, "hwm"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    wide = make_synthetic_dataset(
        root / "wide",
        n_train_eras=40,
        rows_per_era=2500,
        n_features=400,
        n_validation_eras=10,
        n_live=2500,
    )
    long = make_synthetic_dataset(
        root / "long",
        n_train_eras=80,
        rows_per_era=5000,
        n_features=200,
        n_validation_eras=20,
        n_live=5000,
    )
    return {"wide": wide, "long": long}


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

CASES = [
    ("wide", "all", 1, "int8"),
    ("wide", "medium", 2, "float32"),
    ("long", "all", 4, "int8"),
    ("long", "small", 1, "int8"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "feature_set", "era_step", "dtype"), CASES)
def test_prediction_is_close_to_the_measured_peaks(shapes, shape, feature_set, era_step, dtype):
    measured = measure(shapes[shape], feature_set, era_step, dtype)
    plan = plan_memory(shapes[shape], feature_set, era_step, dtype, baseline=measured["base"])
    for predicted, peak in (
        (plan.load_bytes, measured["load"]),
        (plan.train_bytes, measured["train"]),
    ):
        ratio = predicted / peak
        assert 0.90 <= ratio <= 1.25, (shape, feature_set, era_step, dtype, predicted, peak)
    # the data is a real part of each peak, not hidden under the interpreter's baseline
    assert measured["train"] - measured["base"] > 0.3 * measured["train"]


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "feature_set", "era_step", "dtype"), CASES[::2])
def test_notebook_02s_prediction_is_at_or_above_its_measured_peak(
    shapes, shape, feature_set, era_step, dtype
):
    """Notebook 02 loads the data again, then scores every feature and compares the group
    statistics: the plan's 02 peak is never below the measured one, and within 25% of it."""
    measured = measure(shapes[shape], feature_set, era_step, dtype, MEASURE_02)
    plan = plan_memory(shapes[shape], feature_set, era_step, dtype, baseline=measured["base"])
    ratio = plan.peaks[NOTEBOOK_02] / measured["features"]
    assert 1.0 <= ratio <= 1.25, (shape, plan.peaks[NOTEBOOK_02], measured)
    assert measured["features"] > measured["load"]  # 02 adds to the load, it is not the load


def test_notebook_02s_comparison_rows_are_the_plans(tmp_path):
    """The plan counts notebook 02's comparison at QUICK_ROWS rows: the notebook uses that."""
    source = "".join(
        cell.source
        for cell in nbformat.read(NOTEBOOKS / NOTEBOOK_02, as_version=4).cells
        if cell.cell_type == "code"
    )
    assert f"QUICK_ROWS = {QUICK_ROWS:_}" in source


def test_notebook_03s_check_rows_are_the_plans():
    """The plan counts notebook 03's tutorial check at CHECK_ROWS rows: the notebook uses that."""
    source = "".join(
        cell.source
        for cell in nbformat.read(NOTEBOOKS / NOTEBOOK_03, as_version=4).cells
        if cell.cell_type == "code"
    )
    assert f"check_rows = 20, {CHECK_ROWS:_}" in source


def test_a_notebook_that_would_not_fit_is_named_and_nothing_is_loaded(tiny_v5_dir, monkeypatch):
    """01 stops before loading when a later notebook's peak would not fit: the message names
    that notebook and its need, and not a notebook that fits."""

    def refuse(*args, **kwargs):
        raise AssertionError("check_memory loaded data")

    monkeypatch.setattr(pq, "read_table", refuse)
    plan = plan_memory(tiny_v5_dir, "all", 1, "int8", baseline=0)
    peaks = plan.peaks
    assert set(peaks) == {NOTEBOOK_01, NOTEBOOK_02, NOTEBOOK_03}
    assert plan.peak_bytes == max(peaks.values()) and peaks[plan.largest] == plan.peak_bytes
    assert peaks[NOTEBOOK_02] > peaks[NOTEBOOK_01]  # 02 loads, then adds its own work
    available = peaks[NOTEBOOK_01] + 1
    with pytest.raises(DataError, match="does not fit") as info:
        check_fits(plan, available=available)
    text = str(info.value)
    assert f"{NOTEBOOK_02} ({peaks[NOTEBOOK_02] / 2**20:,.0f} MiB)" in text
    assert f"{NOTEBOOK_01} (" not in text and "nothing is loaded" in text


def test_the_plan_counts_what_the_kernel_already_reached(tiny_v5_dir):
    """Notebook 01's own peak is at least what its kernel has reached before the plan (e.g.
    while generating the synthetic data): VmHWM, not only the load to come."""
    plan = plan_memory(tiny_v5_dir, "all", 1, "int8")
    assert plan.load_bytes >= current_hwm() > 0
    assert plan_memory(tiny_v5_dir, "all", 1, "int8", baseline=0).load_bytes < current_hwm()


def test_plan_reads_only_features_json_and_the_footers(tiny_v5_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plan_memory read data pages")

    for name in ("read", "read_row_group", "iter_batches", "read_row_groups"):
        monkeypatch.setattr(pq.ParquetFile, name, refuse)
    monkeypatch.setattr(pq, "read_table", refuse)
    plan = plan_memory(tiny_v5_dir, "all", 1, "int8", baseline=0)
    n_train = TINY_SIZES["n_train_eras"] * TINY_SIZES["rows_per_era"]
    assert plan.rows == {
        "train": n_train,
        # validation.parquet holds the validation eras and the test eras after them
        "validation": (TINY_SIZES["n_validation_eras"] + TINY_SIZES["n_test_eras"])
        * TINY_SIZES["rows_per_era"],
        "live": TINY_SIZES["n_live"],
    }
    assert plan.n_features == TINY_SIZES["n_features"]
    assert plan_memory(tiny_v5_dir, "all", 4, "int8", baseline=0).rows["train"] == n_train // 4


def test_smaller_choices_are_smaller_and_bigger_choices_cost_more(tiny_v5_dir):
    full = plan_memory(tiny_v5_dir, "all", 1, "int8", baseline=0)
    assert plan_memory(tiny_v5_dir, "small", 1, "int8", baseline=0).peak_bytes < full.peak_bytes
    assert plan_memory(tiny_v5_dir, "all", 1, "float32", baseline=0).load_bytes > full.load_bytes
    assert plan_memory(tiny_v5_dir, "all", 2, "int8", baseline=0).train_bytes < full.train_bytes


def test_check_fits_passes_or_names_choices_that_fit(tiny_v5_dir):
    full = plan_memory(tiny_v5_dir, "all", 1, "int8", baseline=0)
    assert "predicted peak" in check_fits(full, available=full.peak_bytes)
    small = plan_memory(tiny_v5_dir, "small", 1, "int8", baseline=0)
    budget = (small.peak_bytes + full.peak_bytes) // 2
    options = smaller_choices(full, budget)
    assert options and all(o.peak_bytes <= budget for o in options)
    with pytest.raises(DataError, match="does not fit") as info:
        check_fits(full, available=budget)
    assert "feature_set=" in str(info.value) and "era_step=" in str(info.value)
    with pytest.raises(DataError, match="more memory"):
        check_fits(full, available=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"feature_set": "huge"}, "unknown feature_set 'huge'"),
        ({"feature_set": []}, "non-empty list"),
        ({"era_step": 0}, "era_step=0"),
        ({"era_step": True}, "era_step=True"),
        ({"dtype": "float64"}, "dtype='float64'"),
        ({"engine": "spark"}, "engine='spark'"),
    ],
)
def test_bad_choices_are_refused(tiny_v5_dir, kwargs, match):
    with pytest.raises(DataError, match=match):
        plan_memory(tiny_v5_dir, **kwargs)


def test_a_version_must_be_downloaded_and_legacy_is_refused(tmp_path, tiny_legacy_dir):
    with pytest.raises(DataError, match=r"'v5\.9' is not downloaded"):
        plan_memory("v5.9", data_root=tmp_path)
    with pytest.raises(DataError, match="v5 layout only"):
        plan_memory(tiny_legacy_dir)


def test_a_downloaded_version_is_found_under_data_root(tmp_path, tiny_v5_dir):
    import shutil

    shutil.copytree(tiny_v5_dir, tmp_path / "numerai" / "v5.2")
    assert plan_memory("v5.2", data_root=tmp_path, baseline=0).rows["live"] == TINY_SIZES["n_live"]


def test_dask_engine_plans_without_the_local_sample(tiny_v5_dir):
    plan = plan_memory(tiny_v5_dir, engine="dask", baseline=0)
    assert plan.engine == "dask" and any("dask" in n for n in plan.notes)


def test_notebook_01s_check_prints_the_plan_beside_the_available_memory(tiny_v5_dir):
    text = check_memory(tiny_v5_dir.parent, "all", 1, available=2**40)
    assert "predicted peak" in text and "available: 1,048,576 MiB" in text


def test_notebook_01s_check_stops_before_loading_when_the_choice_does_not_fit(
    tiny_v5_dir, monkeypatch
):
    def refuse(*args, **kwargs):
        raise AssertionError("check_memory loaded data")

    monkeypatch.setattr(pq, "read_table", refuse)
    with pytest.raises(DataError, match="does not fit.*Set them in the parameters cell"):
        check_memory(tiny_v5_dir, "all", 1, available=1)


def test_notebook_01s_check_skips_the_legacy_layout(tiny_legacy_dir):
    assert check_memory(tiny_legacy_dir, "all", 1, available=1) == LEGACY_SKIP
    assert "省きます" in LEGACY_SKIP and "skipped" in LEGACY_SKIP


# -- the container's limit (issue 21): cgroup v2 and v1, fake files under tmp_path ---------------
MIB = 1024**2


def fake_meminfo(tmp_path, available_mib: int):
    path = tmp_path / "meminfo"
    path.write_text(
        f"MemTotal:       {24 * 1024 * 1024} kB\nMemAvailable:   {available_mib * 1024} kB\n"
    )
    return path


def fake_cgroup_v2(root, limit: str, current: int, inactive_file: int = 0, sub: str = ""):
    directory = root / sub.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memory.max").write_text(limit + "\n")
    (directory / "memory.current").write_text(f"{current}\n")
    (directory / "memory.stat").write_text(f"anon 1\ninactive_file {inactive_file}\n")
    return root


def fake_cgroup_v1(root, limit: int, usage: int, inactive_file: int = 0, sub: str = ""):
    directory = root / "memory" / sub.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (directory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (directory / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {inactive_file}\n")
    return root


def headroom(tmp_path, root, proc: str = ""):
    from nbutils.data import memory_headroom

    proc_cgroup = tmp_path / "proc_self_cgroup"
    proc_cgroup.write_text(proc)
    return memory_headroom(fake_meminfo(tmp_path, 20_984), root, proc_cgroup)


def test_a_cgroup_v1_limit_below_the_host_is_used_and_named(tmp_path):
    """The issue's case: a 600 MiB cgroup v1 limit on a host with 20,984 MiB available."""
    root = fake_cgroup_v1(tmp_path / "cg", 600 * MIB, 100 * MIB)
    got = headroom(tmp_path, root)
    assert got.available == 500 * MIB and got.source == "cgroup v1"
    assert "cgroup v1 limit 600 MiB - used 100 MiB = 500 MiB" in got.detail
    assert "20,984 MiB" in got.detail


def test_a_cgroup_v2_limit_counts_the_droppable_page_cache_as_free(tmp_path):
    root = fake_cgroup_v2(tmp_path / "cg", str(1000 * MIB), 700 * MIB, inactive_file=200 * MIB)
    got = headroom(tmp_path, root)
    assert got.available == 500 * MIB and got.source == "cgroup v2"


def test_the_host_is_used_when_it_has_less_or_there_is_no_limit(tmp_path):
    big = fake_cgroup_v2(tmp_path / "big", str(64 * 1024 * MIB), 0)
    got = headroom(tmp_path, big)
    assert got.available == 20_984 * MIB and got.source == "host"
    assert "（cgroup v2 limit" in got.detail and got.detail.endswith("より小さい）")
    unlimited_v2 = fake_cgroup_v2(tmp_path / "max", "max", 100 * MIB)
    assert headroom(tmp_path, unlimited_v2).source == "host"
    unlimited_v1 = fake_cgroup_v1(tmp_path / "v1max", 9223372036854771712, 100 * MIB)
    assert headroom(tmp_path, unlimited_v1).source == "host"
    assert "コンテナのメモリ上限なし" in headroom(tmp_path, tmp_path / "none").detail


def test_the_process_own_cgroup_is_read_on_a_host(tmp_path):
    """Outside a container the process's cgroup is a subdirectory named in /proc/self/cgroup."""
    root = fake_cgroup_v2(tmp_path / "cg", "max", 0)
    fake_cgroup_v2(root, str(800 * MIB), 300 * MIB, sub="/user.slice/job.scope")
    got = headroom(tmp_path, root, "0::/user.slice/job.scope\n")
    assert got.available == 500 * MIB and got.source == "cgroup v2"
    v1 = fake_cgroup_v1(tmp_path / "v1", 9223372036854771712, 0)
    fake_cgroup_v1(v1, 700 * MIB, 100 * MIB, sub="/docker/abc")
    got = headroom(tmp_path, v1, "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    assert got.available == 600 * MIB and got.source == "cgroup v1"


def test_notebook_01s_check_refuses_what_does_not_fit_in_the_container(
    tiny_v5_dir, tmp_path, monkeypatch
):
    """check_memory with no explicit number: the cgroup's headroom decides, and is named."""
    from nbutils.data import plan as plan_module

    plan = plan_memory(tiny_v5_dir, "all", 1, "int8")
    # a limit leaving less than the plan needs on top of the process's baseline
    limit = plan.peak_bytes - plan.baseline - 5 * MIB + 100 * MIB
    monkeypatch.setattr(plan_module, "MEMINFO", fake_meminfo(tmp_path, 20_984))
    monkeypatch.setattr(
        plan_module, "CGROUP_ROOT", fake_cgroup_v1(tmp_path / "cg", limit, 100 * MIB)
    )
    monkeypatch.setattr(plan_module, "PROC_CGROUP", tmp_path / "absent")
    with pytest.raises(
        DataError, match=r"MiB \+ cgroup v1 limit .*（host MemAvailable .* より小さい）"
    ) as info:
        check_fits(plan)
    assert "does not fit" in str(info.value)
    monkeypatch.setattr(
        plan_module, "CGROUP_ROOT", fake_cgroup_v1(tmp_path / "ok", 2**40, 100 * MIB)
    )
    assert "MiB + host MemAvailable 20,984 MiB（cgroup v1" in check_fits(plan)


GENERATE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    def vm(key):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    from nbutils.data import make_synthetic_dataset

    base = vm("VmRSS")
    make_synthetic_dataset(Path(sys.argv[1]), n_train_eras=40, rows_per_era=2500,
                           n_features=300, n_validation_eras=10)
    print(json.dumps({"base": base, "rss": vm("VmRSS"), "hwm": vm("VmHWM")}))
    """
)


@pytest.mark.slow
def test_generating_the_synthetic_data_hands_its_memory_back(tmp_path):
    """Notebook 01 plans with the kernel's resident size right after make_synthetic_dataset as
    the baseline: the generator's freed pages must not stay in it (they did: 116 of 141 MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", GENERATE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    m = json.loads(done.stdout.strip().splitlines()[-1])
    assert m["hwm"] - m["base"] > 50 * 2**20  # the generation did use memory
    assert m["rss"] - m["base"] < 0.5 * (m["hwm"] - m["base"]), m


def test_the_plans_training_block_is_the_trainers():
    """The plan's blocked Dataset term uses the block size nbutils.train builds with."""
    from nbutils import train
    from nbutils.data import plan

    assert plan.TRAIN_BLOCK_BYTES == train.BLOCK_BYTES
