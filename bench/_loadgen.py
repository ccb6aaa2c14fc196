"""Load generator processes: each runs grpc.aio clients against one target per job.

A worker is a spawned process that waits for jobs on a pipe. A job names the target, the number
of calls in flight, and a window on the wall clock shared by all workers (warm-up, then the
measured duration). Only calls that complete inside the measured window count toward throughput
and latency; every non-OK status counts as an error, warm-up included.

The hot loop is kept small: one pre-built request object, one metadata tuple, the raw stub
method, and a ``perf_counter`` read before and after each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

#: The input the default credit-limit policy approves without review.
AUTO_APPROVED_INPUT: dict[str, Any] = {
    "income": 120000,
    "debt_ratio": 0.1,
    "past_delinquencies": 0,
    "amount": 5000,
}
APPLICATION = "credit-limit"
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Job:
    """One measured run of one worker against one target."""

    address: str
    token: str
    concurrency: int
    start_at: float
    """Wall-clock time (``time.time()``) at which warm-up begins, the same for all workers."""
    warmup: float
    duration: float


@dataclass
class JobResult:
    """What one worker saw during one job."""

    ok: int = 0
    latencies: bytes = b""
    """``array('d')`` bytes: seconds per OK call completed inside the measured window."""
    errors: dict[str, int] = field(default_factory=dict)
    """Non-OK status code name -> count, over the whole job."""
    error_samples: dict[str, str] = field(default_factory=dict)
    """Status code name -> the first details string seen with it."""
    failure: str = ""
    """Set when the job could not run at all (e.g. the channel never became ready)."""


def build_request(application: str = APPLICATION) -> Any:
    from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb

    req = pb.DecideRequest(application=application)
    req.input.update(AUTO_APPROVED_INPUT)
    return req


async def run_job(job: Job) -> JobResult:
    import grpc

    from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc

    result = JobResult()
    channel = grpc.aio.insecure_channel(job.address)
    try:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout=10.0)
        except TimeoutError:
            result.failure = f"channel to {job.address} not ready after 10 s"
            return result
        decide = pb_grpc.DecisionGatewayStub(channel).Decide
        request = build_request()
        metadata = (("authorization", f"Bearer {job.token}"),)

        perf = time.perf_counter
        # Translate the shared wall-clock schedule into this process's perf_counter.
        start = perf() + (job.start_at - time.time())
        measure_from = start + job.warmup
        measure_to = measure_from + job.duration
        latencies = array("d")
        errors: Counter[str] = Counter()
        samples: dict[str, str] = {}
        ok_in_window = 0

        async def client() -> None:
            nonlocal ok_in_window
            while True:
                t0 = perf()
                if t0 >= measure_to:
                    return
                try:
                    await decide(request, metadata=metadata, timeout=CALL_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    name = exc.code().name
                    errors[name] += 1
                    samples.setdefault(name, exc.details() or "")
                    continue
                t1 = perf()
                if measure_from <= t1 < measure_to:
                    latencies.append(t1 - t0)
                    ok_in_window += 1

        delay = start - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [asyncio.create_task(client()) for _ in range(job.concurrency)]
        await asyncio.gather(*tasks)
        result.ok = ok_in_window
        result.latencies = latencies.tobytes()
        result.errors = dict(errors)
        result.error_samples = samples
        return result
    finally:
        await channel.close()


def worker_main(conn: Connection) -> None:
    """Entry point of a spawned worker: run jobs from ``conn`` until it sends ``None``."""
    # The parent owns Ctrl-C: it stops the workers itself, after which this process just exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        while True:
            job = conn.recv()
            if job is None:
                return
            try:
                result = runner(run_job(job))
            except Exception as exc:
                result = JobResult(failure=f"{type(exc).__name__}: {exc}")
            conn.send(result)
