"""Decide load from worker processes: each runs grpc.aio clients against one target per job.

``LoadGenerator`` keeps the workers for a whole benchmark and turns one run (a target, a
concurrency, a duration) into a ``Run``: throughput, latency percentiles and the CPU of the
server, of the workers and of everything else over the measured window. ``preflight`` makes one
call first, to prove the path measured is the one intended.

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
import math
import multiprocessing as mp
import shutil
import signal
import statistics
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.harness import (
    REPO,
    Run,
    Server,
    create_key,
    free_port,
    gateway_command,
    machine_busy,
    percentile,
    process_cpu,
    run_async,
    server_env,
)

#: The input the default credit-limit policy approves without review.
AUTO_APPROVED_INPUT: dict[str, Any] = {
    "income": 120000,
    "debt_ratio": 0.1,
    "past_delinquencies": 0,
    "amount": 5000,
}
APPLICATION = "credit-limit"
CALL_TIMEOUT = 30.0
CONNECTIONS = 4
"""Connections each load-generator process opens (its calls spread over them)."""
START_MARGIN = 0.5
"""Seconds between handing out a job and its warm-up starting, so all workers begin together."""


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
    # Several connections per process (each channel its own subchannel pool): the kernel
    # spreads connections, not calls, over the workers of `serve --workers`.
    channels = [
        grpc.aio.insecure_channel(job.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, min(job.concurrency, CONNECTIONS)))
    ]
    try:
        try:
            for ch in channels:
                await asyncio.wait_for(ch.channel_ready(), timeout=10.0)
        except TimeoutError:
            result.failure = f"channel to {job.address} not ready after 10 s"
            return result
        stubs = [pb_grpc.DecisionGatewayStub(ch).Decide for ch in channels]
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

        async def client(decide: Any) -> None:
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
                    # A shed call: wait the server's pushback, as a client with gRPC's retry
                    # policy does, instead of hammering it again at once.
                    pushback = dict(exc.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
                    if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and pushback:
                        await asyncio.sleep(int(str(pushback)) / 1000)
                    continue
                t1 = perf()
                if measure_from <= t1 < measure_to:
                    latencies.append(t1 - t0)
                    ok_in_window += 1

        delay = start - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = [asyncio.create_task(client(stubs[i % len(stubs)])) for i in range(job.concurrency)]
        await asyncio.gather(*tasks)
        result.ok = ok_in_window
        result.latencies = latencies.tobytes()
        result.errors = dict(errors)
        result.error_samples = samples
        return result
    finally:
        for ch in channels:
            await ch.close()


def worker_main(conn: Connection) -> None:
    """Entry point of a spawned worker: run jobs from ``conn`` until it sends ``None``."""
    # The parent owns Ctrl-C: it stops the workers itself, after which this process just exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        while True:
            job = conn.recv()
            if job is None:
                return
            try:
                result = run_async(run_job(job))
            except Exception as exc:
                result = JobResult(failure=f"{type(exc).__name__}: {exc}")
            conn.send(result)


class LoadGenerator:
    """Spawned worker processes, kept for the whole benchmark and handed one job per run."""

    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), name=f"loadgen-{i}", daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def run(
        self,
        server: Server,
        token: str,
        *,
        concurrency: int,
        warmup: float,
        duration: float,
        round_no: int,
        at_window_start: Callable[[], None] | None = None,
    ) -> Run:
        """``at_window_start`` is called as the measured window opens (to start a profiler)."""
        assert server.proc is not None
        workers = min(len(self._conns), concurrency)
        base, extra = divmod(concurrency, workers)
        shares = [base + (1 if i < extra else 0) for i in range(workers)]
        start_at = time.time() + START_MARGIN
        for conn, share in zip(self._conns, shares, strict=False):
            conn.send(Job(server.address, token, share, start_at, warmup, duration))

        # Sample CPU at the edges of the measured window while the workers run.
        pids = [p.pid for p in self._procs[:workers]]
        _sleep_until(start_at + warmup)
        before = _cpu_sample(server.proc.pid, pids)
        if at_window_start is not None:
            at_window_start()
        _sleep_until(start_at + warmup + duration)
        after = _cpu_sample(server.proc.pid, pids)

        results: list[JobResult] = [conn.recv() for conn in self._conns[:workers]]
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode} during the run; "
                f"log tail:\n{server.log_tail()}"
            )
        failures = [r.failure for r in results if r.failure]
        if failures:
            raise RuntimeError(f"load generator failed against {server.name}: {failures[0]}")

        latencies = array("d")
        errors: Counter[str] = Counter()
        samples: dict[str, str] = {}
        for r in results:
            latencies.frombytes(r.latencies)
            errors.update(r.errors)
            for code, details in r.error_samples.items():
                samples.setdefault(code, details)
        ordered = sorted(latencies)
        server_cpu, loadgen_cpu, busy, other = _cpu_shares(before, after, duration)
        return Run(
            target=server.name,
            concurrency=concurrency,
            round=round_no,
            decisions_per_s=sum(r.ok for r in results) / duration,
            p50_ms=percentile(ordered, 0.50) * 1e3,
            p99_ms=percentile(ordered, 0.99) * 1e3,
            mean_ms=(statistics.fmean(ordered) * 1e3) if ordered else math.nan,
            ok=sum(r.ok for r in results),
            errors=dict(errors),
            error_samples=samples,
            server_cpu_pct=server_cpu,
            loadgen_cpu_pct=loadgen_cpu,
            machine_busy_pct=busy,
            other_cpu_pct=other,
        )

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(None)
        # Idle workers exit at once; one still in a job (after an interrupt) is not waited for.
        for proc in self._procs:
            proc.join(timeout=1)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()


def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


_Sample = tuple[float | None, list[float | None], tuple[float, float] | None]


def _cpu_sample(server_pid: int, worker_pids: list[int | None]) -> _Sample:
    workers = [process_cpu(pid) if pid is not None else None for pid in worker_pids]
    return process_cpu(server_pid), workers, machine_busy()


def _cpu_shares(
    before: _Sample, after: _Sample, duration: float
) -> tuple[float | None, float | None, float | None, float | None]:
    server = None
    if before[0] is not None and after[0] is not None:
        server = 100 * (after[0] - before[0]) / duration
    loadgen = None
    pairs = list(zip(before[1], after[1], strict=True))
    if pairs and all(b is not None and a is not None for b, a in pairs):
        loadgen = 100 * sum(a - b for b, a in pairs if a is not None and b is not None) / duration
    busy = other = None
    if before[2] is not None and after[2] is not None:
        busy_s = after[2][0] - before[2][0]
        total = after[2][1] - before[2][1]
        busy = 100 * busy_s / total if total > 0 else None
        if server is not None and loadgen is not None:
            other = max(0.0, 100 * busy_s / duration - server - loadgen)
    return server, loadgen, busy, other


@dataclass
class Preflight:
    """One call before measuring: proves the path works and records what it answers."""

    target: str
    status: str = ""
    tier: str = ""
    rule: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    error: str = ""


def preflight(server: Server, token: str) -> Preflight:
    import grpc

    from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
    from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc

    request = build_request()
    out = Preflight(target=server.name, request_bytes=request.ByteSize())
    with grpc.insecure_channel(server.address) as channel:
        decide = pb_grpc.DecisionGatewayStub(channel).Decide
        try:
            reply = decide(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        except grpc.RpcError as exc:
            out.error = f"{exc.code().name}: {exc.details()}"
            return out
    out.status = pb.DecisionStatus.Name(reply.status)
    out.tier = reply.tier
    out.rule = reply.rule
    out.response_bytes = reply.ByteSize()
    return out


@dataclass
class Rig:
    """One server under `Decide` load: the server, its API key, the load generator, and the
    temporary directory holding the server's data and log."""

    server: Server
    token: str
    loadgen: LoadGenerator
    workdir: Path
    policies: Path

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"


