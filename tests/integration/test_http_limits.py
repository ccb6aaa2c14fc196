"""The HTTP port's connection limits: idle and header timeouts, caps per address and in all."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.app import Gateway
from gateway.client import GatewayClient
from gateway.config import Settings
from tests.integration.serverproc import cli, free_ports

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OK_BODY = b'{"status":"ok"}'


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()


async def _open(port: int, source: str = "127.0.0.1") -> Stream:
    """A connection from ``source``: any 127.x address is a client address of its own."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _status(port: int, path: str, source: str = "127.0.0.1") -> bytes:
    """The status line of ``GET path`` on a new connection."""
    reader, writer = await _open(port, source)
    try:
        writer.write(_request(path))
        return (await asyncio.wait_for(reader.readline(), 5)).strip()
    finally:
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    settings: Settings,
) -> None:
    """A connection that never sends a request is closed once ``http_idle_timeout`` passed."""
    async with Gateway(replace(settings, http_idle_timeout=0.5)) as gw:
        reader, writer = await _open(gw.http_port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert time.monotonic() - started >= 0.4
        writer.close()


async def test_headers_sent_a_line_at_a_time_are_cut_off_after_the_header_timeout(
    settings: Settings,
) -> None:
    """Headers trickling in are cut off ``http_header_timeout`` after their first byte, although
    each line comes well within the idle timeout."""
    limited = replace(settings, http_idle_timeout=5.0, http_header_timeout=1.0)
    async with Gateway(limited) as gw:
        reader, writer = await _open(gw.http_port)
        closed = asyncio.ensure_future(reader.read())
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        while not closed.done() and time.monotonic() - started < 15:
            try:
                writer.write(b"x-slow: 1\r\n")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.2)
        assert await asyncio.wait_for(closed, 5) == b""
        assert time.monotonic() - started < 4
        writer.close()


async def test_connections_beyond_the_per_address_cap_are_refused(settings: Settings) -> None:
    """The 4th connection from one address gets 503 and is closed; another address is served
    meanwhile (the reviewer UI too), and the first once one of its connections closed."""
    limited = replace(settings, http_idle_timeout=30.0, http_max_connections_per_client=3)
    async with Gateway(limited) as gw:
        held: list[Stream] = []
        for _ in range(3):
            reader, writer = await _open(gw.http_port)
            writer.write(_request("/healthz"))  # answered: the server counts this connection
            await asyncio.wait_for(reader.readuntil(OK_BODY), 5)
            held.append((reader, writer))

        reader, writer = await _open(gw.http_port)
        refused = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 ")

        assert await _status(gw.http_port, "/ui/login", source="127.0.0.2") == b"HTTP/1.1 200 OK"

        held.pop()[1].close()
        deadline = time.monotonic() + 5
        while (status := await _status(gw.http_port, "/healthz")) != b"HTTP/1.1 200 OK":
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        for _, held_writer in held:
            held_writer.close()


# -- file handles: a gateway process with a small open-file limit ---------------------------

NOFILE = 200
"""The gateway process's open-file limit in these tests; it holds about 35 when idle."""
_WITH_NOFILE = (
    "import os, resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE}))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'gateway.cli', *sys.argv[1:]])"
)


class LimitedProcess:
    """``hitl-gateway serve`` with ``RLIMIT_NOFILE`` set to `NOFILE`, on ports of its own."""

    def __init__(self, tmp_path: Path, policies: Path) -> None:
        self.data_dir = tmp_path / "var"
        self.policies = policies
        self.log = tmp_path / "server.log"
        self.grpc_port, self.http_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None
        self.key = ""

    def start(self, env: dict[str, str]) -> None:
        where = ["--data-dir", str(self.data_dir), "--policies", str(self.policies)]
        created = cli("keys", "create", "--app", "t-echo", *where)
        assert created.returncode == 0, created.stderr
        self.key = created.stdout.strip()
        ports = ["--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WITH_NOFILE, "serve", *where, *ports],
                env={**os.environ, "HITL_LOG_LEVEL": "warning", **env},
                stderr=log,
            )
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                    return
                except grpc.RpcError:
                    assert time.monotonic() < deadline, self.log.read_text()
                    time.sleep(0.1)

    def open_files(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def flood(self, n: int) -> list[socket.socket]:
        """``n`` idle connections to the HTTP port (those the kernel queues included)."""
        held = []
        for _ in range(n):
            sock = socket.socket()
            sock.settimeout(2)
            try:
                sock.connect(("127.0.0.1", self.http_port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        time.sleep(1.5)  # the server accepts what it can (asyncio retries after EMFILE in 1 s)
        return held

    def checkpointed_to(self) -> tuple[int, int]:
        """(last checkpointed seq, last event seq) as stored."""
        with closing(sqlite3.connect(self.data_dir / "gateway.db")) as conn:
            cp = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_checkpoints").fetchone()
            ev = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_events").fetchone()
        return int(cp[0]), int(ev[0])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def limited(tmp_path: Path, policies_dir: Path) -> Iterator[LimitedProcess]:
    server = LimitedProcess(tmp_path, policies_dir)
    yield server
    server.close()


def test_checkpoints_are_signed_while_connections_hold_every_file_handle(
    limited: LimitedProcess,
) -> None:
    """With both connection caps lifted and every file handle taken by idle HTTP connections,
    a decision made over an open channel still gets its chain head signed and stored."""
    uncapped = {"HITL_HTTP_MAX_CONNECTIONS": "100000", "HITL_HTTP_MAX_CONNECTIONS_PER_CLIENT": "0"}
    server = limited
    server.start(
        {
            **uncapped,
            "HITL_HTTP_IDLE_TIMEOUT": "300",
            "HITL_AUDIT_CHECKPOINT_SECONDS": "0.2",
            "HITL_AUDIT_CHECKPOINT_EVENTS": "1",
        }
    )
    with GatewayClient(f"127.0.0.1:{server.grpc_port}", api_key=server.key, timeout=10) as client:
        client.decide("t-echo", {"score": 0.9})  # opens the channel before the flood
        held = server.flood(NOFILE + 50)
        try:
            deadline = time.monotonic() + 10
            while server.open_files() < NOFILE:  # queued connections take the last ones
                assert time.monotonic() < deadline, server.open_files()
                time.sleep(0.1)
            client.decide("t-echo", {"score": 0.9})
            deadline = time.monotonic() + 10
            while (seqs := server.checkpointed_to())[0] < seqs[1]:
                assert time.monotonic() < deadline, server.log.read_text()[-3000:]
                time.sleep(0.1)
        finally:
            for sock in held:
                sock.close()
    assert "checkpoint_failed" not in server.log.read_text()


def test_the_total_cap_leaves_file_handles_for_new_grpc_callers(
    limited: LimitedProcess,
) -> None:
    """With the default total cap (half the open-file limit) a flood of HTTP connections from
    one address is refused beyond it, and a new gRPC caller still connects and decides."""
    server = limited
    server.start({"HITL_HTTP_MAX_CONNECTIONS_PER_CLIENT": "0", "HITL_HTTP_IDLE_TIMEOUT": "300"})
    held = server.flood(NOFILE + 50)
    try:
        assert server.open_files() < NOFILE - 20
        with GatewayClient(
            f"127.0.0.1:{server.grpc_port}", api_key=server.key, timeout=10
        ) as client:
            assert client.decide("t-echo", {"score": 0.9}).id
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as sock:
            assert sock.recv(100).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
