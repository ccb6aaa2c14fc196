"""Choosing a store from a URL or path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import SQLiteStore, open_store, sqlite_path
from gateway.store.postgres.store import PostgresStore


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("sqlite:///var/gateway.db", Path("var/gateway.db")),
        ("sqlite:////srv/hitl/gateway.db", Path("/srv/hitl/gateway.db")),
        ("SQLITE:///a.db?mode=rwc", Path("a.db")),
        ("data/gateway.db", Path("data/gateway.db")),
        ("/abs/gateway.db", Path("/abs/gateway.db")),
    ],
)
def test_sqlite_locations(location: str, expected: Path) -> None:
    """sqlite:/// URLs (relative and absolute) and plain paths name a file."""
    assert sqlite_path(location) == expected
    store = open_store(location)
    assert isinstance(store, SQLiteStore)
    assert store.path == expected


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("mysql://db/hitl", "unsupported store scheme 'mysql'"),
        ("sqlite://host/file.db", "three slashes"),
        ("sqlite:///", "no file path"),
        (":memory:", "in-memory"),
        ("", "empty"),
    ],
)
def test_unsupported_locations_are_refused(location: str, words: str) -> None:
    """Other schemes and unusable SQLite locations raise a ValueError that says why."""
    with pytest.raises(ValueError, match=words):
        open_store(location)


@pytest.mark.parametrize(
    "location", ["postgresql://hitl@db:5432/hitl", "postgres://db/hitl", " POSTGRESQL://db/x"]
)
def test_postgresql_urls_select_the_postgresql_store(location: str) -> None:
    """postgresql:// and postgres:// URLs open the PostgreSQL store with that DSN."""
    store = open_store(location)
    assert isinstance(store, PostgresStore)
    assert store.dsn == location.strip()


async def test_store_works_as_async_context_manager(tmp_path: Path) -> None:
    """`async with` starts and stops the store."""
    async with SQLiteStore(tmp_path / "nested" / "g.db") as store:
        assert await store.get_decision("x") is None
    assert (tmp_path / "nested" / "g.db").exists()
