"""Numbered schema migrations for the PostgreSQL store.

The schema mirrors SQLite's (see `gateway.store.sqlite.migrations`) column for column, with the same
encodings: timestamps as fixed-width RFC 3339 UTC text and JSON as compact text, so rows go
through the same `gateway.store.codec` and an audit event's canonical bytes are identical on
both stores. Text that is ordered or compared as a timestamp uses the ``"C"`` collation, where
text order is byte order (as in SQLite); a locale collation could sort ``~`` (no deadline)
before the digits.

Replicas starting together take a session advisory lock, so exactly one applies each migration;
each migration runs in its own transaction and is recorded in ``schema_migrations``.
Migrations are append-only: never edit one that has shipped, add the next number instead.
"""

from __future__ import annotations

import asyncpg

from gateway.store import ddl, merkle
from gateway.store.callbacks import CALLBACKS_DDL
from gateway.store.ddl import Migration
from gateway.store.outbox import outbox_ddl

MIGRATION_LOCK = 0x6869_746C_6D69_6772
"""Advisory lock key held while migrating ("hitlmigr")."""

PG_MIGRATIONS: tuple[Migration, ...] = (
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
    created_at       TEXT COLLATE "C" NOT NULL,
    updated_at       TEXT COLLATE "C" NOT NULL,
    trace_id         TEXT NOT NULL,
    policy_version   TEXT NOT NULL,
    subject_ref      TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT NOT NULL DEFAULT '',
    labels           TEXT NOT NULL DEFAULT '{}',
    approvals_needed INTEGER NOT NULL DEFAULT 0,
    review_deadline  TEXT COLLATE "C"
);
CREATE UNIQUE INDEX decisions_idempotency
    ON decisions (application, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX decisions_subject ON decisions (subject_ref) WHERE subject_ref <> '';

-- A final status never changes (see DESIGN.md, decision lifecycle).
CREATE FUNCTION decisions_final_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('APPROVED', 'REJECTED', 'OVERRIDDEN', 'EXPIRED')
       AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'decision status is final';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER decisions_final_is_final BEFORE UPDATE OF status ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_final_is_final();

CREATE TABLE reviews (
    decision_id TEXT NOT NULL REFERENCES decisions (id),
    seq         INTEGER NOT NULL,
    reviewer    TEXT NOT NULL,
    role        TEXT NOT NULL,
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'reject', 'override')),
    reason      TEXT NOT NULL,
    output      TEXT,
    at          TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (decision_id, seq)
);

-- Queue order is (deadline, tier rank, id), no deadline last ('~' sorts after every timestamp).
CREATE TABLE review_tasks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id   TEXT NOT NULL REFERENCES decisions (id),
    kind          TEXT NOT NULL CHECK (kind IN ('decision', 'qa')),
    application   TEXT NOT NULL,
    tier          TEXT NOT NULL,
    groups        TEXT NOT NULL,
    deadline      TEXT COLLATE "C",
    created_at    TEXT COLLATE "C" NOT NULL,
    closed_at     TEXT COLLATE "C",
    claimed_by    TEXT,
    claimed_until TEXT COLLATE "C",
    tier_rank     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX review_tasks_queue
    ON review_tasks (kind, COALESCE(deadline, '~'), tier_rank, id) WHERE closed_at IS NULL;
CREATE INDEX review_tasks_due
    ON review_tasks (deadline) WHERE closed_at IS NULL AND kind = 'decision';
CREATE INDEX review_tasks_counts
    ON review_tasks (kind, application, groups) WHERE closed_at IS NULL;
CREATE INDEX review_tasks_decision ON review_tasks (decision_id);

CREATE TABLE audit_events (
    seq            BIGINT PRIMARY KEY,
    ts             TEXT COLLATE "C" NOT NULL,
    decision_id    TEXT NOT NULL,
    type           TEXT NOT NULL,
    actor          TEXT NOT NULL,
    payload        TEXT,
    payload_digest TEXT NOT NULL,
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    canonical      BYTEA NOT NULL
);
CREATE INDEX audit_events_decision ON audit_events (decision_id);

