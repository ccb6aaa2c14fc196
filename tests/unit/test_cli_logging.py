"""One-shot commands keep stdout for what they print: log lines go to stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_a_command_logs_to_stderr_and_prints_to_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a command runs, a warning goes to stderr and stdout holds only the command's output."""
    monkeypatch.delenv("HITL_LOG_LEVEL", raising=False)
    assert main(["policy", "check", str(ROOT / "policies")]) == 0
    structlog.get_logger("probe").warning("probe.warned", n=1)
    structlog.get_logger("probe").info("probe.quiet")  # below the default level
    out, err = capsys.readouterr()
    assert "probe" not in out
    assert "probe.warned" in err
    assert "probe.quiet" not in err
