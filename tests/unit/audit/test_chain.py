"""Canonical encoding, chain hashing and verification over in-memory events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.audit.chain import GENESIS, canonical_bytes, canonical_json, chain_hash, payload_digest
from gateway.audit.verifier import verify_events
from gateway.timefmt import format_ts, parse_ts
from gateway.types import AuditEvent

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def make_chain(n: int, *, start_seq: int = 1, prev: str = GENESIS) -> list[AuditEvent]:
    events = []
    for seq in range(start_seq, start_seq + n):
        payload = {"n": seq, "customer": "Ana"}
        digest = payload_digest(payload)
        ts = T0 + timedelta(seconds=seq)
        canonical = canonical_bytes(
            seq, ts, f"dec-{seq}", "decision.created", "app:k1", digest, "t" * 32, "s" * 16
        )
        h = chain_hash(prev, canonical)
        events.append(
            AuditEvent(
                seq, ts, f"dec-{seq}", "decision.created", "app:k1", payload, digest,
                "t" * 32, "s" * 16, prev, h, canonical,
            )
        )  # fmt: skip
        prev = h
    return events


def test_canonical_bytes_are_sorted_compact_utf8_json() -> None:
    """The canonical form is key-sorted compact UTF-8 JSON with the ts in UTC microseconds."""
    ts = datetime(2025, 3, 1, 17, 30, tzinfo=timezone(timedelta(hours=8)))
    got = canonical_bytes(7, ts, "d-1", "decision.created", "user:zoë", "sha256:ab", "", "")
    assert got == (
        b'{"actor":"user:zo\xc3\xab","decision_id":"d-1","payload_digest":"sha256:ab",'
        b'"seq":7,"span_id":"","trace_id":"","ts":"2025-03-01T09:30:00.000000Z",'
        b'"type":"decision.created"}'
    )


@pytest.mark.parametrize(
    "text", ['quo"te', "back\\slash", "new\nline", "\x00\x1f\x7f", "ü €", "😀", "\u2028"]
)
def test_canonical_bytes_match_generic_canonical_json(text: str) -> None:
    """The fast writer is byte-identical to canonical_json for awkward strings."""
    fields = {
        "actor": text,
        "decision_id": text,
        "payload_digest": text,
        "seq": 12,
        "span_id": text,
        "trace_id": text,
        "ts": format_ts(T0),
        "type": text,
    }
    fast = canonical_bytes(12, T0, text, text, text, text, text, text)
    assert fast == canonical_json(fields)
    assert json.loads(fast) == fields


def test_canonical_bytes_refuse_bool_seq() -> None:
    """A bool is not a seq (it would encode as true)."""
    with pytest.raises(TypeError):
        canonical_bytes(True, T0, "d", "t", "a", "p", "", "")


def test_payload_digest_ignores_key_order() -> None:
    """The digest depends on content, not on the order keys were inserted."""
    a = payload_digest({"b": 1, "a": [1, {"y": 2, "x": 1}]})
    b = payload_digest({"a": [1, {"x": 1, "y": 2}], "b": 1})
    assert a == b
    assert a == "sha256:" + hashlib.sha256(b'{"a":[1,{"x":1,"y":2}],"b":1}').hexdigest()
    with pytest.raises(ValueError):
        payload_digest({"x": float("nan")})


def test_chain_hash_covers_raw_prev_hash_then_canonical() -> None:
    """The hash is sha256 over the previous hash's 32 raw bytes followed by the canonical bytes."""
    assert chain_hash(GENESIS, b"{}") == hashlib.sha256(bytes(32) + b"{}").hexdigest()


def test_timestamps_are_utc_with_microseconds() -> None:
    """Timestamps format as fixed-width UTC and parse back to the same instant, aware."""
    ts = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5)))
    assert format_ts(ts) == "2025-01-02T08:04:05.000006Z"
    assert parse_ts(format_ts(ts)) == ts
    assert parse_ts(format_ts(ts)).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2025, 1, 1))


