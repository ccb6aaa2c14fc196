"""The outbox: messages that must leave the gateway, written with the change that causes them.

A held decision that becomes final or is escalated puts its message in the ``outbox`` table in
the same transaction (`enqueue_final`, `enqueue_escalated`, called from `gateway.store.reviews`
and `gateway.store.sla`), so a crash between the commit and the delivery loses nothing: the
delivery task (`gateway.notify.delivery`) finds the row after a restart, with the same id.

Delivery is at least once. A replica claims due rows by setting a lease (``lease_owner``,
``lease_until``) in a short transaction of its own; on PostgreSQL the rows are read with
``FOR UPDATE SKIP LOCKED``, so two replicas claiming at the same moment never take the same row,
and on SQLite the one writer serialises claims. The lease keeps other replicas away while the
message is being sent, and hands the row back to everyone when a replica dies holding it.

Each row's id is derived from what caused it (``msg_<decision>_final``), so the same change can
never queue two messages, and the receiver deduplicates on it (Standard Webhooks ``webhook-id``).
The statements are in ``?`` style, written once for both databases.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.errors import FailedPrecondition, NotFound
from gateway.store import codec
from gateway.store.callbacks import callback_url
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts
from gateway.types import AuditDraft, Decision

T = TypeVar("T")

DECISION_FINAL = "decision.final"
DECISION_ESCALATED = "decision.escalated"
WEBHOOK = "webhook"
"""The channel of messages to an application's webhook endpoint."""
EMAIL = "email"
CHAT = "chat"
REVIEWER_CHANNELS = (EMAIL, CHAT)
"""The channels of messages to reviewers (each sent only when configured)."""
REVIEW_QUEUED = "review.queued"
REVIEW_SLA = "review.sla_warning"
REVIEW_ESCALATED = "review.escalated"
MODEL_BREACH = "model.breach"


def outbox_ddl(ts: str) -> str:
    """The outbox table; ``ts`` as in `gateway.store.ddl.model_inventory`."""
    return f"""
-- Messages to deliver at least once (gateway/store/outbox.py). since: start of the current
-- delivery window (reset when an admin re-sends a dead message); next_at: the next attempt.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    topic        TEXT NOT NULL,
    application  TEXT NOT NULL,
    decision_id  TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   {ts} NOT NULL,
    since        {ts} NOT NULL,
    next_at      {ts} NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  {ts},
    delivered_at {ts},
    dead_at      {ts},
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;
-- Which review items reviewers were told about (kind: queued, sla), so every replica's scan
-- tells them once (gateway/store/outbox_notices.py).
CREATE TABLE outbox_marks (
    decision_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    at          {ts} NOT NULL,
    PRIMARY KEY (decision_id, kind)
);
"""


_COLUMNS = (
    "id, channel, topic, application, decision_id, body, created_at, since, attempts, "
    "delivered_at, dead_at, last_error"
)
_INSERT = (
    "INSERT INTO outbox (id, channel, topic, application, decision_id, body, created_at, "
    "since, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_DUE = (
    f"SELECT {_COLUMNS} FROM outbox "  # noqa: S608 (constants)
    "WHERE delivered_at IS NULL AND dead_at IS NULL AND next_at <= ? "
    "AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_at, id LIMIT 1"
)
_ANY_DUE = (
    "SELECT 1 FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL AND next_at <= ? "
    "AND (lease_until IS NULL OR lease_until < ?) LIMIT 1"
)
_LEASE = "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ?"
_DELIVERED = (
    "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, lease_owner = NULL, "
    "lease_until = NULL, last_error = '' WHERE id = ? AND lease_owner = ?"
)
_FAILED = (
    "UPDATE outbox SET attempts = attempts + 1, next_at = ?, dead_at = ?, last_error = ?, "
    "lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?"
)
_SINCE = "SELECT since FROM outbox WHERE id = ?"
_RESEND = (
    "UPDATE outbox SET dead_at = NULL, delivered_at = NULL, since = ?, next_at = ?, "
    "lease_owner = NULL, lease_until = NULL "
    "WHERE id = ? AND (dead_at IS NOT NULL OR delivered_at IS NOT NULL)"
)
_EXISTS = "SELECT dead_at, delivered_at FROM outbox WHERE id = ?"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One row of the outbox."""

    id: str
    """Stable across every attempt and restart: the receiver deduplicates on it."""
    channel: str
    topic: str
    application: str
    decision_id: str
    body: dict[str, Any]
    """What was known when the message was queued (the rest is read at delivery)."""
    created_at: datetime
    since: datetime
    """Start of the current delivery window (``created_at``, or when an admin re-sent it)."""
    attempts: int = 0
    delivered_at: datetime | None = None
    dead_at: datetime | None = None
    last_error: str = ""


def _message(row: Sequence[Any]) -> OutboxMessage:
    mid, channel, topic, app, decision_id, body, created, since, attempts, delivered, dead, err = (
        row
    )
    return OutboxMessage(
        id=mid,
        channel=channel,
        topic=topic,
        application=app,
        decision_id=decision_id,
        body=codec.loads_opt(body) or {},
        created_at=parse_ts(created),
        since=parse_ts(since),
        attempts=attempts,
        delivered_at=codec.parse_ts_opt(delivered),
        dead_at=codec.parse_ts_opt(dead),
        last_error=err,
    )


def message_id(decision_id: str, topic: str, suffix: str = "") -> str:
    """The stable id of ``topic``'s message about a decision."""
    name = topic.rsplit(".", 1)[-1]
    return f"msg_{decision_id}_{name}" + (f"_{suffix}" if suffix else "")


