"""The checkpointer's timing on its shared periodic loop: every N events, every S seconds, a
final checkpoint on stop, and a failed checkpoint retried once per interval."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.checkpoints import Checkpoint, Signer, check

KEY = Ed25519PrivateKey.generate()


class Chain:
    """A chain head that tests move by hand, and the checkpoints saved for it."""

    def __init__(self) -> None:
        self.seq = 0
        self.saved: list[Checkpoint] = []
        self.signed = asyncio.Event()
        self.fail = False

    def head(self) -> tuple[int, str]:
        return self.seq, f"{self.seq:064x}"

    async def save(self, cp: Checkpoint) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved.append(cp)
        self.signed.set()

    async def wait_signed(self) -> None:
        await asyncio.wait_for(self.signed.wait(), 5)


async def test_signs_once_the_head_is_every_events_past_the_last_checkpoint() -> None:
    """N events past the last checkpoint are signed at the next poll, long before S seconds."""
    chain = Chain()
    cp = Checkpointer(chain.head, Signer(KEY), chain.save, every_events=3, every_seconds=60)
    await cp.start()
    try:
        chain.seq = 2
        await asyncio.sleep(0.6)
        assert chain.saved == []
        chain.seq = 3
        await chain.wait_signed()
        assert [c.seq for c in chain.saved] == [3] and cp.last_seq == 3
        check(chain.saved[0], KEY.public_key())
    finally:
        await cp.stop()


async def test_signs_a_head_that_moved_at_all_after_every_seconds() -> None:
    """One event is signed once ``every_seconds`` have passed, not before."""
    chain = Chain()
    cp = Checkpointer(chain.head, Signer(KEY), chain.save, every_events=1000, every_seconds=0.5)
    await cp.start()
    try:
        chain.seq = 1
        await chain.wait_signed()
        assert [c.seq for c in chain.saved] == [1]
    finally:
        await cp.stop()


async def test_stop_signs_the_final_head_once_and_closes() -> None:
    """Stopping signs the unsigned tail and closes; stopping again does neither twice."""
    chain = Chain()
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    cp = Checkpointer(
        chain.head, Signer(KEY), chain.save, every_events=1000, every_seconds=60, close=close
    )
    await cp.start()
    chain.seq = 7
    await cp.stop()
    await cp.stop()
    assert [c.seq for c in chain.saved] == [7] and closed == [True]


async def test_a_restart_does_not_sign_the_stored_checkpoint_again() -> None:
    """With ``last_seq`` at the head, neither the loop nor stop signs anything."""
    chain = Chain()
    chain.seq = 5
    cp = Checkpointer(
        chain.head, Signer(KEY), chain.save, every_events=1, every_seconds=0.1, last_seq=5
    )
    await cp.start()
    await asyncio.sleep(0.4)
    await cp.stop()
    assert chain.saved == []


async def test_a_failed_checkpoint_is_retried_once_per_interval_then_succeeds() -> None:
    """While saving fails, tries are ``every_seconds`` apart, each logged; once it works again
    the head is signed."""
    chain = Chain()
    cp = Checkpointer(chain.head, Signer(KEY), chain.save, every_events=1, every_seconds=0.5)
    with capture_logs() as logs:
        await cp.start()
        try:
            chain.fail = True
            chain.seq = 1
            await asyncio.sleep(1.3)  # polls every 0.25 s: at most three tries in 1.3 s
            failed = [e for e in logs if e["event"] == "audit.checkpoint_failed"]
            assert 1 <= len(failed) <= 3
            chain.fail = False
            await chain.wait_signed()
            assert [c.seq for c in chain.saved] == [1]
        finally:
            await cp.stop()
