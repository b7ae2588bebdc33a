"""Shared by the benchmarks: this process's memory as the kernel counts it, in MiB."""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmHWM``: peak RSS, ``VmRSS``: current RSS).

    Falls back to ``getrusage``'s peak where ``/proc`` is missing (then every field reads as
    the peak).
    """
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_mib() -> float:
    """This process's peak resident set size (``VmHWM``) in MiB."""
    return status_kib("VmHWM") / 1024


def rss_mib() -> float:
    """This process's current resident set size (``VmRSS``) in MiB."""
    return status_kib("VmRSS") / 1024
