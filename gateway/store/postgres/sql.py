"""SQL text shared by the PostgreSQL store's modules.

Assembled only from the constant column tuples in `gateway.store.codec` (S608 is about untrusted
text in SQL; there is none); every value is a bound parameter.
"""

from __future__ import annotations

from gateway.store import codec, sql

INSERT_DECISION = sql.numbered(sql.INSERT_DECISION)
INSERT_TASK = sql.numbered(sql.INSERT_TASK)

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