def test_verify_accepts_a_good_chain() -> None:
    """An untouched chain verifies and reports its head."""
    events = make_chain(5)
    result = verify_events(events)
    assert result.ok
    assert (result.checked, result.first_bad_seq, result.reason) == (5, None, "")
    assert (result.head_seq, result.head_hash) == (5, events[-1].hash)


def test_verify_accepts_an_empty_chain() -> None:
    """No events is a valid (empty) chain."""
    assert verify_events([]) == verify_events(iter(()))
    assert verify_events([]).ok


def test_verify_a_segment_from_a_known_head() -> None:
    """A segment verifies given the seq and hash of the event before it."""
    events = make_chain(10)
    assert verify_events(events[4:], start_prev_hash=events[3].hash, start_seq=5).ok
    result = verify_events(events[4:])
    assert not result.ok
    assert result.first_bad_seq == 1


@pytest.mark.parametrize(
    ("mutate", "bad_seq", "words"),
    [
        (lambda ev: ev[:3] + ev[4:], 4, "missing: 4"),
        (lambda ev: ev[:3] + ev[5:], 4, "missing: 4..5"),
        (lambda ev: [*ev[:4], ev[3], *ev[4:]], 5, "duplicated or out of order"),
        (lambda ev: [*ev[:3], ev[4], ev[3], *ev[5:]], 4, "missing: 4"),
        (lambda ev: [*ev[:3], replace(ev[3], actor="app:evil"), *ev[4:]], 4, "'actor'"),
        (lambda ev: [*ev[:3], replace(ev[3], seq=4, type="x"), *ev[4:]], 4, "'type'"),
        (lambda ev: [*ev[:3], replace(ev[3], ts=T0), *ev[4:]], 4, "'ts'"),
        (lambda ev: [*ev[:3], replace(ev[3], payload={"n": 0}), *ev[4:]], 4, "payload digest"),
        (lambda ev: [*ev[:3], replace(ev[3], hash="0" * 64), *ev[4:]], 4, "stored hash"),
        (lambda ev: [*ev[:3], replace(ev[3], prev_hash="1" * 64), *ev[4:]], 4, "prev_hash"),
        (lambda ev: [*ev[:3], replace(ev[3], canonical=b"{}"), *ev[4:]], 4, "stored hash"),
    ],
)
def test_verify_names_the_first_bad_event(mutate, bad_seq: int, words: str) -> None:  # type: ignore[no-untyped-def]
    """Each kind of tampering is caught at the right seq, with a reason that says what."""
    result = verify_events(mutate(make_chain(8)))
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert result.checked == bad_seq - 1
    assert words in result.reason


def test_verify_catches_canonical_bytes_that_disagree_with_columns() -> None:
    """Rehashing forged canonical bytes is caught when the columns say otherwise."""
    events = make_chain(3)
    forged = canonical_bytes(
        2, events[1].ts, "dec-2", "decision.created", "app:evil", events[1].payload_digest,
        "t" * 32, "s" * 16,
    )  # fmt: skip
    h = chain_hash(events[0].hash, forged)
    result = verify_events([events[0], replace(events[1], canonical=forged, hash=h), events[2]])
    assert result.first_bad_seq == 2
    assert "'actor'" in result.reason


def test_verify_accepts_erased_payloads() -> None:
    """An event whose payload was erased still verifies through its digest."""
    events = make_chain(4)
    events[1] = replace(events[1], payload=None)
    assert verify_events(events).ok


def test_verify_consumes_lazily_and_stops_at_the_first_bad_event() -> None:
    """Verification pulls events one at a time and stops pulling at the first mismatch."""
    events = make_chain(5)
    events[2] = replace(events[2], actor="x")

    def stream() -> Iterator[AuditEvent]:
        yield from events
        raise AssertionError("read past the first bad event")

    result = verify_events(stream())
    assert result.first_bad_seq == 3
