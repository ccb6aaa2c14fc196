"""The Merkle tree's proofs against a plain recursive RFC 6962 reference, on every size 1..300."""

from __future__ import annotations

import functools
import hashlib

import pytest

from gateway.audit import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) written straight from RFC 6962 section 2.1 (memoised: the same ranges come
    back thousands of times over 300 tree sizes)."""
    return _mth(tuple(leaves))


@functools.cache
def _mth(leaves: tuple[bytes, ...]) -> bytes:
    n = len(leaves)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) from RFC 6962 section 2.1.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) from RFC 6962 section 2.1.2."""
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


DATA = [f"event {i}".encode() for i in range(300)]
LEAF_HASHES = [merkle.leaf_hash(d) for d in DATA]


def _range_hash(lo: int, hi: int) -> bytes:
    """Hash of leaves [lo, hi) from its aligned parts, the way the stores compute it."""
    parts = []
    for level, index in merkle.decompose(lo, hi):
        start = index << level
        parts.append(ref_mth(DATA[start : start + (1 << level)]))
    return merkle.fold(parts)


def _frontiers() -> list[list[bytes]]:
    """Frontier after each size 0..300, grown one leaf at a time by `merkle.extend`."""
    out: list[list[bytes]] = [[]]
    for i in range(300):
        nxt, _ = merkle.extend(out[-1], i, [LEAF_HASHES[i]])
        out.append(nxt)
    return out


FRONTIERS = _frontiers()


@pytest.mark.parametrize("n", range(1, 301))
def test_root_inclusion_and_consistency_match_the_reference(n: int) -> None:
    """Root, every inclusion proof and every consistency proof of a tree of n leaves equal the
    reference computation, and each verifies."""
    root = ref_mth(DATA[:n])
    assert merkle.root(FRONTIERS[n]) == root
    for m in range(n):
        proof = [_range_hash(lo, hi) for lo, hi in merkle.inclusion_ranges(m, n)]
        assert proof == ref_path(m, DATA[:n])
        merkle.verify_inclusion(m, n, LEAF_HASHES[m], proof, root)
    for old in range(1, n + 1):
        proof = [_range_hash(lo, hi) for lo, hi in merkle.consistency_ranges(old, n)]
        assert proof == ref_subproof(old, DATA[:n], True)
        merkle.verify_consistency(old, n, ref_mth(DATA[:old]), root, proof)


def test_extend_in_batches_reports_every_stored_node() -> None:
    """Growing the tree in uneven batches gives the same frontier, and every complete subtree
    at the stored levels once, with its reference hash."""
    frontier: list[bytes] = []
    size = 0
    nodes: list[tuple[int, int, bytes]] = []
    for batch in (1, 7, 30, 2, 100, 160):
        frontier, new = merkle.extend(frontier, size, LEAF_HASHES[size : size + batch])
        nodes.extend(new)
        size += batch
    assert size == 300
    assert frontier == FRONTIERS[300]
    expected = {
        (level, index) for level in range(merkle.STORED_LEVEL, 9) for index in range(300 >> level)
    }
    assert {(lv, ix) for lv, ix, _ in nodes} == expected
    for level, index, h in nodes:
        start = index << level
        assert h == ref_mth(DATA[start : start + (1 << level)])


def test_a_changed_leaf_or_proof_hash_fails_inclusion() -> None:
    """A proof checked against another leaf, or with one hash changed, is refused."""
    n, m = 37, 11
    root = ref_mth(DATA[:n])
    proof = ref_path(m, DATA[:n])
    with pytest.raises(merkle.ProofError, match="root"):
        merkle.verify_inclusion(m, n, LEAF_HASHES[m + 1], proof, root)
    bad = list(proof)
    bad[2] = bytes(32)
    with pytest.raises(merkle.ProofError, match="root"):
        merkle.verify_inclusion(m, n, LEAF_HASHES[m], bad, root)
    with pytest.raises(merkle.ProofError, match="shorter"):
        merkle.verify_inclusion(m, n, LEAF_HASHES[m], proof[:-1], root)


def test_a_consistency_proof_against_another_old_root_fails() -> None:
    """A consistency proof does not verify against a root the old tree never had."""
    proof = ref_subproof(13, DATA[:50], True)
    with pytest.raises(merkle.ProofError, match="old root"):
        merkle.verify_consistency(13, 50, ref_mth(DATA[:12]), ref_mth(DATA[:50]), proof)
