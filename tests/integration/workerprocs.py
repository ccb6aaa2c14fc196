"""``serve --workers N`` as a real process tree, and which worker holds a TCP connection.

With ``SO_REUSEPORT`` the kernel picks the worker for each connection; a test that needs a call
on one worker and another call on the other finds out where each connection landed from
``/proc`` (the server side of a connection is the socket whose remote port is the client's
local port, held open by exactly one worker process).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.serverproc import free_ports

_ESTABLISHED = "01"


def _tcp_table() -> list[tuple[int, int, int]]:
    """``(local port, remote port, inode)`` of every established TCP socket (gRPC's are IPv6
    sockets talking to IPv4-mapped addresses, so both tables)."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if state == _ESTABLISHED:
                rows.append((int(local.split(":")[1], 16), int(remote.split(":")[1], 16), inode))
    return rows


def _socket_inodes(pid: int | str) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def my_connections(port: int) -> set[int]:
    """Local ports of this process's established connections to ``port``."""
    mine = _socket_inodes("self")
    return {lp for lp, rp, inode in _tcp_table() if rp == port and inode in mine}


def worker_holding(port: int, client_port: int, pids: list[int]) -> int | None:
    """The worker (by pid) whose socket on ``port`` talks to ``client_port``."""
    inodes = {inode for lp, rp, inode in _tcp_table() if lp == port and rp == client_port}
    for pid in pids:
        if inodes & _socket_inodes(pid):
            return pid
    return None


class Workers:
    """``hitl-gateway serve --workers N`` on fixed free ports."""

    def __init__(self, data_dir: Path, policies: Path, n: int, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.policies = policies
        self.n = n
        self.env = env
        self.grpc_port, self.http_port = free_ports(2)
        self.log = data_dir.parent / "workers.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--workers", str(self.n)]
        argv += ["--data-dir", str(self.data_dir), "--policies", str(self.policies)]
        argv += ["--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env={**os.environ, "HITL_LOG_LEVEL": "warning", **self.env}, stderr=log
            )
        deadline = time.monotonic() + 60
        while len(self.pids()) < self.n or not self._healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"supervisor exited: {self.log.read_text()}")
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def _healthy(self) -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
            except grpc.RpcError:
                return False
        return True

    def pids(self) -> list[int]:
        """The workers' pids (the supervisor's children)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(60)

    def close(self) -> None:
        workers = self.pids() if self.proc is not None else []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
