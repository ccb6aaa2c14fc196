"""A Decide's own webhook URL for its ``decision.final`` (``callback_url``, allowed by the
application's ``webhook.callback_hosts``): written with the decision, in its create
transaction, and read by `gateway.store.outbox` when the decision becomes final."""

from __future__ import annotations

from gateway.store.tx import WriteTx

CALLBACKS_DDL = """
-- A Decide's own webhook URL for its decision.final (gateway/store/callbacks.py).
CREATE TABLE decision_callbacks (
    decision_id TEXT PRIMARY KEY,
    url         TEXT NOT NULL
);
"""
INSERT_CALLBACK = "INSERT INTO decision_callbacks (decision_id, url) VALUES (?, ?)"
"""``?`` style; rows ``(decision id, url)`` (`gateway.store.writer.CreatePlan.callbacks`)."""
_CALLBACK = "SELECT url FROM decision_callbacks WHERE decision_id = ?"


async def callback_url(tx: WriteTx, decision_id: str) -> str:
    """The decision's own URL, or "" when its Decide named none."""
    row = await tx.fetchrow(_CALLBACK, decision_id)
    return "" if row is None else str(row[0])
