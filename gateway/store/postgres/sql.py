"""SQL text shared by the PostgreSQL store's modules.

Assembled only from the constant column tuples in `gateway.store.codec` (S608 is about untrusted
text in SQL; there is none); every value is a bound parameter.
"""

from __future__ import annotations

from gateway.store import codec


def _insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


INSERT_DECISION = _insert("decisions", codec.DECISION_COLUMNS)
INSERT_TASK = _insert("review_tasks", codec.TASK_COLUMNS)
INSERT_EVENT = _insert("audit_events", codec.EVENT_COLUMNS)

REVIEWS_SUBQUERY = (
    "(SELECT json_agg(json_build_array(r.seq, r.reviewer, r.role, r.verdict, r.reason,"
    " r.output::json, r.at))::text FROM reviews r WHERE r.decision_id = d.id)"
)
"""Every review of decision ``d`` as one JSON text, in the shape `codec.decision_from_row`
reads (the same as SQLite's ``REVIEWS_SUBQUERY``)."""

SELECT_DECISION = (
    "SELECT "  # noqa: S608
    + ", ".join(f"d.{c}" for c in codec.DECISION_COLUMNS)
    + ", "
    + REVIEWS_SUBQUERY
    + " FROM decisions d"
)
SELECT_TASKS = f"SELECT {', '.join(codec.TASK_COLUMNS)} FROM review_tasks"  # noqa: S608
SELECT_KEY = f"SELECT {', '.join(codec.API_KEY_COLUMNS)} FROM api_keys WHERE key_id = $1"  # noqa: S608
SELECT_EVENTS = codec.SELECT_EVENTS
