"""A private PostgreSQL server that a test may stop and start again under a running gateway.

The shared test server (`tests.pgserver`) must stay up for everyone else, so outage tests run a
cluster of their own: ``initdb`` into a temporary directory, on a free loopback port, with
``fsync`` off (the data is thrown away). As root (CI) the server runs as the ``postgres`` user,
which PostgreSQL requires. No PostgreSQL installed is a test failure, never a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for candidate in [*reversed(found), Path(shutil.which("initdb") or "/nonexistent").parent]:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    pytest.fail(
        "PostgreSQL is not installed (initdb and pg_ctl are needed): apt-get install postgresql"
    )


class PrivatePostgres:
    """One cluster in a temporary directory; `start` and `stop` as often as a test likes."""

    def __init__(self) -> None:
        self._bin = _bindir()
        # Under /tmp, not pytest's tmp_path: the server's user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="hitl-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "hitl", "-A", "trust", "--no-sync")
        self.running = False

    @property
    def dsn(self) -> str:
        return f"postgresql://hitl@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            [*self._as_owner, str(self._bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"{tool} failed: {proc.stderr.strip()[-2000:]}")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        self.running = True

    def stop(self) -> None:
        """A fast shutdown, as an operator stopping the service does: sessions are ended."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def remove(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A running private server, removed after the test."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()
