"""Atomic writes, natural era order and JSON artifacts."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from nbutils.util import (
    atomic_path,
    atomic_write_text,
    natural_key,
    natural_sorted,
    read_json,
    write_json,
)


def test_natural_order_of_era_labels():
    assert natural_sorted(["era10", "era2", "era1", "eraX"]) == ["era1", "era2", "era10", "eraX"]
    assert natural_sorted(["0010", "0002", "0100"]) == ["0002", "0010", "0100"]
    assert natural_key("era2") < natural_key("era10")


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half writ")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"], "temporary file removed"
    with atomic_path(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"


def test_atomic_path_creates_parent_directories(tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(target, "x")
    assert target.read_text() == "x"


def test_write_json_turns_nan_and_numpy_into_plain_json(tmp_path):
    path = write_json(
        tmp_path / "m.json",
        {"mean": np.float64(0.5), "nan": float("nan"), "n": np.int64(3), "list": (1, np.nan)},
    )
    raw = json.loads(path.read_text())
    assert raw == {"mean": 0.5, "nan": None, "n": 3, "list": [1, None]}
    assert read_json(path) == raw


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_keep_the_umask(tmp_path, umask):
    """No forced 0600: an artifact gets the mode any other file of the user gets."""
    old = os.umask(umask)
    try:
        path = write_json(tmp_path / "a.json", {"x": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
