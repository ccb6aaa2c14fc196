"""What the proxy benchmarks (`bench.oip_bench`, `bench.chat_bench`) share: the bench model
approved in the gateway's inventory, and one measured run of load from a process pool.

Each benchmark supplies its own load: a top-level ``worker((target, payload, token, per
process, seconds))`` that runs one process's calls (one warm-up second, then ``seconds``
measured) and returns ``(ok, errors, latencies in seconds, first error)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import percentile, process_cpu

START_SKEW = 0.3
"""Seconds the load processes take to start and connect before their warm-up second begins."""

Job = tuple[str, bytes, str, int, float]
Result = tuple[int, int, list[float], str]


async def approve_model(data_dir: Path, backend: str, name: str) -> None:
    """Register ``backend/name@1`` as approved in the gateway's inventory (a model decides
    automatically only once model risk has approved it)."""
    from datetime import UTC, datetime, timedelta

    from gateway.audit.events import EventType
    from gateway.audit.events import event as audit_event
    from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
    from gateway.store import SQLiteStore

    now = datetime.now(UTC)
    key = ModelKey(backend, name, "1")
    record = ModelRecord(
        key=key,
        owner="bench",
        validator="bench-validator",
        intended_use="benchmark",
        max_tier="high",
        status=ModelStatus.APPROVED,
        validated_at=now,
        validation_expires_at=now + timedelta(days=1),
        documentation_url="",
        limitations="",
        registered_at=now,
        updated_at=now,
        updated_by="bench",
    )
    payload = {"backend": key.backend, "name": key.name, "version": key.version}
    async with SQLiteStore(data_dir / "gateway.db") as store:
        await store.register_model(
            record, audit_event(EventType.MODEL_REGISTERED, "", "bench", payload)
        )


def measure(
    pool: Any,
    worker: Callable[[Job], Result],
    job: tuple[str, bytes, str],
    *,
    procs: int,
    concurrency: int,
    seconds: float,
    pids: dict[str, int],
) -> dict[str, Any]:
    """One run of ``concurrency`` calls in flight over up to ``procs`` processes of ``pool``:
    calls/s, errors, p50/p99 and the CPU per call of each process in ``pids`` over the
    measured window."""
    target, payload, token = job
    procs = min(procs, concurrency)
    per = max(1, concurrency // procs)
    pending = pool.map_async(worker, [(target, payload, token, per, seconds)] * procs)
    time.sleep(1.0 + START_SKEW)
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    after = {name: process_cpu(pid) for name, pid in pids.items()}
    results: list[Result] = pending.get()
    ok = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    cpu = {}
    for name in pids:
        start, end = before[name], after[name]
        if start is not None and end is not None:
            cpu[f"{name}_cpu_us"] = 1e6 * (end - start) / max(ok, 1)
    return {
        "rate": ok / seconds,
        "ok": ok,
        "errors": sum(r[1] for r in results),
        "first_error": next((r[3] for r in results if r[3]), ""),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        **cpu,
    }