async def insert(
    tx: WriteTx,
    mid: str,
    channel: str,
    topic: str,
    application: str,
    decision_id: str,
    body: dict[str, Any],
) -> bool:
    """Queue one message in ``tx``; False when a message with this id exists already."""
    now = tx.now
    row = (mid, channel, topic, application, decision_id, codec.dumps(body), now, now, now)
    return await tx.execute(_INSERT, *row) == 1


async def _enqueue(
    tx: WriteTx, topic: str, decision: Decision, body: dict[str, Any], suffix: str = ""
) -> None:
    """Queue a webhook message in the transaction ``tx`` (nothing when its id is queued already).

    Every final or escalated held decision is queued, whether or not its application names an
    endpoint: the policy in force when it is sent decides (the store knows no policy).
    """
    mid = message_id(decision.id, topic, suffix)
    await insert(tx, mid, WEBHOOK, topic, decision.application, decision.id, body)


async def enqueue_final(tx: WriteTx, decision: Decision) -> None:
    """Queue ``decision.final`` for a decision that became final in ``tx``. The body holds
    only the status: the decision itself is read and converted when it is sent (it never
    changes again), so nothing about its content is kept twice."""
    body: dict[str, Any] = {"status": decision.status.value}
    url = await callback_url(tx, decision.id)
    if url:  # the Decide named its own URL (an allowed host): it goes there
        body["callback_url"] = url
    await _enqueue(tx, DECISION_FINAL, decision, body)


async def enqueue_escalated(
    tx: WriteTx, decision: Decision, reason: str, groups: Sequence[str]
) -> None:
    """Queue ``decision.escalated`` for a decision escalated in ``tx`` (one per tier reached),
    and tell the new tier's reviewer ``groups`` by email and chat."""
    body = {"tier": decision.tier, "reason": reason, "at": tx.now}
    await _enqueue(tx, DECISION_ESCALATED, decision, body, decision.tier)
    notice = {"groups": list(groups), "items": [reviewer_item(decision)], "reason": reason}
    for channel in REVIEWER_CHANNELS:
        mid = message_id(decision.id, REVIEW_ESCALATED, f"{decision.tier}_{channel}")
        await insert(tx, mid, channel, REVIEW_ESCALATED, decision.application, decision.id, notice)


def reviewer_item(decision: Decision) -> dict[str, Any]:
    """What a reviewer message says about an item: never its input or output (personal data
    stays in the gateway; the link leads to it, behind sign-in)."""
    return {"decision_id": decision.id, "application": decision.application, "tier": decision.tier}


