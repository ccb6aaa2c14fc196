"""A Merkle tree over the audit events, in the shape of RFC 6962 / RFC 9162 (Certificate
Transparency), beside the hash chain.

The chain proves that events link up, but checking it needs every event. The tree lets one
event be proven part of a signed tree head with about log2(n) hashes (an inclusion proof), and
a later head be proven to extend an earlier one (a consistency proof), so a single decision's
evidence can be handed over and checked without anyone else's.

Leaf ``i`` (0-based) is the event with seq ``i + 1``; its hash is SHA-256 of ``0x00`` followed
by the event's canonical bytes (`gateway.audit.chain`), and an inner node is SHA-256 of
``0x01 || left || right``. A tree of ``n`` leaves splits at the largest power of two smaller
than ``n`` (RFC 9162 section 2.1.1), so a tree only ever grows on its right edge and every
complete, aligned subtree ``(level, index)`` (leaves ``index * 2**level`` up to the next
multiple) never changes once written. The stores keep those from `STORED_LEVEL` up; smaller
ones are recomputed from the few events they cover when a proof needs them.

Everything here is pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

STORED_LEVEL = 4
"""Lowest level of the complete subtrees the stores keep: one row per 16 events (about one
per 8 with all levels above), so the append path writes little, and a proof recomputes at most
16 leaves from their events."""

Node = tuple[int, int]
"""A complete aligned subtree: ``(level, index)``, covering leaves ``index << level`` up to
``(index + 1) << level``."""
Range = tuple[int, int]
"""Leaves ``lo`` up to (not including) ``hi``."""

_LEAF = b"\x00"
_NODE = b"\x01"


class ProofError(ValueError):
    """A proof that does not lead to the root it should."""


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 6962 hash of one leaf: SHA-256(0x00 || canonical)."""
    return sha256(_LEAF + canonical).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 hash of an inner node: SHA-256(0x01 || left || right)."""
    return sha256(_NODE + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` at least 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def decompose(lo: int, hi: int) -> list[Node]:
    """The complete aligned subtrees, largest first, that make up leaves ``[lo, hi)``.

    Every range a proof names (and the whole tree, ``[0, n)``) starts at a multiple of a power
    of two at least as large as itself, so taking the largest power of two that fits, again and
    again, lands on aligned subtrees.
    """
    out: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo & ((1 << level) - 1):
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from the hashes of its `decompose` parts (largest first).

    The range splits at its largest part, and the rest splits the same way, so the root is
    folded from the right.
    """
    if not hashes:
        raise ValueError("an empty range has no hash")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves, in proof order (nearest the leaf first, RFC 9162 section 2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    out: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The subtrees whose hashes form the consistency proof from a tree of ``old`` leaves to
    one of ``new`` leaves, in proof order (RFC 9162 section 2.1.4.1)."""
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    out: list[Range] = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2).

    Raises:
        ProofError: The proof does not lead from ``leaf`` to ``root``.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("the proof does not lead to the tree's root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 section 2.1.4.2).

    Raises:
        ProofError: The proof does not show the tree of ``new`` leaves extending the one of
            ``old`` leaves with those roots.
    """
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old == new:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    if not proof:
        raise ProofError("the proof is empty")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")


def extend(
    frontier: Sequence[bytes], size: int, leaves: Sequence[bytes]
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Append leaf hashes to a tree given by its frontier; the new frontier and new nodes.

    The frontier is the hashes of `decompose(0, size)`: one per set bit of ``size``, largest
    first. Returns it for ``size + len(leaves)``, and the ``(level, index, hash)`` of every
    complete subtree of level `STORED_LEVEL` or more the new leaves completed, for storing.
    """
    stack = list(frontier)
    nodes: list[tuple[int, int, bytes]] = []
    pop, push, h256 = stack.pop, stack.append, sha256  # on the append path: no lookups
    for h in leaves:
        # Each trailing one bit of the old size is a complete subtree the new leaf pairs with.
        n, level = size, 0
        while n & 1:
            h = h256(_NODE + pop() + h).digest()
            level += 1
            n >>= 1
            if level >= STORED_LEVEL:
                nodes.append((level, ((size + 1) >> level) - 1, h))
        push(h)
        size += 1
    return stack, nodes


def root(frontier: Sequence[bytes]) -> bytes:
    """The root of a non-empty tree from its frontier (see `extend`)."""
    return fold(frontier)


EMPTY_ROOT = sha256(b"").digest()
"""Root of the empty tree (RFC 9162 section 2.1.1)."""
