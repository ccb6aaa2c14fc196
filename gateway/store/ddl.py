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


def model_monitoring(ts: str, keyed: str = "") -> str:
    """Monitoring per model version (see gateway/modelrisk/monitor.py); ``ts`` as in
    `model_inventory`. Counts are upserted in the transaction of the event they count.

    ``keyed`` follows the two count tables: SQLite's ``WITHOUT ROWID`` stores each as its
    primary key's b-tree alone, so a batch of decisions dirties one page per table, not two
    (PostgreSQL has no such option: empty)."""
    return f"""
-- Counts per model version, metric and hour (bucket: the hour's start as timestamp text).
CREATE TABLE model_counts (
    backend TEXT NOT NULL,
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    metric  TEXT NOT NULL,
    bucket  {ts} NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (backend, name, version, metric, bucket)
){keyed};
-- Numeric model outputs per model version, output field and hour, in fixed bins
-- (gateway/modelrisk/stats.py output_bin): drift is the PSI of a window against the reference.
CREATE TABLE model_outputs (
    backend TEXT NOT NULL,
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    field   TEXT NOT NULL,
    bucket  {ts} NOT NULL,
    bin     INTEGER NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (backend, name, version, field, bucket, bin)
){keyed};
-- The reference window of each model version's outputs (chosen at approval, or else its first
-- days in use): the histogram as JSON {{field: {{bin: n}}}}, copied so later pruning leaves it.
CREATE TABLE model_references (
    backend   TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    since     {ts} NOT NULL,
    until     {ts} NOT NULL,
    set_at    {ts} NOT NULL,
    set_by    TEXT NOT NULL,
    histogram TEXT NOT NULL,
    PRIMARY KEY (backend, name, version)
);
-- One row per model version and monitored rate while in breach: the compare-and-set that lets
-- one replica act on a breach. Evidence counts from not_before (moved on when an admin clears).
CREATE TABLE model_breaches (
    backend    TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    metric     TEXT NOT NULL,
    open       INTEGER NOT NULL,
    opened_at  {ts},
    not_before {ts},
    PRIMARY KEY (backend, name, version, metric)
);
"""


def policy_versions(ts: str) -> str:
    """Every policy version the gateway loaded (see gateway/policy/versions.py); ``ts`` as in
    `model_inventory`. A row is written once, with its ``policy.loaded`` event."""
    return f"""
-- One row per policy digest: the exact texts it was computed from (files: a JSON array of
-- [name, text] in digest order), so an auditor can read the rules in force for any decision.
CREATE TABLE policy_versions (
    digest    TEXT PRIMARY KEY,
    files     TEXT NOT NULL,
    source    TEXT NOT NULL,
    loaded_at {ts} NOT NULL,
    loaded_by TEXT NOT NULL,
    -- Rank of this digest's latest policy.loaded event: the highest is the version in force,
    -- so a replica or a restart loading it again writes no event, a change back to it does.
    last_load INTEGER NOT NULL
);
"""


def policy_change(ts: str) -> str:
    """The shadow policy and what it would have decided otherwise (see gateway/core/shadow.py);
    ``ts`` as in `model_inventory`. The enforced version is the highest ``last_load`` of
    ``policy_versions``."""
    return f"""
-- At most one row: the version every replica also evaluates each live decision under, without
-- acting on it (digest NULL: none).
CREATE TABLE policy_shadow (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    digest TEXT,
    since  {ts} NOT NULL,
    set_by TEXT NOT NULL
);
-- One row per live decision the shadow version would have decided otherwise.
CREATE TABLE shadow_disagreements (
    shadow_digest   TEXT NOT NULL,
    decision_id     TEXT NOT NULL,
    enforced_digest TEXT NOT NULL,
    application     TEXT NOT NULL,
    made_at         {ts} NOT NULL,
    old_action      TEXT NOT NULL,
    new_action      TEXT NOT NULL,
    old_tier        TEXT NOT NULL,
    new_tier        TEXT NOT NULL,
    old_rule        TEXT NOT NULL,
    new_rule        TEXT NOT NULL,
    PRIMARY KEY (shadow_digest, decision_id)
);
"""
