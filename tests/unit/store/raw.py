"""Direct reads of a store's data, bypassing the store: row counts and chain verification."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg

from gateway.audit.chain import VerifyResult
from gateway.audit.verifier import verify_events
from gateway.store import codec, is_postgres_url
from tests.audit_files import verify_file


async def fetch_one(location: str, sql: str) -> Any:
    """The first column of the first row of ``sql`` (a statement valid on both databases)."""
    if is_postgres_url(location):
        conn = await asyncpg.connect(location)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
    with closing(sqlite3.connect(location)) as db:
        return db.execute(sql).fetchone()[0]


async def count(location: str, table: str) -> int:
    n: int = await fetch_one(location, f"SELECT count(*) FROM {table}")
    return n


async def verify_chain(location: str) -> VerifyResult:
    """Verify every stored audit event, read straight from the database."""
    if not is_postgres_url(location):
        return verify_file(Path(location))
    conn = await asyncpg.connect(location)
    try:
        rows = await conn.fetch(f"{codec.SELECT_EVENTS} ORDER BY seq")
    finally:
        await conn.close()
    return verify_events(codec.event_from_row(tuple(r)) for r in rows)
