"""`hitl-gateway demo`, the README's run command, as a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gateway.client import GatewayClient

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_a_working_key_and_command(tmp_path: Path) -> None:
    """The demo serves with no configuration and its printed key decides for credit-limit."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--data-dir",
            str(tmp_path / "var"),
            "--policies",
            str(ROOT / "policies"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HITL_LOG_LEVEL": "warning"},
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("serving gRPC on" in line for line in lines):
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        key = re.search(r"Bearer (hitl_\S+)'", text)
        port = re.search(r"serving gRPC on 127\.0\.0\.1:(\d+)", text)
        assert key and port, text
        assert "hitl.gateway.v1.DecisionGateway/Decide" in text
        assert "/ui/" in text
        with GatewayClient(f"127.0.0.1:{port.group(1)}", api_key=key.group(1)) as client:
            decision = client.decide(
                "credit-limit",
                {"income": 85000, "debt_ratio": 0.2, "past_delinquencies": 0, "amount": 15000},
            )
        assert decision.status.value == "APPROVED"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        if proc.stderr is not None:
            proc.stderr.close()
