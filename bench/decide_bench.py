"""Throughput and latency of ``Decide`` on the auto-approve path, against a bare echo baseline.

One run starts, in its own process tree, a bare grpc.aio echo server serving the same method,
the gateway (``hitl-gateway serve`` with durable audit, on a fresh data directory), and a pool of
load-generator processes. Rounds alternate between the two targets (echo, gateway, echo, …) at
the full concurrency and at concurrency 1; the figures reported are medians over rounds.

Run from the repository root::

    python -m bench.decide_bench                  # defaults: 3 rounds, 32 in flight, 2 procs
    python -m bench.decide_bench --target echo    # the harness alone, without the gateway

Results are printed as a table and a JSON line, and written to ``bench/results/decide.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bench._loadgen import APPLICATION, AUTO_APPROVED_INPUT, Job, JobResult, worker_main

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "decide.json"
START_MARGIN = 0.5
"""Seconds between handing out a job and its warm-up starting, so all workers begin together."""


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark itself dies (Linux only)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def gateway_command() -> list[str]:
    script = Path(sys.executable).with_name("hitl-gateway")
    if script.exists():
        return [str(script)]
    found = shutil.which("hitl-gateway")
    if found:
        return [found]
    return [sys.executable, "-m", "gateway.cli"]


class Server:
    """A server subprocess with its output in a log file, ready once gRPC health says SERVING."""

    def __init__(self, name: str, argv: list[str], port: int, log_dir: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self) -> None:
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with grpc.insecure_channel(self.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode} before serving; "
                        f"log tail:\n{self.log_tail()}"
                    )
                try:
                    reply = check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                except grpc.RpcError as exc:
                    last = f"{exc.code().name}: {exc.details()}"
                else:
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not SERVING after {timeout:.0f} s ({last})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def create_key(data_dir: Path, policies: Path, env: dict[str, str]) -> str:
    argv = [*gateway_command(), "keys", "create", "--app", APPLICATION]
    argv += ["--data-dir", str(data_dir), "--policies", str(policies)]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or not lines or not lines[0].strip():
        raise RuntimeError(
            f"`{' '.join(argv)}` failed with {done.returncode}:\n{done.stderr.strip()}"
        )
    return lines[0].strip()


# --- CPU accounting (Linux /proc; figures are left out elsewhere) ---------------------------


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) CPU seconds over all cores since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    ticks = [int(v) for v in first[1:9]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def background_load(seconds: float = 1.0) -> float | None:
    """CPU the machine spends on other work while we are idle; 100 = one core."""
    before = machine_busy()
    time.sleep(seconds)
    after = machine_busy()
    if before is None or after is None:
        return None
    return 100 * (after[0] - before[0]) / seconds


# --- load generator pool --------------------------------------------------------------------


@dataclass
class Run:
    """Figures of one measured run of one target at one concurrency."""

    target: str
    concurrency: int
    round: int
    decisions_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    ok: int
    errors: dict[str, int]
    error_samples: dict[str, str]
    server_cpu_pct: float | None
    """CPU of the server process over the measured window; 100 = one core."""
    loadgen_cpu_pct: float | None
    """CPU of all load-generator processes over the window; 100 = one core."""
    machine_busy_pct: float | None
    """Busy share of all cores over the window; 100 = every core busy."""
    other_cpu_pct: float | None
    """CPU used by everything else (kernel I/O, other processes); 100 = one core."""

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


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
    ) -> Run:
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


# --- preflight --------------------------------------------------------------------------------


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

    from bench._loadgen import build_request
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


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over rounds of one target at one concurrency."""

    target: str
    concurrency: int
    decisions_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_pct: float | None
    loadgen_cpu_pct: float | None
    machine_busy_pct: float | None
    other_cpu_pct: float | None
    errors_by_code: dict[str, int] = field(default_factory=dict)
    error_samples: dict[str, str] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def summarise(runs: list[Run]) -> Summary:
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for r in runs:
        errors.update(r.errors)
        for code, details in r.error_samples.items():
            samples.setdefault(code, details)
    return Summary(
        target=runs[0].target,
        concurrency=runs[0].concurrency,
        decisions_per_s=_median([r.decisions_per_s for r in runs]) or 0.0,
        p50_ms=_median([r.p50_ms for r in runs]) or math.nan,
        p99_ms=_median([r.p99_ms for r in runs]) or math.nan,
        errors=sum(errors.values()),
        server_cpu_pct=_median([r.server_cpu_pct for r in runs]),
        loadgen_cpu_pct=_median([r.loadgen_cpu_pct for r in runs]),
        machine_busy_pct=_median([r.machine_busy_pct for r in runs]),
        other_cpu_pct=_median([r.other_cpu_pct for r in runs]),
        errors_by_code=dict(errors),
        error_samples=samples,
        rounds=[asdict(r) for r in runs],
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _progress(run: Run) -> None:
    print(
        f"  round {run.round} {run.target:<8} c={run.concurrency:<3} "
        f"{run.decisions_per_s:9.1f}/s  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
        f"errors {run.error_count}  server CPU {_pct(run.server_cpu_pct)}  "
        f"loadgen CPU {_pct(run.loadgen_cpu_pct)}  other CPU {_pct(run.other_cpu_pct)}",
        file=sys.stderr,
        flush=True,
    )


def table(summaries: list[Summary]) -> str:
    head = (
        f"{'target':<9}{'conc':>5}{'decisions/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'server CPU':>12}{'loadgen CPU':>13}{'other CPU':>11}"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        lines.append(
            f"{s.target:<9}{s.concurrency:>5}{s.decisions_per_s:>13.1f}{s.p50_ms:>9.2f}"
            f"{s.p99_ms:>9.2f}{s.errors:>8}{_pct(s.server_cpu_pct):>12}"
            f"{_pct(s.loadgen_cpu_pct):>13}{_pct(s.other_cpu_pct):>11}"
        )
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.decide_bench",
        description="Decide throughput of the gateway against a bare grpc.aio echo server.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="calls in flight, over all processes"
    )
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per target (medians reported)"
    )
    parser.add_argument(
        "--c1-duration",
        type=float,
        default=5.0,
        help="measured seconds of each concurrency-1 run (0 skips them)",
    )
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    parser.add_argument(
        "--target",
        choices=("both", "echo", "gateway"),
        default="both",
        help="measure only one target (the ratio needs both)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the gateway's data directory and logs"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.procs < 1 or args.rounds < 1:
        parser.error("--concurrency, --procs and --rounds must be at least 1")
    if args.duration <= 0 or args.warmup < 0:
        parser.error("--duration must be positive and --warmup not negative")
    return args


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    policies = args.policies.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    # The per-key rate limit protects production replicas; here one key drives all the load and
    # the limiter is not what is measured.
    env = {
        **os.environ,
        "HITL_LOG_LEVEL": "warning",
        "PYTHONPATH": str(REPO),
        "HITL_RATE_LIMIT": "1000000",
        "HITL_RATE_BURST": "1000000",
    }
    servers: list[Server] = []
    loadgen: LoadGenerator | None = None
    cpus = os.cpu_count() or 0
    try:
        background = background_load()
        if background is not None and background > 15:
            print(
                f"warning: the machine was already {background:.0f}% busy (100% = one core) "
                "before the benchmark started; expect noisy figures",
                file=sys.stderr,
            )
        token = "bench-echo-ignores-this"
        if args.target in ("both", "echo"):
            echo_port = free_port()
            argv_echo = [sys.executable, "-m", "bench.echo_server", "--port", str(echo_port)]
            servers.append(Server("echo", argv_echo, echo_port, workdir, env))
        if args.target in ("both", "gateway"):
            data_dir = workdir / "data"
            token = create_key(data_dir, policies, env)
            port = free_port()
            argv_gw = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
            argv_gw += ["--policies", str(policies), "--grpc-port", str(port), "--http-port", "0"]
            servers.append(Server("gateway", argv_gw, port, workdir, env))
        for server in servers:
            server.start()
        loadgen = LoadGenerator(args.procs)
        for server in servers:
            server.wait_ready(timeout=60)

        checks = [preflight(server, token) for server in servers]
        for check in checks:
            if check.error:
                raise RuntimeError(f"preflight Decide on {check.target} failed: {check.error}")
            print(
                f"preflight {check.target}: {check.status} tier={check.tier!r} "
                f"rule={check.rule!r} request {check.request_bytes} B, "
                f"response {check.response_bytes} B",
                file=sys.stderr,
            )
            if check.target == "gateway" and check.status != "APPROVED":
                raise RuntimeError(
                    f"the gateway answered {check.status} (tier {check.tier!r}, rule "
                    f"{check.rule!r}) to the benchmark input, not APPROVED: the figures would "
                    f"not be those of the auto path; check the policies in {policies}"
                )

        print(
            f"{cpus} CPUs shared by the servers and {args.procs} load-generator processes; "
            f"{args.rounds} rounds of {args.warmup:g} s warm-up + {args.duration:g} s "
            f"at concurrency {args.concurrency}"
            + (f", then {args.c1_duration:g} s at concurrency 1" if args.c1_duration > 0 else ""),
            file=sys.stderr,
            flush=True,
        )
        runs: dict[tuple[str, int], list[Run]] = {}
        plan = [(args.concurrency, args.duration)]
        if args.c1_duration > 0:
            plan.append((1, args.c1_duration))
        for round_no in range(1, args.rounds + 1):
            for concurrency, duration in plan:
                for server in servers:
                    run = loadgen.run(
                        server,
                        token,
                        concurrency=concurrency,
                        warmup=args.warmup,
                        duration=duration,
                        round_no=round_no,
                    )
                    _progress(run)
                    runs.setdefault((server.name, concurrency), []).append(run)

        summaries = [summarise(rs) for rs in runs.values()]
        summaries.sort(key=lambda s: (-s.concurrency, s.target != "echo"))
        report = build_report(args, cpus, checks, summaries)
        report["machine"]["busy_before_pct"] = background
        print()
        print(table(summaries))
        for s in summaries:
            for code, count in sorted(s.errors_by_code.items()):
                print(
                    f"errors from {s.target} at c={s.concurrency}: {count} x {code}: "
                    f"{s.error_samples.get(code, '')!r}"
                )
        ratio = report["ratio_gateway_over_echo"]
        if ratio["throughput"] is not None:
            print(
                f"\ngateway/echo throughput at concurrency {args.concurrency}: "
                f"{ratio['throughput']:.2f}"
                + (
                    f"; p50 latency at concurrency 1: {ratio['p50_c1']:.2f}x"
                    if ratio["p50_c1"] is not None
                    else ""
                )
            )
        print(
            f"note: {cpus} CPUs are shared by the server under test and the load generator, "
            "so absolute figures understate a dedicated server; compare the ratio. "
            "CPU columns: 100% = one core, measured over the window; 'other' is everything "
            "else on the machine (kernel I/O, unrelated processes) and should stay small."
        )
        report = _finite(report)
        line = json.dumps(report, sort_keys=True)
        print(line)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
        total_errors = sum(s.errors for s in summaries)
        empty = [
            f"{r.target} round {r.round} at c={r.concurrency}"
            for rs in runs.values()
            for r in rs
            if r.ok == 0
        ]
        if total_errors or empty:
            if total_errors:
                print(f"error: {total_errors} calls failed (listed above)", file=sys.stderr)
            if empty:
                print(f"error: no call completed in {', '.join(empty)}", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for server in servers:
            if server.name == "gateway" and server.proc is not None:
                print(f"gateway log tail:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        if loadgen is not None:
            loadgen.close()
        for server in servers:
            server.stop()
        if args.keep_data:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _finite(value: Any) -> Any:
    """The report with NaN (a run without one OK call) as null, so it stays valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def build_report(
    args: argparse.Namespace, cpus: int, checks: list[Preflight], summaries: list[Summary]
) -> dict[str, Any]:
    import grpc

    by_key = {(s.target, s.concurrency): s for s in summaries}

    def ratio(field_name: str, concurrency: int) -> float | None:
        echo, gw = by_key.get(("echo", concurrency)), by_key.get(("gateway", concurrency))
        if echo is None or gw is None:
            return None
        num, den = getattr(gw, field_name), getattr(echo, field_name)
        return round(num / den, 4) if den else None

    return {
        "benchmark": "decide",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "procs": args.procs,
            "rounds": args.rounds,
            "c1_duration_s": args.c1_duration,
            "policies": str(args.policies),
            "application": APPLICATION,
            "input": AUTO_APPROVED_INPUT,
        },
        "machine": {
            "cpus": cpus,
            "shared": "server and load generator share the CPUs",
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "platform": platform.platform(),
        },
        "preflight": [asdict(c) for c in checks],
        "results": [asdict(s) for s in summaries],
        "ratio_gateway_over_echo": {
            "throughput": ratio("decisions_per_s", args.concurrency),
            "p50_c1": ratio("p50_ms", 1) if args.c1_duration > 0 else None,
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
