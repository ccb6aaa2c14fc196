"""What an admin does with the outbox: list what waits or was dead-lettered, and re-send a
message (a dead-lettered one, or a delivered one a receiver lost), audited. The AdminService and
the ``outbox`` command both call this."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType, event
from gateway.errors import InvalidInput, NotFound
from gateway.store.outbox import OutboxMessage, OutboxStore

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

log = structlog.get_logger("gateway.notify")


class OutboxAdmin:
    """Lists and re-sends outbox messages.

    Args:
        store: The outbox.
        clock: The time now (UTC).
    """

    def __init__(
        self, store: OutboxStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    async def list(self, *, dead: bool, limit: int = 0) -> list[OutboxMessage]:
        """Dead-lettered messages (``dead``) or those still to deliver, oldest first.

        Raises:
            InvalidInput: ``limit`` is negative or above `MAX_LIMIT` (0 means `DEFAULT_LIMIT`).
        """
        if not 0 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be between 0 and {MAX_LIMIT}, not {limit}")
        return await self._store.outbox_list(dead=dead, limit=limit or DEFAULT_LIMIT)

    async def resend(self, message_id: str, actor: str) -> OutboxMessage:
        """Make a dead-lettered (or delivered) message due again, same id, with a fresh retry
        window, recorded as an ``outbox.resent`` event by ``actor``; the message as it is now.

        Raises:
            InvalidInput: ``message_id`` is empty or too long.
            NotFound: No such message.
            FailedPrecondition: It is still being delivered.
        """
        message_id = message_id.strip()
        if not message_id or len(message_id) > 200:
            raise InvalidInput("id", "a message id (as listed) is required, at most 200 characters")
        found = await self._store.outbox_message(message_id)
        if found is None:
            raise NotFound("outbox message", message_id)
        payload = {"message_id": message_id, "channel": found.channel, "topic": found.topic}
        resent = event(EventType.OUTBOX_RESENT, found.decision_id, actor, payload)
        await self._store.outbox_resend(message_id, self._clock(), resent)
        log.info("outbox_resent", message_id=message_id, actor=actor)
        message = await self._store.outbox_message(message_id)
        if message is None:  # re-sent just above; messages are never deleted
            raise NotFound("outbox message", message_id)
        return message
