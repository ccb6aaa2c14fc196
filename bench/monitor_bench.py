"""What monitoring per model version adds to the auto path's CPU per decision.

One run starts two gateways on fresh data directories, the same policies and load: ``gateway``
as shipped (each batch of new decisions also upserts its counts and output histogram in its
transaction) and ``unmonitored`` (the same code with the counting turned off,
``bench.unmonitored_gateway``). Rounds alternate between them at concurrency 32; the figure is
the server's CPU seconds per decision (its CPU share over the window divided by its decisions
per second), medians over rounds. It also times the counting itself in-process, per decision,
over a batch shaped like the auto path's.

    python -m bench.monitor_bench                     # 3 rounds of 8 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench._loadgen import APPLICATION, LoadGenerator, preflight
from bench.harness import (
    REPO,
    Run,
    Server,
    create_key,
    exit_on_sigterm,
    free_port,
    gateway_command,
    progress,
    server_env,
    summarise,
)


def _cpu_ms_per_decision(run: Run) -> float | None:
    if run.server_cpu_pct is None or not run.decisions_per_s:
        return None
    return run.server_cpu_pct / 100 / run.decisions_per_s * 1000


def _counting_us_per_decision(batch: int = 64, repeat: int = 200) -> float:
    """In-process: `created_rows` over a batch of auto-approved decisions, per decision."""
    from gateway.modelrisk.monitor import created_rows
    from gateway.timefmt import format_ts
    from gateway.types import Decision, ModelRef, Status

    now = datetime.now(UTC)
    output = {"score": 0.91, "limit": 15000.0, "explanation": {"income": 0.4, "debt": -0.1}}
    decisions = [
        Decision(
            id=f"d{i}",
            application="credit-limit",
            tier="limited",
            status=Status.APPROVED,
            input={},
            model=ModelRef("credit-scorer", "credit_v3", "3"),
            model_output=output,
            final_output=output,
            reasons=(),
            rule="route[0]",
            created_at=now,
            updated_at=now,
            trace_id="",
            policy_version="",
        )
        for i in range(batch)
    ]
    ts = format_ts(now)
    started = time.perf_counter()
    for _ in range(repeat):
        created_rows(decisions, ts)
    return (time.perf_counter() - started) / (repeat * batch) * 1e6


async def _store_cpu_us(path: Path, n: int, concurrency: int, monitored: bool) -> float:
    """Process CPU per ``SQLiteStore.create_decision`` of an auto-approved decision (writer
    thread included), with monitoring's counting on or off."""
    import itertools

    from gateway.modelrisk import monitor
    from gateway.store import SQLiteStore
    from gateway.types import AuditDraft, Decision, ModelRef, Status

    real = monitor.created_rows
    if not monitored:
        monitor.created_rows = lambda *_a, **_k: ([], [])  # type: ignore[assignment,misc]
    now = datetime.now(UTC)
    output = {"score": 0.91, "limit": 15000.0, "explanation": {"income": 0.4, "debt": -0.1}}
    ids = itertools.count()
    store = SQLiteStore(path)
    await store.start()
    try:

        async def worker(k: int) -> None:
            for _ in range(k):
                i = next(ids)
                d = Decision(
                    id=f"d{i:08d}",
                    application="credit-limit",
                    tier="limited",
                    status=Status.APPROVED,
                    input={"income": 85000, "debt_ratio": 0.2, "amount": 15000},
                    model=ModelRef("credit-scorer", "credit_v3", "3"),
                    model_output=output,
                    final_output=output,
                    reasons=("route[0]: good score",),
                    rule="route[0]",
                    created_at=now,
                    updated_at=now,
                    trace_id="",
                    policy_version="sha256:x",
                    idempotency_key=f"k{i}",
                )
                event = AuditDraft(d.id, "decision.created", "app:k", {"status": "APPROVED"})
                await store.create_decision(d, [event], [])

        started = time.process_time()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        used = time.process_time() - started
        return used / (n // concurrency * concurrency) * 1e6
    finally:
        await store.stop()
        monitor.created_rows = real  # type: ignore[assignment]


def store_only(rounds: int, n: int, concurrency: int) -> dict[str, object]:
    """The store's write path alone, in this process, alternating on and off."""
    results: dict[str, list[float]] = {"monitored": [], "unmonitored": []}
    with tempfile.TemporaryDirectory(prefix="hitl-monitor-store-") as tmp:
        for r in range(rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            for on in order:
                path = Path(tmp) / f"{r}-{on}.db"
                us = asyncio.run(_store_cpu_us(path, n, concurrency, on))
                results["monitored" if on else "unmonitored"].append(us)
                print(f"  round {r + 1} {'on ' if on else 'off'} {us:7.1f} µs/decision")
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {
        "store_cpu_us_per_decision": medians,
        "store_cpu_us_rounds": results,
        "store_added_cpu_pct": round((medians["monitored"] / medians["unmonitored"] - 1) * 100, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="time only the store's write path in-process (steadier than the served figure)",
    )
    parser.add_argument("-n", type=int, default=4000, help="decisions per store-only round")
    args = parser.parse_args(argv)
    if args.store_only:
        report = store_only(args.rounds, args.n, args.concurrency)
        print(json.dumps(report, sort_keys=True))
        print(f"monitoring adds {report['store_added_cpu_pct']:+.1f}% CPU per create_decision")
        return 0
    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="hitl-monitor-bench-"))
    env = server_env()
    servers: list[Server] = []
    tokens: dict[str, str] = {}
    loadgen: LoadGenerator | None = None
    try:
        for name, command in (
            ("gateway", gateway_command()),
            ("unmonitored", [sys.executable, "-m", "bench.unmonitored_gateway"]),
        ):
            data_dir = workdir / name
            tokens[name] = create_key(data_dir, args.policies, env, APPLICATION)
            port = free_port()
            argv_gw = [*command, "serve", "--data-dir", str(data_dir), "--policies"]
            argv_gw += [str(args.policies), "--grpc-port", str(port), "--http-port", "0"]
            servers.append(Server(name, argv_gw, port, workdir, env))
        for server in servers:
            server.start()
        loadgen = LoadGenerator(args.procs)
        for server in servers:
            server.wait_ready(timeout=60)
            check = preflight(server, tokens[server.name])
            if check.error or check.status != "APPROVED":
                raise RuntimeError(f"preflight on {server.name}: {check.status} {check.error}")
        runs: dict[str, list[Run]] = {}
        for round_no in range(1, args.rounds + 1):
            for server in servers if round_no % 2 else reversed(servers):
                run = loadgen.run(
                    server,
                    tokens[server.name],
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    duration=args.duration,
                    round_no=round_no,
                )
                progress(run)
                runs.setdefault(server.name, []).append(run)
        per_decision = {
            name: sorted(v for r in rs if (v := _cpu_ms_per_decision(r)) is not None)
            for name, rs in runs.items()
        }
        medians = {name: statistics.median(vs) if vs else None for name, vs in per_decision.items()}
        summaries = {name: summarise(rs) for name, rs in runs.items()}
        counting = _counting_us_per_decision()
        report = {
            "benchmark": "monitor",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpu_ms_per_decision": medians,
            "cpu_ms_per_decision_rounds": per_decision,
            "decisions_per_s": {n: s.decisions_per_s for n, s in summaries.items()},
            "counting_us_per_decision_in_process": round(counting, 2),
        }
        on, off = medians.get("gateway"), medians.get("unmonitored")
        if on and off:
            report["added_cpu_pct"] = round((on / off - 1) * 100, 2)
        print(json.dumps(report, sort_keys=True))
        for name, s in summaries.items():
            print(
                f"{name:<12} {s.decisions_per_s:>8.0f} decisions/s  server CPU "
                f"{s.server_cpu_pct or 0:.0f}%  CPU per decision {medians[name] or 0:.3f} ms"
            )
        if on and off:
            print(f"monitoring adds {report['added_cpu_pct']:+.1f}% CPU per decision")
        print(f"counting alone, in-process: {counting:.2f} µs per decision")
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for server in servers:
            if server.proc is not None:
                print(f"{server.name} log tail:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        if loadgen is not None:
            loadgen.close()
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
