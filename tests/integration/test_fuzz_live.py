"""10,000 fuzzed Decide requests against a live gateway: no crash, no INTERNAL, memory flat.

The requests are generated from a fixed seed, so a failure reproduces: random structs (deep,
wide, long strings, NaN, wrong types), random bytes, and valid messages with bytes flipped or cut.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import random
import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.types import Status

DECIDE = "/hitl.gateway.v1.DecisionGateway/Decide"
TOTAL = 10_000
WARM = 2_000
CONCURRENCY = 40
SEED = 20261126
RSS_GROWTH_LIMIT = 40 * 1024 * 1024
"""Bytes the process may grow between request 2,000 and 10,000 (caches settle well below)."""
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
APPS = ["t-echo"] * 4 + ["t-schema", "t-fail-reject", "t-bad-rule", "credit-limit", "nope", ""]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    """Resident memory of this process (server and client both live in it), in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


def _text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return "".join(rng.choices(string.printable, k=rng.randint(0, 12)))
    if kind < 0.98:  # any code point except surrogates, which protobuf strings cannot hold
        return "".join(
            chr(rng.choice([rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
            for _ in range(rng.randint(0, 8))
        )
    return "x" * rng.choice([1000, 20_000, 70_000])


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randint(0, 9 if depth < 6 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0.0, -1.0, 1e308, -1e-308, 0.85, 0.5, 0.1, math.nan, math.inf, 2**53])
    if kind in (3, 4):
        return _text(rng)
    if kind in (5, 6, 7):
        return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": 1.0}
    for _ in range(depth):
        node = {"n": node}
    return node


def _input(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.5:  # plausible input with wrong or odd types in places
        return {
            "score": rng.random()
            if rng.random() < 0.7
            else rng.choice(["0.9", None, [], {}, math.nan, True]),
            "customer": rng.choice([{"name": _text(rng), "age": _value(rng, 5)}, _value(rng, 4)]),
            "amount": _value(rng, 5),
        }
    if roll < 0.96:
        return {_text(rng): _value(rng, 0) for _ in range(rng.randint(0, 8))}
    if roll < 0.98:
        return _deep(rng.choice([30, 70, 200]))
    return {f"k{i}": float(i) for i in range(rng.choice([500, 5000, 20_000]))}


def _message(rng: random.Random) -> bytes:
    req = pb.DecideRequest(application=rng.choice(APPS))
    fields = _input(rng)
    try:
        req.input.update(fields)
    except (ValueError, TypeError):  # protobuf refuses this shape itself; send a plain struct
        req.input.CopyFrom(struct_pb2.Struct())
    if rng.random() < 0.3:
        req.subject_ref = _text(rng)
    if rng.random() < 0.3:
        req.idempotency_key = _text(rng)
    if rng.random() < 0.2:
        for _ in range(rng.randint(1, 4)):
            req.labels[_text(rng)] = _text(rng)
    if rng.random() < 0.05:
        req.wait.FromMilliseconds(rng.choice([-5, 1, 10]))
    return req.SerializeToString()


def _body(rng: random.Random, valid: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.65:
        return _message(rng)
    if roll < 0.8:
        return rng.randbytes(rng.randint(0, 300))
    data = bytearray(_message(rng) if rng.random() < 0.5 else valid)
    for _ in range(rng.randint(1, 6)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.3:
        del data[rng.randrange(len(data) + 1) :]
    if rng.random() < 0.01:
        data += bytes(5 * 1024 * 1024)  # over the message size cap
    return bytes(data)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rate limits out of the way: this test is about what the inputs do, not about volume."""
    return replace(settings, rate_limit=1e9, rate_burst=1e9)


@pytest.mark.slow
async def test_ten_thousand_fuzzed_decide_requests_never_break_the_server(
    gateway: Gateway, api_key: str
) -> None:
    """No INTERNAL/UNKNOWN answer, a normal decision afterwards, and RSS flat after warm-up."""
    rng = random.Random(SEED)
    valid = pb.DecideRequest(application="t-echo")
    valid.input.update({"score": 0.9, "customer": {"name": "Jane Roe"}})
    good = valid.SerializeToString()
    bodies: Callable[[], bytes] = lambda: _body(rng, good)  # noqa: E731
    metas = [
        (("authorization", f"Bearer {api_key}"),),
        (("authorization", "Bearer nope"),),
        (),
    ]
    codes: collections.Counter[str] = collections.Counter()
    forbidden: list[tuple[int, str, str]] = []
    rss: dict[int, int] = {}
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{gateway.grpc_port}",
        options=[("grpc.max_send_message_length", 16 * 1024 * 1024)],
    )
    call = channel.unary_unary(DECIDE)
    sent = 0

    async def one(n: int, body: bytes, meta: tuple[tuple[str, str], ...]) -> None:
        try:
            await call(body, metadata=meta, timeout=30)
            codes["OK"] += 1
        except grpc.aio.AioRpcError as exc:
            codes[exc.code().name] += 1
            if exc.code() in FORBIDDEN:
                forbidden.append((n, exc.code().name, str(exc.details())))

    try:
        while sent < TOTAL:
            batch = []
            for _ in range(CONCURRENCY):
                meta = metas[0] if rng.random() < 0.95 else rng.choice(metas[1:])
                batch.append(one(sent, bodies(), meta))
                sent += 1
            await asyncio.gather(*batch)
            if sent in (WARM, TOTAL):
                rss[sent] = _rss()
    finally:
        await channel.close()

    assert sum(codes.values()) == TOTAL
    assert forbidden == [], forbidden[:5]
    growth = rss[TOTAL] - rss[WARM]
    print(
        f"\nfuzz: {TOTAL} requests, codes {dict(codes)}; RSS {rss[WARM] >> 20} MiB at "
        f"{WARM}, {rss[TOTAL] >> 20} MiB at {TOTAL} ({growth / 2**20:+.1f} MiB)"
    )
    assert growth < RSS_GROWTH_LIMIT
    assert codes["OK"] > 1000 and codes["INVALID_ARGUMENT"] > 1000  # both paths were exercised

    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=api_key) as c:
        d = await c.decide("t-echo", {"score": 0.9, "customer": {"name": "Jane Roe"}})
    assert d.status is Status.APPROVED
