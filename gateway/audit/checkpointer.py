"""Background task that signs the chain head every N events or T seconds.

It reads the head the store's writer already keeps in memory, so the decision path does no
extra work at all: no read, no event, no signature. Signing and storing happen here, off the
request path, at most once per poll.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from gateway.audit.checkpoints import Checkpoint, Signer
from gateway.periodic import Periodic

log = structlog.get_logger("gateway.audit")


class Checkpointer:
    """Signs ``head()`` when it has moved ``every_events`` events or ``every_seconds`` seconds.

    Args:
        head: The committed chain head ``(seq, hash)``.
        signer: Holds the private key.
        save: Stores a checkpoint durably.
        every_events: Sign once the head is this many events past the last checkpoint.
        every_seconds: Sign a head that moved at all after this long.
        last_seq: Seq of the newest stored checkpoint, so a restart does not re-sign it.
        close: Releases what ``save`` holds (a kept connection), after the final checkpoint.
        tree_root: Hex root of the audit Merkle tree over events ``1..seq``; when given,
            checkpoints sign it too (`gateway.audit.checkpoints.VERSION_TREE`).
    """

    def __init__(
        self,
        head: Callable[[], tuple[int, str]],
        signer: Signer,
        save: Callable[[Checkpoint], Awaitable[None]],
        *,
        every_events: int = 1000,
        every_seconds: float = 10.0,
        last_seq: int = 0,
        close: Callable[[], Awaitable[None]] | None = None,
        tree_root: Callable[[int], Awaitable[str]] | None = None,
    ) -> None:
        if every_events < 1:
            raise ValueError("every_events must be at least 1")
        if every_seconds <= 0:
            raise ValueError("every_seconds must be positive")
        self._head = head
        self._signer = signer
        self._save = save
        self._close = close
        self._tree_root = tree_root
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._last_seq = last_seq
        self._last_time = time.monotonic()
        self._retry_at = 0.0
        # Polls the in-memory head: cheap, so often enough that "every N events" is kept closely.
        self._loop = Periodic(
            "audit-checkpointer",
            self._poll,
            min(every_seconds, 0.25),
            failure_event="audit.checkpoint_failed",
            wait_first=True,
        )

    @property
    def last_seq(self) -> int:
        return self._last_seq

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop polling and sign the final head, so a clean shutdown leaves the tail signed."""
        try:
            if self._loop.running:
                await self._loop.stop()
                try:
                    await self.checkpoint_now()
                except Exception:  # a full disk must not stop the shutdown; the log has it
                    log.exception("audit.checkpoint_failed", seq=self._head()[0])
        finally:
            close, self._close = self._close, None
            if close is not None:
                await close()

    async def checkpoint_now(self) -> Checkpoint | None:
        """Sign and store the head if it moved since the last checkpoint."""
        seq, hash_ = self._head()
        if seq <= self._last_seq:
            return None
        # Read off the request path, here: a few stored subtrees and at most 15 events.
        root = None if self._tree_root is None else await self._tree_root(seq)
        cp = self._signer.sign(seq, hash_, datetime.now(UTC), root)
        await self._save(cp)
        self._last_seq = seq
        self._last_time = time.monotonic()
        # The log line is a second, off-box copy of each checkpoint: deleting the checkpoints
        # from the database together with the tail still leaves these behind.
        log.info(
            "audit.checkpoint",
            seq=seq,
            hash=hash_,
            tree_root=root,
            signed_at=cp.signed_at,
            key_id=cp.key_id,
            signature=cp.signature.hex(),
        )
        return cp

    async def _poll(self) -> None:
        seq, _ = self._head()
        moved = seq - self._last_seq
        now = time.monotonic()
        due = now - self._last_time >= self._every_seconds
        if now >= self._retry_at and (moved >= self._every_events or (moved > 0 and due)):
            try:
                await self.checkpoint_now()
            except Exception:  # a failed checkpoint must not stop the next ones
                log.exception("audit.checkpoint_failed", seq=seq)
                # Not again at every poll: a full disk or a stopped database would fill
                # the log with one traceback every quarter second.
                self._retry_at = time.monotonic() + self._every_seconds
