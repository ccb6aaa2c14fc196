"""Reviewer notices queued from the review queue itself: new items, batched per group, and items
near the end of their SLA. Written once for both databases.

Neither is a state change of its own (a new item is written by the decision's creation, and an
SLA share passes with time), so a scan finds them: it reads open decision tasks no mark names
yet, then, in one transaction, marks each item (``outbox_marks``, a compare-and-set: only the
replica whose mark is inserted tells of it) and queues the outbox messages, so a crash either
leaves both or neither. A group hears of new items at most once per scan interval: the batch's
id names the group and the interval, and a second replica's batch for the same interval is
refused as a whole (its items wait for the next one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.store import codec
from gateway.store.outbox import (
    MODEL_BREACH,
    REVIEW_QUEUED,
    REVIEW_SLA,
    REVIEWER_CHANNELS,
    insert,
    message_id,
)
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts

T = TypeVar("T")

_UNMARKED = (
    "SELECT t.decision_id, t.application, t.tier, t.groups, t.created_at, t.deadline "
    "FROM review_tasks t LEFT JOIN outbox_marks m ON m.decision_id = t.decision_id "
    "AND m.kind = ? WHERE t.kind = 'decision' AND t.closed_at IS NULL AND m.decision_id IS NULL"
)
_MARK = (
    "INSERT INTO outbox_marks (decision_id, kind, at) VALUES (?, ?, ?) "
    "ON CONFLICT (decision_id, kind) DO NOTHING"
)
_BREACH_KEY = (
    "(b.backend || '/' || b.name || '@' || b.version || ':' || b.metric || '@' || "
    "COALESCE(b.opened_at, ''))"
)
"""Names one opening of one breach (``outbox_marks.decision_id`` of its mark)."""
_OPEN_BREACHES = (
    f"SELECT b.backend, b.name, b.version, b.metric, b.opened_at, {_BREACH_KEY} "  # noqa: S608
    "FROM model_breaches b LEFT JOIN outbox_marks m "
    f"ON m.kind = 'breach' AND m.decision_id = {_BREACH_KEY} "
    "WHERE b.open = 1 AND m.decision_id IS NULL"
)
_QUEUED, _SLA, _BREACH = "queued", "sla", "breach"
_SCAN_LIMIT = 500
"""Items one scan takes; the rest wait for the next scan."""


class _Taken(Exception):
    """Another replica queued this interval's batch for a group first: undo this scan."""


@dataclass(frozen=True, slots=True)
class _Item:
    decision_id: str
    application: str
    tier: str
    groups: tuple[str, ...]
    created_at: datetime
    deadline: datetime | None

    def body(self) -> dict[str, Any]:
        """What a message says of the item (never input or output: see `outbox.reviewer_item`)."""
        return {"decision_id": self.decision_id, "application": self.application, "tier": self.tier}


def _item(row: Sequence[Any]) -> _Item:
    decision_id, application, tier, groups, created, deadline = row
    return _Item(
        decision_id,
        application,
        tier,
        tuple(codec.loads_opt(groups) or ()),
        parse_ts(created),
        codec.parse_ts_opt(deadline),
    )


class NoticesMixin:
    """`queue_reviewer_notices` for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...

    async def _unmarked(self, kind: str, extra: str, params: tuple[Any, ...]) -> list[_Item]:
        rows = await self._rows(
            f"{_UNMARKED}{extra} ORDER BY t.id LIMIT ?", (kind, *params, _SCAN_LIMIT)
        )
        return [_item(r) for r in rows]

    async def queue_reviewer_notices(
        self,
        now: datetime,
        *,
        interval: timedelta,
        sla_share: float,
        breach_groups: Sequence[str] = (),
    ) -> tuple[int, int]:
        """Queue new-item batches, SLA warnings and monitoring breaches (to ``breach_groups``);
        ``(items announced, items warned)``.

        ``interval`` names the batch (one per group and interval); an open item is warned once
        ``sla_share`` of the time from its creation to its deadline has passed. A breach is told
        once per opening (a breach cleared and opened again is told again).
        """
        queued = await self._queue_new(now, interval)
        warned = await self._queue_sla(now, sla_share)
        await self._queue_breaches(breach_groups)
        return queued, warned

    async def _queue_breaches(self, groups: Sequence[str]) -> int:
        rows = await self._rows(f"{_OPEN_BREACHES} LIMIT ?", (_SCAN_LIMIT,))
        if not rows:
            return 0

        async def queue(tx: WriteTx) -> int:
            told = 0
            for backend, name, version, metric, opened_at, key in rows:
                if await tx.execute(_MARK, key, _BREACH, tx.now) != 1:
                    continue
                told += 1
                body = {
                    "groups": list(groups),
                    "model": {"backend": backend, "name": name, "version": version},
                    "metric": metric,
                    "opened_at": opened_at,
                }
                digest = hashlib.sha256(key.encode()).hexdigest()[:32]
                for channel in REVIEWER_CHANNELS:
                    mid = f"msg_breach_{digest}_{channel}"
                    await insert(tx, mid, channel, MODEL_BREACH, "", "", body)
            return told

        return await self._unchained(queue)

    async def _queue_new(self, now: datetime, interval: timedelta) -> int:
        items = await self._unmarked(_QUEUED, "", ())
        if not items:
            return 0
        bucket = int(now.timestamp() // max(interval.total_seconds(), 1.0))

        async def queue(tx: WriteTx) -> int:
            groups: dict[str, list[dict[str, Any]]] = {}
            taken = 0
            for item in items:
                if await tx.execute(_MARK, item.decision_id, _QUEUED, tx.now) != 1:
                    continue  # told by another replica meanwhile
                taken += 1
                for group in item.groups:
                    groups.setdefault(group, []).append(item.body())
            for group, listed in sorted(groups.items()):
                body = {"groups": [group], "items": listed}
                for channel in REVIEWER_CHANNELS:
                    mid = f"msg_queue_{group}_{bucket}_{channel}"
                    if not await insert(tx, mid, channel, REVIEW_QUEUED, "", "", body):
                        raise _Taken(group)
            return taken

        try:
            return await self._unchained(queue)
        except _Taken:
            return 0

    async def _queue_sla(self, now: datetime, share: float) -> int:
        items = await self._unmarked(
            _SLA, " AND t.deadline IS NOT NULL AND t.deadline > ?", (format_ts(now),)
        )
        due = [
            i
            for i in items
            if i.deadline is not None and now >= i.created_at + (i.deadline - i.created_at) * share
        ]
        if not due:
            return 0

        async def queue(tx: WriteTx) -> int:
            warned = 0
            for item in due:
                if await tx.execute(_MARK, item.decision_id, _SLA, tx.now) != 1:
                    continue
                warned += 1
                assert item.deadline is not None  # filtered above
                body = {
                    "groups": list(item.groups),
                    "items": [item.body()],
                    "deadline": format_ts(item.deadline),
                    "share": share,
                }
                for channel in REVIEWER_CHANNELS:
                    mid = message_id(item.decision_id, REVIEW_SLA, channel)
                    await insert(
                        tx, mid, channel, REVIEW_SLA, item.application, item.decision_id, body
                    )
            return warned

        return await self._unchained(queue)
