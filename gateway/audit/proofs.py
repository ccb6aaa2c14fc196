"""Inclusion and consistency proofs against signed checkpoints, whatever the store.

A proof is only worth something against a tree head someone signed: every proof here names a
version 2 checkpoint (`gateway.audit.checkpoints.VERSION_TREE`), whose signature covers the
tree's size and root, and is checked against that root before it is handed out, so a store
whose stored subtrees were tampered with answers with an error, never with a bad proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.audit import merkle
from gateway.audit.checkpoints import Checkpoint
from gateway.errors import InvalidInput, NotFound


class ProofLog(Protocol):
    """What proofs are read from: a store's audit trail (live, or a copy offline)."""

    async def latest_checkpoint(self) -> Checkpoint | None: ...

    async def checkpoint_at(self, seq: int) -> Checkpoint | None:
        """The stored checkpoint of head ``seq``, or None."""
        ...

    async def leaf_hash(self, index: int) -> bytes:
        """Leaf hash of the event with seq ``index + 1``; `LookupError` when absent."""
        ...

    async def inclusion_path(self, index: int, size: int) -> list[bytes]: ...

    async def consistency_path(self, old: int, new: int) -> list[bytes]: ...

    async def tree_root(self, size: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Event ``seq`` is leaf ``seq - 1`` of the tree of ``tree_size`` events with ``root``."""

    seq: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def check(self) -> None:
        """Raise `gateway.audit.merkle.ProofError` unless the path leads to ``root``."""
        merkle.verify_inclusion(self.seq - 1, self.tree_size, self.leaf_hash, self.path, self.root)

    def record(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_index": self.seq - 1,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [p.hex() for p in self.path],
            "tree_root": self.root.hex(),
        }

    @classmethod
    def from_record(cls, doc: Any) -> InclusionProof:
        """Parse `record`; raises ValueError, KeyError or TypeError when malformed."""
        return cls(
            seq=int(doc["seq"]),
            tree_size=int(doc["tree_size"]),
            leaf_hash=_hex32(doc["leaf_hash"]),
            path=tuple(_hex32(p) for p in doc["path"]),
            root=_hex32(doc["tree_root"]),
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of ``new_size`` events extends the one of ``old_size`` events."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def check(self) -> None:
        merkle.verify_consistency(
            self.old_size, self.new_size, self.old_root, self.new_root, self.path
        )

    def record(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "path": [p.hex() for p in self.path],
        }


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, got {type(value).__name__}")
    raw = bytes.fromhex(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes of hex, got {len(raw)}")
    return raw


def signed_root(cp: Checkpoint, field: str) -> bytes:
    """The tree root ``cp`` signs; `InvalidInput` naming ``field`` for a version 1 checkpoint."""
    root = cp.tree_root
    if root is None:
        raise InvalidInput(
            field, f"checkpoint {cp.seq} was signed before the Merkle tree and signs no root"
        )
    return bytes.fromhex(root)


class Proofs:
    """Proofs against the checkpoints stored in a `ProofLog`."""

    def __init__(self, log: ProofLog) -> None:
        self._log = log

    async def checkpoint(self, seq: int, field: str) -> Checkpoint:
        """The checkpoint of head ``seq`` (0: the newest); errors name ``field``."""
        if seq < 0:
            raise InvalidInput(field, "must not be negative")
        cp = await (self._log.checkpoint_at(seq) if seq else self._log.latest_checkpoint())
        if cp is None:
            raise NotFound("checkpoint", str(seq) if seq else "latest")
        return cp

    async def inclusion(
        self, seq: int, checkpoint_seq: int = 0
    ) -> tuple[InclusionProof, Checkpoint]:
        """Proof that event ``seq`` is in the tree checkpoint ``checkpoint_seq`` (0: the
        newest) signs.

        Raises:
            InvalidInput: ``event_seq`` out of range, or a checkpoint that signs no root.
            NotFound: No such checkpoint.
            ProofError: The stored tree does not lead to the signed root (tampering).
        """
        if seq < 1:
            raise InvalidInput("event_seq", "must be at least 1")
        cp = await self.checkpoint(checkpoint_seq, "checkpoint_seq")
        root = signed_root(cp, "checkpoint_seq")
        if seq > cp.seq:
            raise InvalidInput(
                "event_seq",
                f"event {seq} is after checkpoint {cp.seq}; prove it against a later one",
            )
        try:
            leaf = await self._log.leaf_hash(seq - 1)
        except LookupError:
            raise NotFound("event", str(seq)) from None
        path = await self._log.inclusion_path(seq - 1, cp.seq)
        proof = InclusionProof(seq, cp.seq, leaf, tuple(path), root)
        proof.check()
        return proof, cp

    async def consistency(
        self, old_seq: int, new_seq: int
    ) -> tuple[ConsistencyProof, Checkpoint, Checkpoint]:
        """Proof that the tree checkpoint ``new_seq`` signs extends the one ``old_seq`` signs.

        Raises:
            InvalidInput: ``old_seq`` after ``new_seq``, or a checkpoint that signs no root.
            NotFound: No such checkpoint.
            ProofError: The stored tree does not lead to the signed roots (tampering).
        """
        if old_seq < 1:
            raise InvalidInput("old_seq", "must be at least 1")
        if new_seq < old_seq:
            raise InvalidInput("new_seq", f"must not be before old_seq {old_seq}")
        old = await self.checkpoint(old_seq, "old_seq")
        new = await self.checkpoint(new_seq, "new_seq")
        old_root = signed_root(old, "old_seq")
        new_root = signed_root(new, "new_seq")
        path = await self._log.consistency_path(old.seq, new.seq) if old.seq < new.seq else []
        proof = ConsistencyProof(old.seq, new.seq, old_root, new_root, tuple(path))
        proof.check()
        return proof, old, new
