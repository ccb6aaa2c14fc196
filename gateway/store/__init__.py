"""Durable storage: the Store protocol and its implementations."""

from __future__ import annotations

from pathlib import Path

from gateway.store.protocol import ReviewStore, Store
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.writer import StoreClosed, StoreStats

__all__ = [
    "ReviewStore",
    "SQLiteStore",
    "Store",
    "StoreClosed",
    "StoreStats",
    "is_postgres_url",
    "is_shared_store",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url_or_path: str) -> Path:
    """The file path in ``sqlite:///relative.db``, ``sqlite:////abs/file.db`` or a plain path.

    Raises:
        ValueError: Another scheme, or an in-memory database (the store needs a file: its
            readers and its writer are separate connections).
    """
    text = url_or_path.strip()
    if not text:
        raise ValueError("empty store location; expected sqlite:///path/to/file.db or a path")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "sqlite":
            raise ValueError(
                f"unsupported store scheme {scheme!r} in {url_or_path!r}; "
                "expected sqlite:///path/to/file.db or a plain file path"
            )
        # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db" (SQLAlchemy's convention)
        if not rest.startswith("/"):
            raise ValueError(
                f"{url_or_path!r}: expected sqlite:///path (three slashes, no host name)"
            )
        text = rest[1:].partition("?")[0]
        if not text:
            raise ValueError(f"{url_or_path!r}: no file path after sqlite:///")
    if text == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared by reader and writer")
    return Path(text)


def is_postgres_url(url: str) -> bool:
    """True for ``postgresql://`` (or ``postgres://``) URLs: the PostgreSQL store."""
    return url.strip().lower().startswith(("postgresql://", "postgres://"))


def is_shared_store(url_or_path: str) -> bool:
    """True when several gateway processes may share the store at ``url_or_path`` (then they
    must share keys and settings too); False for a file only one process opens."""
    return is_postgres_url(url_or_path)


def open_store(url_or_path: str, *, shared_file: bool = False) -> ReviewStore:
    """A store (not yet started) for ``postgresql://user:pw@host/db``,
    ``sqlite:///path/to/file.db`` or a plain path. ``shared_file``: other processes serve the
    same SQLite file (worker processes), so their changes are polled for."""
    if is_postgres_url(url_or_path):
        # Imported here so SQLite-only deployments never load the PostgreSQL driver.
        from gateway.store.postgres.store import PostgresStore

        return PostgresStore(url_or_path.strip())
    return SQLiteStore(sqlite_path(url_or_path), shared=shared_file)
