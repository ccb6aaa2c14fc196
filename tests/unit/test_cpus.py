"""The CPUs a process may use: affinity bounded by the cgroup quota (v2 and v1 files)."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.cpus import quota_cpus, usable_cpus


def test_a_cgroup_v2_quota_bounds_the_affinity(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert quota_cpus(tmp_path) == 1.5
    assert usable_cpus(tmp_path) == min(len(os.sched_getaffinity(0)), 2)


def test_no_quota_leaves_the_affinity(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert quota_cpus(tmp_path) is None
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_a_cgroup_v1_quota_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert quota_cpus(tmp_path) == 0.5
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert quota_cpus(tmp_path) is None


def test_nothing_readable_means_no_quota(tmp_path: Path) -> None:
    assert quota_cpus(tmp_path / "missing") is None
    assert usable_cpus(tmp_path / "missing") >= 1
