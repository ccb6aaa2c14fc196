"""The CPUs this process may use: its affinity mask, bounded by its cgroup's CPU quota.

A container asking for two CPUs on a 16-core host sees 16 in ``os.cpu_count()``; what bounds it
is its cgroup's quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)
and its affinity mask (``taskset``, cpusets). A worker per CPU it may really use, not per core
of the host.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def quota_cpus(root: Path = CGROUP) -> float | None:
    """CPUs the cgroup quota allows (fractions kept), or None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = CGROUP) -> int:
    """Whole CPUs this process may use: the affinity mask's size, lowered to the quota
    rounded up (a quota of 1.5 CPUs keeps two workers busy), at least 1."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    quota = quota_cpus(root)
    if quota is not None:
        allowed = min(allowed, math.ceil(quota))
    return max(1, allowed)
