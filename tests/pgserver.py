"""A real PostgreSQL server for tests, and a fresh schema per test.

The server comes from ``HITL_TEST_POSTGRES_DSN`` when set, else from
``scripts/ensure-postgres.sh`` (which starts one). No server is a test failure, never a skip:
the PostgreSQL store is part of what ships.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

DSN_ENV = "HITL_TEST_POSTGRES_DSN"
ROOT = Path(__file__).resolve().parents[1]


def server_dsn() -> str:
    """The DSN of a running PostgreSQL server, started when needed."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    if dsn:
        return dsn
    proc = subprocess.run(
        [str(ROOT / "scripts" / "ensure-postgres.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"no PostgreSQL server for the tests (set {DSN_ENV}, or install PostgreSQL): "
            f"{proc.stderr.strip()[-2000:]}"
        )
    return lines[-1]


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` with ``search_path`` set as a server setting (asyncpg passes it through)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    return server_dsn()


@pytest.fixture
async def pg_dsn(pg_server: str) -> AsyncIterator[str]:
    """A DSN whose tables live in a schema of this test's own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    yield with_search_path(pg_server, schema)
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()
