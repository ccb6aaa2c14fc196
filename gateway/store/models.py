"""The model inventory: written once for both databases (through `gateway.store.tx.WriteTx`
and the shared reads' ``_rows``), in the shape of `gateway.store.switches`.

A change runs inside the store's writer transaction with its ``model.*`` audit event chained in
the same transaction, so the record and its history never diverge. A transition is a
compare-and-set on the stored status (``UPDATE … WHERE status = ?``): of two transitions
computed from the same read, one changes the row and the other changes nothing and is refused
with `Conflict`, writing no event. A store shared by several processes also announces each change
(`_ANNOUNCE_MODEL`, PostgreSQL's ``NOTIFY``) so followers re-read at once.

The lifecycle's history is the trail itself: `model_events` reads the ``model.*`` events (made
with an empty decision id, so the ``audit_events (decision_id)`` index finds them among the few
events that concern no decision) and keeps those whose payload names the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.errors import Conflict, NotFound
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.store import codec
from gateway.store.sql import insert
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts, parse_ts
from gateway.types import AuditDraft, AuditEvent

T = TypeVar("T")

MODEL_COLUMNS = (
    "backend",
    "name",
    "version",
    "owner",
    "validator",
    "intended_use",
    "max_tier",
    "status",
    "validated_at",
    "validation_expires_at",
    "documentation_url",
    "limitations",
    "registered_at",
    "updated_at",
    "updated_by",
    "escalated",
    "escalation_reason",
    "escalated_at",
)
"""The ``models`` table's columns, in the order of `model_row`."""

_KEY = "backend = ? AND name = ? AND version = ?"
_LIFECYCLE = MODEL_COLUMNS[3:15]
"""What a lifecycle change writes: not the key, not the escalation columns (monitoring's)."""
INSERT_MODEL = f"{insert('models', MODEL_COLUMNS)} ON CONFLICT (backend, name, version) DO NOTHING"
SELECT_MODELS = f"SELECT {', '.join(MODEL_COLUMNS)} FROM models"  # noqa: S608 (constants only)
UPDATE_MODEL = (
    "UPDATE models SET "  # noqa: S608 (constants only)
    + ", ".join(f"{c} = ?" for c in _LIFECYCLE)
    + f" WHERE {_KEY} AND status = ?"
)
"""The lifecycle columns, if the status is still the one the change was computed from."""
SELECT_MODEL_EVENTS = (
    f"{codec.SELECT_EVENTS} WHERE decision_id = '' AND type LIKE 'model.%' ORDER BY seq"
)


def _ts(value: Any) -> Any:
    return None if value is None else format_ts(value)


def model_row(r: ModelRecord) -> tuple[Any, ...]:
    """``r`` as a row in `MODEL_COLUMNS` order."""
    return (
        r.key.backend,
        r.key.name,
        r.key.version,
        r.owner,
        r.validator,
        r.intended_use,
        r.max_tier,
        r.status.value,
        _ts(r.validated_at),
        _ts(r.validation_expires_at),
        r.documentation_url,
        r.limitations,
        format_ts(r.registered_at),
        format_ts(r.updated_at),
        r.updated_by,
        int(r.escalated),
        r.escalation_reason,
        _ts(r.escalated_at),
    )


def model_from_row(row: Sequence[Any]) -> ModelRecord:
    """A `ModelRecord` from a row in `MODEL_COLUMNS` order."""
    (backend, name, version, owner, validator, use, max_tier, status, validated_at, expires) = row[
        :10
    ]
    (doc, limitations, registered, updated, updated_by, escalated, reason, escalated_at) = row[10:]
    return ModelRecord(
        key=ModelKey(backend, name, version),
        owner=owner,
        validator=validator,
        intended_use=use,
        max_tier=max_tier,
        status=ModelStatus(status),
        validated_at=None if validated_at is None else parse_ts(validated_at),
        validation_expires_at=None if expires is None else parse_ts(expires),
        documentation_url=doc,
        limitations=limitations,
        registered_at=parse_ts(registered),
        updated_at=parse_ts(updated),
        updated_by=updated_by,
        escalated=bool(escalated),
        escalation_reason=reason,
        escalated_at=None if escalated_at is None else parse_ts(escalated_at),
    )


def names_model(event: AuditEvent, key: ModelKey) -> bool:
    """True when ``event``'s payload names ``key`` (``backend``, ``name``, ``version``)."""
    p = event.payload
    if p is None:
        return False
    return (p.get("backend"), p.get("name"), p.get("version")) == (
        key.backend,
        key.name,
        key.version,
    )


class ModelsMixin:
    """The model inventory for both stores (see the module docstring)."""

    _ANNOUNCE_MODEL: str | None = None
    """A ``?``-style statement announcing a change to other processes (its one parameter:
    the key as ``backend/name@version``), run in the change's transaction; None where nobody
    else listens."""

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def register_model(self, record: ModelRecord, event: AuditDraft) -> None:
        """Store a new model version with its event. Raises `Conflict` when the key exists."""
        draft = prepare_draft(event)
        row = model_row(record)
        announce = self._ANNOUNCE_MODEL

        async def add(tx: WriteTx) -> Any:
            if not await tx.execute(INSERT_MODEL, *row):
                return Conflict(f"model {record.key} is already registered")
            await tx.append([draft])
            if announce is not None:
                await tx.execute(announce, str(record.key))
            return None

        await self._write(add)

    async def update_model(
        self, record: ModelRecord, expected_status: ModelStatus, event: AuditDraft
    ) -> None:
        """Store ``record``'s lifecycle fields in the row of its key, with ``event``, if the
        stored status is still ``expected_status``. The escalation fields are left as stored:
        they are monitoring's, and a transition must not undo an escalation made meanwhile.

        Raises:
            NotFound: No model version of that key.
            Conflict: Its status changed meanwhile (another transition won).
        """
        draft = prepare_draft(event)
        k = record.key
        values = model_row(record)[3:15]
        announce = self._ANNOUNCE_MODEL

        async def change(tx: WriteTx) -> Any:
            if await tx.execute(
                UPDATE_MODEL, *values, k.backend, k.name, k.version, expected_status.value
            ):
                await tx.append([draft])
                if announce is not None:
                    await tx.execute(announce, str(k))
                return None
            now = await tx.fetchrow(
                f"SELECT status FROM models WHERE {_KEY}",  # noqa: S608 (constants only)
                k.backend,
                k.name,
                k.version,
            )
            if now is None:
                return NotFound("model", str(k))
            return Conflict(
                f"model {k} is {now[0]} now, no longer {expected_status.value}: it was changed "
                "meanwhile; look again and retry"
            )

        await self._write(change)

    async def get_model(self, key: ModelKey) -> ModelRecord | None:
        rows = await self._rows(
            f"{SELECT_MODELS} WHERE {_KEY}", (key.backend, key.name, key.version)
        )
        return model_from_row(tuple(rows[0])) if rows else None

    async def list_models(self) -> list[ModelRecord]:
        rows = await self._rows(f"{SELECT_MODELS} ORDER BY backend, name, version", ())
        return [model_from_row(tuple(r)) for r in rows]

    async def model_events(self, key: ModelKey) -> list[AuditEvent]:
        """The ``model.*`` events naming ``key``, in chain order."""
        rows = await self._rows(SELECT_MODEL_EVENTS, ())
        events = (codec.event_from_row(tuple(r)) for r in rows)
        return [e for e in events if names_model(e, key)]

    def subscribe_models(self, callback: Callable[[], None]) -> None:
        """Nothing announces inventory changes here (followers re-read on their timer)."""
