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


def model_inventory(ts: str) -> str:
    """The model inventory; ``ts`` is the dialect's type for timestamp text that is compared
    (PostgreSQL needs the ``"C"`` collation for text order to be byte order, as in SQLite)."""
    return f"""
-- One row per model version (see gateway/modelrisk/record.py). The lifecycle's history is the
-- audit trail: every change here is written with its model.* event in one transaction.
CREATE TABLE models (
    backend               TEXT NOT NULL,
    name                  TEXT NOT NULL,
    version               TEXT NOT NULL,
    owner                 TEXT NOT NULL,
    validator             TEXT NOT NULL DEFAULT '',
    intended_use          TEXT NOT NULL DEFAULT '',
    max_tier              TEXT NOT NULL,
    status                TEXT NOT NULL,
    validated_at          {ts},
    validation_expires_at {ts},
    documentation_url     TEXT NOT NULL DEFAULT '',
    limitations           TEXT NOT NULL DEFAULT '',
    registered_at         {ts} NOT NULL,
    updated_at            {ts} NOT NULL,
    updated_by            TEXT NOT NULL,
    escalated             INTEGER NOT NULL DEFAULT 0,
    escalation_reason     TEXT NOT NULL DEFAULT '',
    escalated_at          {ts},
    PRIMARY KEY (backend, name, version)
);
"""
