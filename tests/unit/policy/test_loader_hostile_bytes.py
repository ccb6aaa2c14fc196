"""Policy files with bytes YAML refuses are reported as policy errors, not crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import PolicyError
from gateway.policy import load_policies


@pytest.mark.parametrize("content", [b"\x00\x03#", b"tiers: []\n\x07\n", b"\xff\xfe"])
def test_unreadable_bytes_raise_policy_error(tmp_path: Path, content: bytes) -> None:
    """A NUL, a control character or invalid UTF-8 in a policy file names the file."""
    (tmp_path / "bad.yaml").write_bytes(content)
    with pytest.raises(PolicyError) as err:
        load_policies(tmp_path)
    assert err.value.location.startswith("bad.yaml")