class OutboxStore(Protocol):
    """What the delivery task and the admin API need from the store."""

    async def claim_outbox(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages to ``owner`` until ``until``."""
        ...

    async def outbox_delivered(self, message_id: str, owner: str, at: datetime) -> bool:
        """Record a delivery; False when ``owner`` no longer held the lease."""
        ...

    async def outbox_failed(
        self,
        message_id: str,
        owner: str,
        error: str,
        *,
        now: datetime,
        retry_at: datetime,
        max_age: timedelta,
    ) -> bool:
        """Record a failed attempt: retry at ``retry_at``, or dead-letter the message when its
        delivery window began ``max_age`` or longer before ``now``. False when ``owner`` no
        longer held the lease."""
        ...

    async def outbox_list(self, *, dead: bool, limit: int) -> list[OutboxMessage]:
        """Dead-lettered messages (``dead``) or messages still to deliver, oldest first."""
        ...

    async def outbox_resend(self, message_id: str, now: datetime, event: AuditDraft) -> None:
        """Make a dead-lettered (or delivered) message due again with a fresh retry window,
        recording ``event`` in the same transaction."""
        ...

    async def outbox_message(self, message_id: str) -> OutboxMessage | None:
        """One message, or None."""
        ...

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many messages are still to deliver, and when the oldest was queued."""
        ...

    async def queue_reviewer_notices(
        self,
        now: datetime,
        *,
        interval: timedelta,
        sla_share: float,
        breach_groups: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Queue new-item batches and SLA warnings for reviewers (`gateway.store.outbox_notices`);
        ``(items announced, items warned)``."""
        ...

    async def purge_outbox(self, before: datetime) -> tuple[int, int]:
        """Delete what the outbox no longer needs (`gateway.store.outbox_retention`)."""
        ...


class OutboxMixin:
    """`OutboxStore` for both stores (see the module docstring)."""

    _SKIP_LOCKED: ClassVar[str]

    if TYPE_CHECKING:

        def _check_running(self) -> None: ...

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

        async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def claim_outbox(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxMessage]:
        now_s, until_s = format_ts(now), format_ts(until)
        due = _DUE + self._SKIP_LOCKED
        # Looked for on a reader first: most looks find nothing, and then take no write
        # transaction (no turn of SQLite's one writer, no PostgreSQL transaction per replica).
        self._check_running()
        if not await self._rows(_ANY_DUE, (now_s, now_s)):
            return []

        async def claim(tx: WriteTx) -> list[OutboxMessage]:
            taken: list[OutboxMessage] = []
            # One row at a time: the leased row no longer matches, so the next read moves on.
            for _ in range(limit):
                row = await tx.fetchrow(due, now_s, now_s)
                if row is None:
                    break
                await tx.execute(_LEASE, owner, until_s, row[0])
                taken.append(_message(row))
            return taken

        return await self._unchained(claim)

    async def outbox_delivered(self, message_id: str, owner: str, at: datetime) -> bool:
        at_s = format_ts(at)

        async def delivered(tx: WriteTx) -> bool:
            return await tx.execute(_DELIVERED, at_s, message_id, owner) == 1

        return await self._unchained(delivered)

    async def outbox_failed(
        self,
        message_id: str,
        owner: str,
        error: str,
        *,
        now: datetime,
        retry_at: datetime,
        max_age: timedelta,
    ) -> bool:
        now_s, retry_s, cutoff = format_ts(now), format_ts(retry_at), format_ts(now - max_age)

        async def failed(tx: WriteTx) -> bool:
            row = await tx.fetchrow(_SINCE, message_id)
            if row is None:
                return False
            dead = now_s if row[0] <= cutoff else None
            return await tx.execute(_FAILED, retry_s, dead, error[:500], message_id, owner) == 1

        return await self._unchained(failed)

    async def outbox_list(self, *, dead: bool, limit: int) -> list[OutboxMessage]:
        self._check_running()
        where = (
            "dead_at IS NOT NULL ORDER BY dead_at, id"
            if dead
            else "delivered_at IS NULL AND dead_at IS NULL ORDER BY next_at, id"
        )
        rows = await self._rows(f"SELECT {_COLUMNS} FROM outbox WHERE {where} LIMIT ?", (limit,))  # noqa: S608
        return [_message(r) for r in rows]

    async def outbox_resend(self, message_id: str, now: datetime, event: AuditDraft) -> None:
        now_s, draft = format_ts(now), prepare_draft(event)

        async def resend(tx: WriteTx) -> Exception | None:
            # Checked before writing anything: a refusal leaves the transaction untouched.
            row = await tx.fetchrow(_EXISTS, message_id)
            if row is None:
                return NotFound("outbox message", message_id)
            if row[0] is None and row[1] is None:
                return FailedPrecondition(
                    f"outbox message {message_id!r} is still being delivered (retried until it "
                    "is delivered or dead-lettered); only those can be re-sent"
                )
            await tx.execute(_RESEND, now_s, now_s, message_id)
            await tx.append([draft])
            return None

        refused = await self._write(resend)
        if refused is not None:
            raise refused

    async def outbox_message(self, message_id: str) -> OutboxMessage | None:
        self._check_running()
        rows = await self._rows(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (message_id,))  # noqa: S608
        return _message(rows[0]) if rows else None

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        self._check_running()
        rows = await self._rows(
            "SELECT COUNT(*), MIN(created_at) FROM outbox "
            "WHERE delivered_at IS NULL AND dead_at IS NULL",
            (),
        )
        return (int(rows[0][0]), codec.parse_ts_opt(rows[0][1])) if rows else (0, None)
