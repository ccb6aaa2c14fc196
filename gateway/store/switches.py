"""Kill switches: written once for both databases (through `gateway.store.tx.WriteTx` and the
shared reads' ``_rows``). A change runs inside the store's writer transaction, with its audit
event chained in the same transaction; a store shared by several processes also announces it
there (`_ANNOUNCE_SWITCH`, PostgreSQL's ``NOTIFY``), so the announcement goes out only if the
change commits.
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

    _ANNOUNCE_SWITCH: str | None = None
    """A ``?``-style statement announcing a change to other processes (its one parameter:
    ``<kind> <name>``), run in the change's transaction; None where nobody else listens."""

    if TYPE_CHECKING:

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def set_switch(self, state: SwitchState, event: AuditDraft) -> None:
        """Pause or resume an application or backend, with its audit event (and announced)."""
        draft = prepare_draft(event)
        row = codec.switch_row(state)
        announce = self._ANNOUNCE_SWITCH

        async def put(tx: WriteTx) -> None:
            await tx.execute(sql.UPSERT_SWITCH, *row)
            await tx.append([draft])
            if announce is not None:
                await tx.execute(announce, f"{state.kind} {state.name}")

        await self._write(put)

    async def list_switches(self) -> list[SwitchState]:
        return [codec.switch_from_row(tuple(r)) for r in await self._rows(sql.SELECT_SWITCHES, ())]

    def subscribe_switches(self, callback: Callable[[], None]) -> None:
        """Nothing announces switch changes here (the followers' timer reads them)."""
