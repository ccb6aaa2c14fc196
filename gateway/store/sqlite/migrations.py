"""Numbered schema migrations for the SQLite store.

Each migration runs once, in its own transaction, and is recorded in ``schema_migrations``.
Migrations are append-only: never edit one that has shipped, add the next number instead.

Timestamps are stored as RFC 3339 UTC text with microseconds (``2025-01-31T08:15:00.000000Z``):
fixed width, so text order is time order, and readable by anyone who opens the file with
``sqlite3``. JSON columns hold compact JSON text.
"""

from __future__ import annotations

import sqlite3

from gateway.store import ddl, merkle
from gateway.store.callbacks import CALLBACKS_DDL
from gateway.store.ddl import Migration
from gateway.store.outbox import outbox_ddl

SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "0001_init",
        """
CREATE TABLE decisions (
    id               TEXT PRIMARY KEY,
    application      TEXT NOT NULL,
    tier             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN (
                         'PENDING_REVIEW', 'IN_REVIEW', 'APPROVED', 'REJECTED',
                         'OVERRIDDEN', 'EXPIRED')),
    input            TEXT NOT NULL,
    model_backend    TEXT,
    model_name       TEXT,
    model_version    TEXT,
    model_validation TEXT,
    model_output     TEXT,
    final_output     TEXT,
    reasons          TEXT NOT NULL,
    rule             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    trace_id         TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    subject_ref      TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT NOT NULL DEFAULT '',
    labels           TEXT NOT NULL DEFAULT '{}',
    approvals_needed INTEGER NOT NULL DEFAULT 0,
    review_deadline  TEXT
);
CREATE UNIQUE INDEX decisions_idempotency
    ON decisions (application, idempotency_key) WHERE idempotency_key != '';
CREATE INDEX decisions_subject ON decisions (subject_ref) WHERE subject_ref != '';

-- A final status never changes (see DESIGN.md, decision lifecycle).
CREATE TRIGGER decisions_final_is_final
BEFORE UPDATE OF status ON decisions
WHEN OLD.status IN ('APPROVED', 'REJECTED', 'OVERRIDDEN', 'EXPIRED')
     AND NEW.status != OLD.status
BEGIN
    SELECT RAISE(ABORT, 'decision status is final');
END;

CREATE TABLE reviews (
    decision_id TEXT NOT NULL REFERENCES decisions (id),
    seq         INTEGER NOT NULL,
    reviewer    TEXT NOT NULL,
    role        TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'reject', 'override')),
    reason      TEXT NOT NULL,
    output      TEXT,
    at          TEXT NOT NULL,
    PRIMARY KEY (decision_id, seq)
);

CREATE TABLE review_tasks (
    id            INTEGER PRIMARY KEY,
    decision_id   TEXT NOT NULL REFERENCES decisions (id),
    kind          TEXT NOT NULL CHECK (kind IN ('decision', 'qa')),
    application   TEXT NOT NULL,
    tier          TEXT NOT NULL,
    groups        TEXT NOT NULL,
    deadline      TEXT,
    created_at    TEXT NOT NULL,
    closed_at     TEXT,
    claimed_by    TEXT,
    claimed_until TEXT
);
CREATE INDEX review_tasks_open
    ON review_tasks (kind, deadline, tier) WHERE closed_at IS NULL;
CREATE INDEX review_tasks_decision ON review_tasks (decision_id);

CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY,
    ts             TEXT NOT NULL,
    decision_id    TEXT NOT NULL,
    type           TEXT NOT NULL,
    actor          TEXT NOT NULL,
    payload        TEXT,
    payload_digest TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    canonical      BLOB NOT NULL
);
CREATE INDEX audit_events_decision ON audit_events (decision_id);

-- Append-only: rows are never deleted, and the only change allowed is erasing a payload
-- (the chain covers only its digest). These guard against mistakes, not against someone
-- with write access to the file; the hash chain and signed checkpoints catch that.
CREATE TRIGGER audit_events_no_delete
BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_only_erase
BEFORE UPDATE ON audit_events
WHEN NEW.payload IS NOT NULL
     OR NEW.seq IS NOT OLD.seq OR NEW.ts IS NOT OLD.ts
     OR NEW.decision_id IS NOT OLD.decision_id OR NEW.type IS NOT OLD.type
     OR NEW.actor IS NOT OLD.actor OR NEW.payload_digest IS NOT OLD.payload_digest
     OR NEW.trace_id IS NOT OLD.trace_id OR NEW.span_id IS NOT OLD.span_id
     OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.hash IS NOT OLD.hash
     OR NEW.canonical IS NOT OLD.canonical
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only (only erasing a payload is allowed)');
END;

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    applications TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0
);
""",
    ),
    Migration(
        2,
        "0002_review_queue",
        """
-- Queue order is (deadline, tier rank, id), no deadline last ('~' sorts after every timestamp);
-- the rank is copied from the policy when a task is made.
ALTER TABLE review_tasks ADD COLUMN tier_rank INTEGER NOT NULL DEFAULT 0;
DROP INDEX review_tasks_open;
CREATE INDEX review_tasks_queue
    ON review_tasks (kind, ifnull(deadline, '~'), tier_rank, id) WHERE closed_at IS NULL;
CREATE INDEX review_tasks_due
    ON review_tasks (deadline) WHERE closed_at IS NULL AND kind = 'decision';
-- Covers the queue's per-application counts, so they never read the table itself.
CREATE INDEX review_tasks_counts
    ON review_tasks (kind, application, groups) WHERE closed_at IS NULL;

-- People who sign in to the reviewer UI; only argon2 hashes of their passwords.
CREATE TABLE accounts (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('reviewer', 'senior', 'auditor', 'admin')),
    groups        TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

-- Kill switch state of applications and backends (absent row: running).
CREATE TABLE switches (
    kind       TEXT NOT NULL CHECK (kind IN ('application', 'backend')),
    name       TEXT NOT NULL,
    paused     INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, name)
);

-- Quality-assurance opinions on automatic decisions; they never change the decision.
CREATE TABLE qa_reviews (
    decision_id TEXT NOT NULL REFERENCES decisions (id),
    reviewer    TEXT NOT NULL,
    role        TEXT NOT NULL,
    agree       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (decision_id, reviewer)
);
CREATE INDEX qa_reviews_disagree ON qa_reviews (at) WHERE agree = 0;
""",
    ),
    Migration(
        3,
        "0003_audit_roles_checkpoints",
        """
-- Keys carry a role: application keys decide, auditor and admin keys read the audit trail.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'app'
    CHECK (role IN ('app', 'auditor', 'admin'));

-- Signed chain heads (Ed25519); `signed` holds the exact bytes the signature covers.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL,
    signed    BLOB NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_delete
BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_update
BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
""",
    ),
    Migration(
        4,
        "0004_ui_sessions",
        """
-- Signed-in reviewer UI sessions, so every replica and a restarted gateway see them. Keyed by
-- the SHA-256 of the session id: the id itself (in the cookie) is never stored.
CREATE TABLE ui_sessions (
    id_hash      TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    sso          INTEGER NOT NULL,
    signed_in_at TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
""",
    ),
    Migration(
        5,
        "0005_store_probe",
        ddl.STORE_PROBE,
    ),
    Migration(6, "0006_human_controls", ddl.HUMAN_CONTROLS),
    Migration(7, "0007_model_inventory", ddl.model_inventory("TEXT")),
    Migration(8, "0008_model_monitoring", ddl.model_monitoring("TEXT", " WITHOUT ROWID")),
    Migration(
        9,
        "0009_model_risk_role",
        """
-- Accounts may have the model-risk role (gateway/types.py). SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with its rows (nothing references it).
CREATE TABLE accounts_new (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL
                  CHECK (role IN ('reviewer', 'senior', 'auditor', 'admin', 'model-risk')),
    groups        TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);
INSERT INTO accounts_new (name, role, groups, password_hash, created_at, disabled)
    SELECT name, role, groups, password_hash, created_at, disabled FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
""",
    ),
    Migration(10, "0010_policy_versions", ddl.policy_versions("TEXT")),
    Migration(11, "0011_policy_change", ddl.policy_change("TEXT")),
    Migration(12, "0012_audit_merkle", merkle.SQLITE_DDL),
    Migration(13, "0013_outbox", outbox_ddl("TEXT")),
    Migration(14, "0014_decision_callbacks", CALLBACKS_DDL),
)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (trigger bodies stay whole)."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        raise ValueError(f"incomplete SQL statement at end of migration: {current.strip()[:80]}")
    return statements


def apply_migrations(
    conn: sqlite3.Connection,
    now: str,
    migrations: tuple[Migration, ...] = SQLITE_MIGRATIONS,
) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the versions
    applied by this call.

    Raises:
        RuntimeError: the database was migrated by a newer version of the gateway.
    """
    conn.execute(ddl.CREATE_TRACKING)
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    known = {m.version for m in migrations}
    newer = sorted(done - known)
    if newer:
        raise RuntimeError(
            f"database schema has migrations {newer} that this version does not know; "
            "refusing to start on a newer schema"
        )
    applied: list[int] = []
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in split_statements(m.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(m.version)
    return applied
