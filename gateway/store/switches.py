"""Kill switches: written once for both databases (through `gateway.store.tx.WriteTx` and the
shared reads' ``_rows``). A change runs inside the store's writer transaction, with its audit
event chained in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.store import codec, sql
from gateway.store.tx import WriteTx
from gateway.types import AuditDraft, SwitchState

T = TypeVar("T")


class SwitchesMixin:
    """Kill switches for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def set_switch(self, state: SwitchState, event: AuditDraft) -> None:
        """Pause or resume an application or backend, with its audit event."""
        draft = prepare_draft(event)
        row = codec.switch_row(state)

        async def put(tx: WriteTx) -> None:
            await tx.execute(sql.UPSERT_SWITCH, *row)
            await tx.append([draft])

        await self._write(put)

    async def list_switches(self) -> list[SwitchState]:
        return [codec.switch_from_row(tuple(r)) for r in await self._rows(sql.SELECT_SWITCHES, ())]