-- Append-only: rows are never deleted, and the only change allowed is erasing a payload (the
-- chain covers only its digest). A guard against mistakes; the chain and signed checkpoints
-- catch someone with write access.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events are append-only';
    END IF;
    IF NEW.payload IS NOT NULL
       OR (NEW.seq, NEW.ts, NEW.decision_id, NEW.type, NEW.actor, NEW.payload_digest,
           NEW.trace_id, NEW.span_id, NEW.prev_hash, NEW.hash, NEW.canonical)
          IS DISTINCT FROM
          (OLD.seq, OLD.ts, OLD.decision_id, OLD.type, OLD.actor, OLD.payload_digest,
           OLD.trace_id, OLD.span_id, OLD.prev_hash, OLD.hash, OLD.canonical) THEN
        RAISE EXCEPTION 'audit events are append-only (only erasing a payload is allowed)';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    applications TEXT NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0,
    role         TEXT NOT NULL DEFAULT 'app' CHECK (role IN ('app', 'auditor', 'admin'))
);

CREATE TABLE accounts (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('reviewer', 'senior', 'auditor', 'admin')),
    groups        TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE switches (
    kind       TEXT NOT NULL CHECK (kind IN ('application', 'backend')),
    name       TEXT NOT NULL,
    paused     INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT COLLATE "C" NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, name)
);

CREATE TABLE qa_reviews (
    decision_id TEXT NOT NULL REFERENCES decisions (id),
    reviewer    TEXT NOT NULL,
    role        TEXT NOT NULL,
    agree       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (decision_id, reviewer)
);
CREATE INDEX qa_reviews_disagree ON qa_reviews (at) WHERE agree = 0;

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BYTEA NOT NULL,
    signed    BYTEA NOT NULL
);
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END $$;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
""",
    ),
    Migration(
        2,
        "0002_ui_sessions",
        """
-- Signed-in reviewer UI sessions, shared by every replica. Keyed by the SHA-256 of the session
-- id: the id itself (in the cookie) is never stored.
CREATE TABLE ui_sessions (
    id_hash      TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    sso          INTEGER NOT NULL,
    signed_in_at TEXT COLLATE "C" NOT NULL,
    last_seen    TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
""",
    ),
    Migration(
        3,
        "0003_store_probe",
        ddl.STORE_PROBE,
    ),
    Migration(4, "0004_human_controls", ddl.HUMAN_CONTROLS),
    Migration(5, "0005_model_inventory", ddl.model_inventory('TEXT COLLATE "C"')),
    Migration(6, "0006_model_monitoring", ddl.model_monitoring('TEXT COLLATE "C"')),
    Migration(
        7,
        "0007_model_risk_role",
        """
-- Accounts may have the model-risk role (gateway/types.py).
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check
    CHECK (role IN ('reviewer', 'senior', 'auditor', 'admin', 'model-risk'));
""",
    ),
    Migration(8, "0008_policy_versions", ddl.policy_versions('TEXT COLLATE "C"')),
    Migration(9, "0009_policy_change", ddl.policy_change('TEXT COLLATE "C"')),
    Migration(10, "0010_audit_merkle", merkle.POSTGRES_DDL),
    Migration(11, "0011_outbox", outbox_ddl('TEXT COLLATE "C"')),
    Migration(12, "0012_decision_callbacks", CALLBACKS_DDL),
)


async def apply_pg_migrations(
    conn: asyncpg.Connection,
    now: str,
    migrations: tuple[Migration, ...] = PG_MIGRATIONS,
) -> list[int]:
    """Apply every migration not yet recorded, each in its own transaction.

    Returns the versions applied by this call (none when another replica got there first).

    Raises:
        RuntimeError: The database was migrated by a newer version of the gateway.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(ddl.CREATE_TRACKING)
        done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        newer = sorted(done - {m.version for m in migrations})
        if newer:
            raise RuntimeError(
                f"database schema has migrations {newer} that this version does not know; "
                "refusing to start on a newer schema"
            )
        applied: list[int] = []
        for m in sorted(migrations, key=lambda m: m.version):
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    now,
                )
            applied.append(m.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
