"""Schema text that is the same on both databases, written once.

Most tables differ by dialect (identity columns, ``BYTEA``/``BLOB``, the ``"C"`` collation
PostgreSQL needs so timestamp text sorts as SQLite's does); these do not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a store's schema, applied once in its own transaction."""

    version: int
    name: str
    sql: str


CREATE_TRACKING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""
"""The table recording which numbered migrations ran."""

STORE_PROBE = """
-- One row the readiness probe rewrites through the writer: a commit is the only proof that
-- commits work (a full disk still serves reads).
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
"""

HUMAN_CONTROLS = """
-- Four-eyes for every verdict and maker-checker: what the decision's tier asked when it was
-- made (so a later policy cannot change who must agree), the person the application asked for,
-- and the digest that keeps a reused idempotency key from returning another request's outcome.
ALTER TABLE decisions ADD COLUMN reject_approvals_needed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN blind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE decisions ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
ALTER TABLE decisions ADD COLUMN request_digest TEXT NOT NULL DEFAULT '';
"""
