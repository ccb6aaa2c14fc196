"""Fixtures for store tests: every protocol test runs on a real SQLite file under ``tmp_path``
and on a fresh schema of a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import SQLiteStore, open_store
from gateway.store.postgres.store import PostgresStore
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

AnyStore = SQLiteStore | PostgresStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.db"


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, db_path: Path) -> str:
    """Where a store keeps its data: a SQLite file path or a PostgreSQL DSN."""
    if request.param == "sqlite":
        return str(db_path)
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
async def store(location: str) -> AsyncIterator[AnyStore]:
    s = open_store(location)
    assert isinstance(s, SQLiteStore | PostgresStore)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    await s.start()
    yield s
    await s.stop()
