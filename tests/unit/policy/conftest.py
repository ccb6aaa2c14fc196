from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import APPLICATIONS, BACKENDS, TIERS, WritePolicies


@pytest.fixture
def write_policies(tmp_path: Path) -> WritePolicies:
    """Write policy files (name -> text) into a fresh directory; defaults fill missing files."""

    def write(**files: str) -> Path:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        contents = {"tiers": TIERS, "backends": BACKENDS, "applications": APPLICATIONS}
        contents.update(files)
        for name, text in contents.items():
            if text:
                (directory / f"{name}.yaml").write_text(text)
        return directory

    return write
