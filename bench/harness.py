"""What every end-to-end benchmark here needs: servers in one process tree, CPU and statistics.

A benchmark starts its servers as subprocesses (``Server``) that die with it, each ready once
its gRPC health check says SERVING, measures them with load from other processes (the Decide
load generator is ``bench._loadgen``), reads CPU use from Linux ``/proc`` (the figures are left
out elsewhere), and reports each target's runs (``Run``) as medians over rounds (``Summary``).
Servers and load share the machine's cores, so benchmarks report ratios against a baseline
measured the same way rather than absolute figures alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop when it is installed (as the gateway does), else on asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)


async def serve_forever(server: Any, port: int) -> None:
    """Serve ``server`` (a ``grpc.aio.Server``) on loopback ``port`` until the process ends.

    The gRPC health service is added, reporting SERVING, so ``Server.wait_ready`` sees every
    process under test the same way.
    """
    from grpc_health.v1 import health, health_pb2_grpc

    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def server_env() -> dict[str, str]:
    """The environment of servers under test: quiet logs, and no per-key rate limit."""
    # The per-key rate limit protects production replicas; here one key drives all the load and
    # the limiter is not what is measured.
    return {
        **os.environ,
        "HITL_LOG_LEVEL": "warning",
        "PYTHONPATH": str(REPO),
        "HITL_RATE_LIMIT": "1000000",
        "HITL_RATE_BURST": "1000000",
    }


def exit_on_sigterm() -> None:
    """Make SIGTERM exit through ``finally`` blocks, so the servers started are stopped."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


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


def create_key(data_dir: Path, policies: Path, env: dict[str, str], application: str) -> str:
    """An API key for ``application``, made by ``hitl-gateway keys create`` in ``data_dir``."""
    argv = [*gateway_command(), "keys", "create", "--app", application]
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
    """User + system CPU seconds used so far by ``pid`` (all its threads) and its live child
    processes (the workers of ``serve --workers``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / _TICK
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        total += process_cpu(int(child)) or 0.0
    return total


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


# --- statistics -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def median(values: list[float | None]) -> float | None:
    """Median of the values present (None and NaN left out); None when there are none."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def json_safe(value: Any) -> Any:
    """The report with NaN (a run without one OK call) as null, so it stays valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


# --- runs and their summary -------------------------------------------------------------------


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
        decisions_per_s=median([r.decisions_per_s for r in runs]) or 0.0,
        p50_ms=median([r.p50_ms for r in runs]) or math.nan,
        p99_ms=median([r.p99_ms for r in runs]) or math.nan,
        errors=sum(errors.values()),
        server_cpu_pct=median([r.server_cpu_pct for r in runs]),
        loadgen_cpu_pct=median([r.loadgen_cpu_pct for r in runs]),
        machine_busy_pct=median([r.machine_busy_pct for r in runs]),
        other_cpu_pct=median([r.other_cpu_pct for r in runs]),
        errors_by_code=dict(errors),
        error_samples=samples,
        rounds=[asdict(r) for r in runs],
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def progress(run: Run) -> None:
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
