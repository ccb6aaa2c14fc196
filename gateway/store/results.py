"""Small values the store protocol hands back: the auditors' side of the trail, a queue
position, what an account change did."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.audit.checkpoints import Checkpoint
    from gateway.audit.query import AuditLog


@dataclass(frozen=True, slots=True)
class AuditSide:
    """A running store's audit trail for auditors, and its checkpoint storage."""

    log: AuditLog
    """Queries, exports and verification, checkpoints checked with the signer's public key."""
    latest: Checkpoint | None
    """The last stored checkpoint, when there is one."""
    save: Callable[[Checkpoint], Awaitable[None]]
    """Store one signed checkpoint."""
    close: Callable[[], Awaitable[None]] | None = None
    """Release what `save` holds, when it holds anything."""
    tree_root: Callable[[int], Awaitable[str]] | None = None
    """The Merkle root (hex) of the first n events, for a checkpoint: through what `save`
    holds, when that needs no new file handle; None: the log's own ``tree_root_hex``."""


QueueCursor = tuple[str, int, int]
"""Keyset position in a review queue: (deadline or ``~``, tier rank, task id) of a page's end."""


@dataclass(frozen=True, slots=True)
class AccountChanges:
    """What changing an account ended beside the account row (both 0 unless it disabled it)."""

    sessions_ended: int = 0
    """Reviewer UI sessions deleted."""
    leases_released: int = 0
    """Open review tasks it held, given back."""
