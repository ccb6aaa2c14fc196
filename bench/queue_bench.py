"""Queue page render time with 100,000 pending reviews, through the real HTTP server.

Fills a fresh SQLite store with held decisions (via the store's own write path), starts the
gateway on it, signs in as a reviewer and times full page renders of the reviewer queue: the
first page, a page deep in the queue (keyset cursor), and a filtered page.

    python -m bench.queue_bench [--pending 100000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gateway.app import Gateway
from gateway.config import Settings
from gateway.core.ids import new_decision_id
from gateway.store import SQLiteStore
from gateway.types import (
    AuditDraft,
    Decision,
    ModelRef,
    ReviewTask,
    Role,
    Status,
    TaskKind,
    Validation,
)

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark password"


def _held(i: int, now: datetime) -> tuple[Decision, ReviewTask]:
    high = i % 5 == 0
    tier, groups, rank = ("high", ("senior",), 1) if high else ("limited", ("reviewers",), 2)
    deadline = now + timedelta(seconds=3600 + (i * 7919) % 86_400)
    d = Decision(
        id=new_decision_id(),
        application="credit-limit" if i % 3 else "fraud-alert",
        tier=tier,
        status=Status.PENDING_REVIEW,
        input={"income": 50_000 + i, "debt_ratio": 0.3, "amount": 10_000},
        model=ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED),
        model_output={"score": 0.5},
        final_output=None,
        reasons=("grey zone",),
        rule="route[2]",
        created_at=now,
        updated_at=now,
        trace_id="",
        policy_version="bench",
        approvals_needed=2 if high else 1,
        review_deadline=deadline,
    )
    task = ReviewTask(d.id, TaskKind.DECISION, d.application, tier, groups, deadline, now, rank)
    return d, task


async def fill(path: Path, n: int) -> None:
    store = SQLiteStore(path, max_batch=1000)
    await store.start()
    now = datetime.now(UTC)
    try:
        for start in range(0, n, 2000):
            jobs = []
            for i in range(start, min(n, start + 2000)):
                d, t = _held(i, now)
                ev = AuditDraft(d.id, "decision.created", "bench", {"i": i}, ts=now)
                jobs.append(store.create_decision(d, (ev,), (t,)))
            await asyncio.gather(*jobs)
    finally:
        await store.stop()


async def timed(client: httpx.AsyncClient, url: str, rounds: int) -> tuple[float, str]:
    times, body = [], ""
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = await client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        body = r.text
    return statistics.median(times), body


async def main(pending: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "var"
        data.mkdir()
        t0 = time.perf_counter()
        await fill(data / "gateway.db", pending)
        print(f"filled {pending:,} pending reviews in {time.perf_counter() - t0:.1f} s")
        settings = Settings(
            grpc_port=0,
            http_port=0,
            data_dir=data,
            policies=ROOT / "policies",
            log_level="warning",
            admin_password="benchmark admin password",
        )
        async with Gateway(settings) as gw:
            await gw.accounts.create("rita", Role.SENIOR, PASSWORD)
            base = f"http://127.0.0.1:{gw.http_port}/ui"
            async with httpx.AsyncClient(base_url=base) as client:
                page = await client.get("/login")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert csrf is not None
                await client.post(
                    "/login", data={"csrf": csrf[1], "name": "rita", "password": PASSWORD}
                )
                ms, body = await timed(client, "/", rounds)
                assert body.count("data-decision=") == 50, "queue page did not render 50 rows"
                print(f"queue page 1 (50 rows, counts):        median {ms:6.1f} ms")
                nxt = re.search(r'href="(\?after=[^"]+)" rel="next"', body)
                assert nxt is not None
                url = "/" + nxt[1].replace("&amp;", "&")
                for _ in range(200):  # walk 200 pages deep (10,000 items) by keyset
                    r = await client.get(url)
                    nxt = re.search(r'href="(\?after=[^"]+)" rel="next"', r.text)
                    assert nxt is not None
                    url = "/" + nxt[1].replace("&amp;", "&")
                ms, _ = await timed(client, url, rounds)
                print(f"queue page 201 (keyset, 10,000 deep):  median {ms:6.1f} ms")
                ms, _ = await timed(client, "/?app=fraud-alert&tier=high", rounds)
                print(f"queue filtered (app + tier):           median {ms:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    a = parser.parse_args()
    asyncio.run(main(a.pending, a.rounds))
