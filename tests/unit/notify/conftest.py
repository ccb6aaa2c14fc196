"""Outbox tests run on a real SQLite file and on a fresh schema of a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file path or a PostgreSQL DSN."""
    if request.param == "sqlite":
        return str(tmp_path / "gateway.db")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
async def store(location: str) -> AsyncIterator[ReviewStore]:
    s = open_store(location)
    await s.start()
    yield s
    await s.stop()
