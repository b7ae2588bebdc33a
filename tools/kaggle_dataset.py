"""Build the folder that installs nbutils on Kaggle with Internet off (``make kaggle-dataset``).

Usage::

    python tools/kaggle_dataset.py                      # dist/kaggle-dataset, for Kaggle's Python
    python tools/kaggle_dataset.py --out DIR --python-version 3.11

The folder holds the nbutils wheel (the nine notebooks inside) and a wheel of every package it
depends on, directly or not, for Kaggle's image: CPython ``--python-version`` (default 3.12, see
docs/versions.md) on x86-64 Linux (manylinux). Every runtime dependency is included, also those the
image already has: pip keeps an installed release that satisfies requirements.txt and takes from
the folder only what is missing or too old, so the folder works whatever the image's versions are
(docs/versions.md lists what the image had when this was written). Upload the folder as a Kaggle
dataset and add it to the notebook; the notebooks' setup cell finds ``nbutils-*.whl`` under
``/kaggle/input`` and runs ``pip install --no-index --find-links <folder> nbutils``.

Only wheels are taken (``--only-binary=:all:``), so nothing needs compiling on Kaggle, and the
folder's ``MANIFEST.txt`` lists its files with the target Python and platform.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Python of Kaggle's image (docs/versions.md): the wheels are for this CPython.
KAGGLE_PYTHON = "3.12"
#: glibc of Kaggle's image is 2.35 (Ubuntu 22.04): every manylinux wheel up to it installs.
MANYLINUX = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def _run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def build(out: Path, python_version: str = KAGGLE_PYTHON, wheel: Path | None = None) -> Path:
    """Make ``out`` (emptied first) with the nbutils wheel and its dependencies' wheels.

    ``wheel``: an nbutils wheel already built (else it is built from the clone).
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if wheel is None:
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)])
        (wheel,) = out.glob("nbutils-*.whl")
    else:
        wheel = Path(shutil.copy2(wheel, out))
    platforms = [arg for name in MANYLINUX for arg in ("--platform", name)]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--dest",
            str(out),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            *platforms,
            str(wheel),
        ]
    )
    files = sorted(p.name for p in out.iterdir())
    not_wheels = [name for name in files if not name.endswith(".whl")]
    if not_wheels:
        raise SystemExit(f"{out}: not wheels: {not_wheels}")
    manifest = [
        "nbutils for Kaggle with Internet off: add this folder as a dataset; the notebooks'",
        "setup cell installs it with: pip install --no-index --find-links <this folder> nbutils",
        f"Python: CPython {python_version}, platform: x86-64 Linux (manylinux, glibc <= 2.35)",
        f"made: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by tools/kaggle_dataset.py",
        f"{len(files)} wheels:",
        *files,
    ]
    (out / "MANIFEST.txt").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"{out}: {len(files)} wheels, {total:,.0f} MiB, for CPython {python_version}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "kaggle-dataset")
    parser.add_argument("--python-version", default=KAGGLE_PYTHON, help="e.g. 3.12")
    parser.add_argument("--wheel", type=Path, help="an nbutils wheel already built")
    args = parser.parse_args(argv)
    build(args.out, args.python_version, args.wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
