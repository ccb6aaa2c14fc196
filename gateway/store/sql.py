"""SQL text written once for both databases, in SQLite's ``?`` placeholder style.

Statements whose shape is the same on both databases are written here once; the PostgreSQL
store converts them with `numbered` when its module is loaded (never per call). Assembled only
from the constant column tuples in `gateway.store.codec` (S608 is about untrusted text in SQL;
there is none); every value is a bound parameter.
"""

from __future__ import annotations

import re

from gateway.store import codec

_MARK = re.compile(r"\?")


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the SQL holds no literal ``?``)."""
    n = 0

    def mark(_m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return _MARK.sub(mark, sql)


def insert(table: str, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``."""
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


INSERT_DECISION = insert("decisions", codec.DECISION_COLUMNS)
INSERT_TASK = insert("review_tasks", codec.TASK_COLUMNS)
INSERT_EVENT = insert("audit_events", codec.EVENT_COLUMNS)
SELECT_TASKS = f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM review_tasks"  # noqa: S608
SELECT_KEY = f"SELECT {', '.join(codec.API_KEY_COLUMNS)} FROM api_keys WHERE key_id = ?"  # noqa: S608

UPDATE_REVIEWED = (
    "UPDATE decisions SET status = ?, final_output = ?, updated_at = ? "
    "WHERE id = ? AND status = ? AND (CAST(? AS BIGINT) IS NULL OR CAST(? AS BIGINT) = "
    "(SELECT COUNT(*) FROM reviews r WHERE r.decision_id = decisions.id))"
)
"""Move a decision on if it still has the expected status (and number of reviews, when given)."""
INSERT_REVIEW = (
    "INSERT INTO reviews (decision_id, seq, reviewer, role, verdict, reason, output, at) "
    "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ? FROM reviews WHERE decision_id = ?"
)
CLOSE_DECISION_TASKS = (
    "UPDATE review_tasks SET closed_at = ? "
    "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL"
)
RELEASE_DECISION_TASKS = (
    "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
    "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL"
)
INSERT_KEY = f"{insert('api_keys', codec.API_KEY_COLUMNS)} ON CONFLICT (key_id) DO NOTHING"
REVOKE_KEY = "UPDATE api_keys SET revoked = 1 WHERE key_id = ? AND revoked = 0"

INSERT_ACCOUNT = f"{insert('accounts', codec.ACCOUNT_COLUMNS)} ON CONFLICT (name) DO NOTHING"
SELECT_ACCOUNTS = f"SELECT {', '.join(codec.ACCOUNT_COLUMNS)} FROM accounts"  # noqa: S608
UPDATE_ACCOUNT = "UPDATE accounts SET role = ?, groups = ?, disabled = ? WHERE name = ?"
OTHER_ENABLED_ADMINS = (
    "SELECT COUNT(*) FROM accounts WHERE role = 'admin' AND disabled = 0 AND name <> ?"
)
RELEASE_ACCOUNT_LEASES = (
    "UPDATE review_tasks SET claimed_by = NULL, claimed_until = NULL "
    "WHERE claimed_by = ? AND closed_at IS NULL"
)
"""Give back every open review task an account holds, live lease or not (it is disabled)."""
UPSERT_SWITCH = (
    f"{insert('switches', codec.SWITCH_COLUMNS)} ON CONFLICT (kind, name) DO UPDATE SET "
    "paused = excluded.paused, changed_by = excluded.changed_by, "
    "changed_at = excluded.changed_at, reason = excluded.reason"
)
SELECT_SWITCHES = f"SELECT {', '.join(codec.SWITCH_COLUMNS)} FROM switches ORDER BY kind, name"  # noqa: S608
