"""`hitl-gateway demo`, the README's run command, as a real process."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from gateway.client import GatewayClient

ROOT = Path(__file__).resolve().parents[2]


def _pump(pipe: IO[str], into: queue.Queue[str]) -> None:
    """Copy lines from ``pipe`` to ``into``, then an empty string at end of file."""
    for line in pipe:
        into.put(line)
    into.put("")


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
    assert proc.stderr is not None
    # readline() blocks for as long as the process stays silent, so lines are read in a thread
    # and waited for here with a deadline.
    stream: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stderr, stream), daemon=True)
    reader.start()
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("serving gRPC on" in line for line in lines):
            remaining = deadline - time.monotonic()
            try:
                line = stream.get(timeout=max(remaining, 0))
            except queue.Empty:
                pytest.fail(
                    "no 'serving gRPC on' line within 60 s; stderr so far:\n" + "".join(lines)
                )
            assert line, f"demo exited with {proc.wait(5)} before serving:\n" + "".join(lines)
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
        reader.join(10)
        proc.stderr.close()
