"""Runs ``hitl-gateway`` as a real subprocess for tests that need to kill or restart it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: all held open while choosing, since a port closed
    before the next is chosen may be chosen again (MLServer then fails to bind its second)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, "HITL_LOG_LEVEL": "warning", **(env or {})},
        check=False,
    )


class ServerProcess:
    def __init__(self, data_dir: Path, policies: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.policies = policies
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "server.log"

    def start(self) -> None:
        self.port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--policies",
                    str(self.policies),
                    "--grpc-port",
                    str(self.port),
                    "--http-port",
                    "0",
                ],
                env={**os.environ, "HITL_LOG_LEVEL": "warning", **self.env},
                stderr=log,
            )
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway exited: {self.log.read_text()}")
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
