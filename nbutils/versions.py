"""The releases of its dependencies that nbutils needs, checked before their APIs are used.

:data:`MINIMUMS` is requirements.txt's lower bound of each runtime dependency (tests/test_versions.py
keeps the two equal), and ``make test-lowest`` runs the test suite at exactly these releases. pip
refuses to install nbutils beside an older release, but an environment can still hold one: a
package installed or downgraded afterwards, ``pip install --no-deps``, a notebook image. There the
missing API would surface as an ``AttributeError`` or ``ImportError`` far from its cause (numerapi
2.19 made ``submit`` report a server error). :func:`require` turns that into a
:class:`~nbutils.errors.DependencyError` naming the package, the release found, the minimum and
the pip command that fixes it.

A release is compared by its leading numbers: ``2.2.3`` and ``2.2.3rc1`` are both ``(2, 2, 3)``.

:func:`main` prints each dependency's minimum and installed release (``python -c "from
nbutils.versions import main; main()"``); with ``--exact`` it returns 1 unless every installed
release is its minimum (``make test-lowest`` uses it to show that the lowest job really runs at
the minimums).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from nbutils.errors import DependencyError

#: requirements.txt's minimum of each runtime dependency, and why: what an older release lacks
#: where that is known (found with ``make test-lowest``), else "the lowest release tested".
MINIMUMS: dict[str, tuple[str, str]] = {
    "numerapi": ("2.23", "list_rounds and submission_scores"),
    "numerai-tools": ("0.6", "numerai_tools.submissions.validate_submission_numerai"),
    "pandas": ("2.2.2", "numerai-tools 0.6 requires it"),
    "numpy": ("2.0", "numerai-tools 0.6 requires it"),
    "pyarrow": ("16", "the first release built for numpy 2"),
    "scipy": ("1.13", "numerai-tools 0.6 requires it"),
    "scikit-learn": ("1.5", "numerai-tools 0.6 requires it"),
    "lightgbm": (
        "4.6",
        "4.5 and older warn on stderr when params name n_estimators (the tutorial's best_config in 03)",
    ),
    "matplotlib": ("3.8.4", "the first release that allows numpy 2"),
    "matplotlib-fontja": ("1.1", "the lowest release tested (IPAexGothic for Japanese figures)"),
    "seaborn": ("0.13", "the lowest release tested"),
    "tqdm": ("4.66", "the lowest release tested"),
    "papermill": ("2.5", "the lowest release tested"),
    "dask": ("2025.4", "the lowest release tested"),
    "cloudpickle": ("3.0", "the lowest release tested"),
    "distributed": ("2025.4", "the lowest release tested"),
    "nbconvert": ("6.4.5", "the HTML pages of a run; Kaggle's image pins 6.4.5"),
    "ipykernel": ("6.17.1", "the notebooks' kernel; Colab's image has 6.17.1"),
    "ipywidgets": ("7.7.1", "progress bars in notebooks; Colab's image has 7.7.1"),
    "python-dotenv": ("1.0", "the lowest release tested"),
}


def release(version: str) -> tuple[int, ...]:
    """The leading numbers of ``version``: ``"2.2.3rc1"`` -> ``(2, 2, 3)``, zeros dropped at the
    end so that ``"2.0"`` equals ``"2"``."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() < len(part):
            break
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def installed(package: str) -> str | None:
    """The installed release of distribution ``package``, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def require(*packages: str) -> None:
    """Raise :class:`DependencyError` unless each of ``packages`` is installed at its minimum
    (:data:`MINIMUMS`) or newer. The message names the package, the releases and the fix."""
    for package in packages:
        minimum, needed_for = MINIMUMS[package]
        found = installed(package)
        if found is None:
            raise DependencyError(
                f"{package} is not installed; nbutils needs {package}>={minimum} "
                f"({needed_for}): pip install '{package}>={minimum}'"
            )
        if release(found) < release(minimum):
            raise DependencyError(
                f"{package} {found} is installed, but nbutils needs {package}>={minimum} "
                f"({needed_for}): pip install -U '{package}>={minimum}', then restart the "
                "kernel or the command"
            )


def report() -> list[tuple[str, str, str | None]]:
    """``(package, minimum, installed release or None)`` of every runtime dependency."""
    return [(name, minimum, installed(name)) for name, (minimum, _) in MINIMUMS.items()]


def main(argv: list[str] | None = None) -> int:
    """Print the table of :func:`report`; with ``--exact``, 1 unless all are at their minimum."""
    args = sys.argv[1:] if argv is None else argv
    exact = "--exact" in args
    bad = []
    for name, minimum, found in report():
        if found is None or release(found) < release(minimum):
            state = "TOO OLD" if found else "MISSING"
        elif release(found) == release(minimum):
            state = "minimum"
        else:
            state = "newer"
        if state in ("TOO OLD", "MISSING") or (exact and state != "minimum"):
            bad.append(name)
        print(f"{name:<14} >= {minimum:<8} installed {found or '-':<12} {state}")
    if bad:
        what = "not at their minimum" if exact else "too old or missing"
        print(f"{len(bad)} package(s) {what}: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0