@contextlib.contextmanager
def one_server(
    *,
    target: str = "gateway",
    procs: int = 2,
    env: dict[str, str] | None = None,
    http_port: int = 0,
    prefix: str = "hitl-bench-",
) -> Iterator[Rig]:
    """Start ``target`` (``hitl-gateway serve`` on a fresh data directory with a key for the
    benchmark application, or ``echo`` / ``durable_echo``) and the load generator; check with
    one call that the auto path is what will be measured; stop and remove everything on exit.

    Raises:
        RuntimeError: The server did not start, or did not answer the preflight APPROVED (the
            log tail is in the message).
    """
    env = server_env() if env is None else env
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    policies = (REPO / "policies").resolve()
    server: Server | None = None
    loadgen: LoadGenerator | None = None
    try:
        port = free_port()
        token = "ignored"
        if target == "gateway":
            data_dir = workdir / "data"
            token = create_key(data_dir, policies, env, APPLICATION)
            argv = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
            argv += ["--policies", str(policies), "--grpc-port", str(port)]
            argv += ["--http-port", str(http_port)]
        else:
            argv = [sys.executable, "-m", f"bench.{target}_server", "--port", str(port)]
            if target == "durable_echo":
                argv += ["--db", str(workdir / "durable-echo.db")]
        server = Server(target, argv, port, workdir, env)
        server.start()
        loadgen = LoadGenerator(procs)
        server.wait_ready(timeout=60)
        check = preflight(server, token)
        if check.status != "APPROVED":
            raise RuntimeError(
                f"preflight answered {check.status or check.error}, not APPROVED: the figures "
                f"would not be those of the auto path; log tail:\n{server.log_tail()}"
            )
        yield Rig(server, token, loadgen, workdir, policies)
    finally:
        if loadgen is not None:
            loadgen.close()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
