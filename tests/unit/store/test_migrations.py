"""Numbered schema migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import SQLiteStore
from gateway.store.sqlite.migrations import (
    SQLITE_MIGRATIONS,
    Migration,
    apply_migrations,
    split_statements,
)


def _versions(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
    finally:
        conn.close()


async def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    """Starting twice applies each migration once and records its number and name."""
    path = tmp_path / "g.db"
    for _ in range(2):
        store = SQLiteStore(path)
        await store.start()
        await store.stop()
    assert _versions(path) == [(m.version, m.name) for m in SQLITE_MIGRATIONS]
    assert SQLITE_MIGRATIONS[0].name == "0001_init"


def test_new_migrations_are_applied_in_order(tmp_path: Path) -> None:
    """Only migrations not yet recorded run, in version order."""
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        first = (Migration(1, "0001_a", "CREATE TABLE a (x INTEGER);"),)
        assert apply_migrations(conn, "now", first) == [1]
        more = (
            Migration(3, "0003_c", "ALTER TABLE a ADD COLUMN z TEXT;"),
            *first,
            Migration(2, "0002_b", "ALTER TABLE a ADD COLUMN y TEXT;"),
        )
        assert apply_migrations(conn, "now", more) == [2, 3]
        assert apply_migrations(conn, "now", more) == []
        cols = [row[1] for row in conn.execute("PRAGMA table_info(a)")]
        assert cols == ["x", "y", "z"]
    finally:
        conn.close()


def test_failed_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    """A migration that fails half-way is rolled back and not recorded."""
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        bad = (Migration(1, "0001_bad", "CREATE TABLE a (x INTEGER);\nCREATE TABLE a (y);"),)
        with pytest.raises(sqlite3.OperationalError):
            apply_migrations(conn, "now", bad)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "a" not in tables
    finally:
        conn.close()


def test_unknown_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database migrated by a newer version is not opened by an older one."""
    conn = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        apply_migrations(conn, "now", (Migration(1, "0001", "CREATE TABLE a (x);"),))
        apply_migrations(conn, "now", (Migration(1, "0001", ""), Migration(2, "0002", "")))
        with pytest.raises(RuntimeError, match=r"\[2\]"):
            apply_migrations(conn, "now", (Migration(1, "0001", ""),))
    finally:
        conn.close()


def test_statements_split_keeps_trigger_bodies_whole() -> None:
    """Splitting a script keeps a trigger's inner semicolons inside one statement."""
    script = """
CREATE TABLE t (x);
CREATE TRIGGER g BEFORE DELETE ON t BEGIN
    SELECT RAISE(ABORT, 'no');
END;
-- trailing comment
"""
    parts = split_statements(script)
    assert len(parts) == 2
    assert parts[1].startswith("CREATE TRIGGER")
    assert parts[1].endswith("END;")
