"""The minimum versions: requirements.txt and nbutils.versions agree, and an old dependency is
named as such (package, release found, minimum), never reported as something else."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

from nbutils import versions
from nbutils.errors import DependencyError

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9.]+)", line)
            assert match, f"requirements.txt: {line!r} is not 'name>=minimum'"
            found[match.group(1)] = match.group(3)
    return found


def _fake_versions(monkeypatch, **releases: str | None) -> None:
    """``metadata.version`` answers ``releases`` (None: not installed) for the named packages."""
    real = metadata.version

    def version(name: str) -> str:
        key = name.replace("-", "_")
        if key in releases:
            if releases[key] is None:
                raise metadata.PackageNotFoundError(name)
            return releases[key]
        return real(name)

    monkeypatch.setattr(metadata, "version", version)


def test_minimums_are_requirements_txt():
    assert {name: minimum for name, (minimum, _) in versions.MINIMUMS.items()} == _requirements()


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("2.2.3", (2, 2, 3)),
        ("2.0", (2,)),
        ("2.0.0", (2,)),
        ("2025.4.0", (2025, 4)),
        ("2.2.3rc1", (2, 2, 3)),
        ("1.26.4+cpu", (1, 26, 4)),
        ("7.10", (7, 10)),
    ],
)
def test_release_is_the_leading_numbers(text, numbers):
    assert versions.release(text) == numbers


def test_release_orders_as_pip_does_for_plain_releases():
    assert versions.release("2.2.2") > versions.release("2.2")
    assert versions.release("7.10") > versions.release("7.9")
    assert versions.release("2.19.1") < versions.release("2.23")
    assert versions.release("2.0.0") == versions.release("2")


def test_require_accepts_the_minimum_and_newer(monkeypatch):
    _fake_versions(monkeypatch, numerapi="2.23.0", pandas="3.1.1")
    versions.require("numerapi", "pandas")


def test_require_names_an_old_package_its_minimum_and_the_fix(monkeypatch):
    _fake_versions(monkeypatch, numerapi="2.19.1")
    with pytest.raises(DependencyError) as info:
        versions.require("pandas", "numerapi")
    text = str(info.value)
    assert "numerapi 2.19.1 is installed" in text and "numerapi>=2.23" in text
    assert "list_rounds" in text and "pip install -U 'numerapi>=2.23'" in text


def test_require_names_a_missing_package(monkeypatch):
    _fake_versions(monkeypatch, numerai_tools=None)
    with pytest.raises(DependencyError, match=r"numerai-tools is not installed.*>=0\.6"):
        versions.require("numerai-tools")


def test_the_report_and_exact_mode(monkeypatch, capsys):
    minimums = {name.replace("-", "_"): m for name, (m, _) in versions.MINIMUMS.items()}
    _fake_versions(monkeypatch, **minimums)
    assert versions.main(["--exact"]) == 0
    assert capsys.readouterr().out.count(" minimum\n") == len(versions.MINIMUMS)
    _fake_versions(monkeypatch, **{**minimums, "numpy": "2.4.6"})
    assert versions.main([]) == 0  # newer is fine
    assert versions.main(["--exact"]) == 1  # but not the lowest job's exact minimums
    assert "numpy" in capsys.readouterr().err
    _fake_versions(monkeypatch, **{**minimums, "pandas": "2.1.4"})
    assert versions.main([]) == 1
    assert "TOO OLD" in capsys.readouterr().out


def test_an_old_numerai_tools_is_named_before_the_submission_checks(monkeypatch):
    import pandas as pd

    from nbutils.submission import check_shape

    _fake_versions(monkeypatch, numerai_tools="0.2.2")
    frame = pd.DataFrame({"id": ["a", "b"], "prediction": [0.2, 0.8]})
    with pytest.raises(DependencyError, match=r"numerai-tools 0\.2\.2 .*numerai-tools>=0\.6"):
        check_shape(frame)


def test_an_old_numerapi_is_not_a_server_error(fake_numerai, monkeypatch, tmp_path, capsys):
    """numerapi 2.19 has no list_rounds: submit said "server error" (exit 5) for the
    AttributeError. Every daily command makes its client through make_client, which now names
    numerapi and its minimum (exit 1); ``scores`` is the one that needs no finished run."""
    from nbutils.run.pipeline import main

    _fake_versions(monkeypatch, numerapi="2.19.1")
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBversions")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECversions")
    monkeypatch.chdir(tmp_path)
    code = main(["scores", "--model-name", "my_model", "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "numerapi 2.19.1 is installed" in err and "numerapi>=2.23" in err
    assert "server error" not in err


# -- pandas 2 and 3 write the same synthetic files ------------------------------------------------
def test_the_synthetic_schema_is_the_same_under_pandas_2_and_3(tmp_path):
    """pandas 2 made the empty ``dtype="str"`` columns of the schema object dtype, which Arrow
    typed null: writing the eras failed with ``ArrowInvalid: Invalid null value`` (notebook 01 on
    pandas 2.2/2.3). pandas 3 described them as numpy ``str``. Now both give string columns
    described as pandas 2 describes strings, as Numerai's files are."""
    import json

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nbutils.data.write import _pandas_schema

    schema = _pandas_schema({"era": "str", "target": "float32"})
    assert [schema.field(n).type for n in ("era", "target", "id")] == [
        pa.string(),
        pa.float32(),
        pa.string(),
    ]
    meta = json.loads(schema.metadata[b"pandas"])
    described = {c["name"]: (c["pandas_type"], c["numpy_type"]) for c in meta["columns"]}
    assert described == {
        "era": ("unicode", "object"),
        "target": ("float32", "float32"),
        "id": ("unicode", "object"),
    }
    assert meta["index_columns"] == ["id"]
    assert "pandas_version" not in meta and "attributes" not in meta
    columns = [
        pa.array(["0001", "0002"]),
        pa.array([0.25, 0.75], pa.float32()),
        pa.array(["a", "b"]),
    ]
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), tmp_path / "x.parquet")
    back = pd.read_parquet(tmp_path / "x.parquet")
    assert back.index.name == "id" and list(back.index) == ["a", "b"]
    assert list(back["era"]) == ["0001", "0002"] and back["target"].dtype == "float32"
