"""Read-only access to a stored audit trail with no gateway running, for the ``audit`` CLI.

`open_trail` takes a database file or a PostgreSQL URL and returns a `TrailReader`; the CLI
reads a running gateway over gRPC through the same protocol. Every call is synchronous and
streams: a trail of any length is exported or verified in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gateway.audit.query import ChainReport, EventFilter
from gateway.types import AuditEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.audit.checkpoints import Checkpoint
    from gateway.policy.versions import PolicyVersion


class TrailReader(Protocol):
    """A stored audit trail, read-only."""

    def query(self, flt: EventFilter, limit: int) -> Iterator[AuditEvent]:
        """Matching events in the filter's order, at most ``limit`` (0: all)."""
        ...

    def trail(self, decision_id: str) -> list[AuditEvent]:
        """Every event of one decision, in chain order."""
        ...

    def export(self, first: int, last: int | None) -> Iterator[AuditEvent]:
        """Events ``first..last`` in chain order."""
        ...

    def verify(
        self, public_key: Ed25519PublicKey | None, extra: tuple[Checkpoint, ...] = ()
    ) -> ChainReport:
        """The whole chain, and every stored checkpoint and ``extra`` when keyed.

        Raises:
            CheckpointError: A checkpoint's signature does not verify with ``public_key``.
            InvalidInput: The trail cannot be read (naming the option that chose it).
        """
        ...

    def latest_checkpoint(self) -> Checkpoint | None: ...

    def policy_version(self, digest: str) -> PolicyVersion | None:
        """The stored policy version ``digest`` (its files' exact texts), or None."""
        ...


def open_trail(location: str | Path) -> TrailReader:
    """The trail in the database file at ``location``, or in the PostgreSQL database at a
    ``postgresql://`` URL (read-only: the primary, a replica or a restored backup).

    Raises:
        FileNotFoundError: No database file at ``location``.
    """
    from gateway.store import is_postgres_url

    if isinstance(location, str) and is_postgres_url(location):
        from gateway.store.postgres.offline import PostgresTrailReader

        return PostgresTrailReader(location.strip())
    from gateway.store.sqlite.audit import FileTrailReader

    path = Path(location)
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    return FileTrailReader(path)
