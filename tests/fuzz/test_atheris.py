"""The atheris fuzz targets run for a bounded time and find nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["fuzz_policy_loader.py", "fuzz_struct.py"])
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    """A bounded fuzzing run of the target ends without a crash or an unexpected exception."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # Seeds: the shipped policies (the loader target picks its file with the leading byte) and
    # a valid request, so mutations start from well-formed input.
    for i, path in enumerate(sorted((ROOT / "policies").glob("*.yaml"))):
        (corpus / f"seed{i}").write_bytes(bytes([i]) + path.read_bytes())
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / target),
            "-max_total_time=15",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr
