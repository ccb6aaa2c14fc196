"""Throughput and latency of ``Decide`` on the auto-approve path, against a bare echo baseline.

One run starts, in its own process tree, a bare grpc.aio echo server serving the same method,
the durable echo (`bench.durable_echo_server`: the echo that commits one row per call with group
commit and ``synchronous=FULL`` before answering, the floor of any service that answers after a
durable write), the gateway (``hitl-gateway serve`` with durable audit, on a fresh data
directory), and a pool of load-generator processes. Rounds alternate between the targets (echo,
durable echo, gateway, echo, …) at the full concurrency and at concurrency 1; the figures
reported are medians over rounds, with each server's CPU per decision.

Run from the repository root::

    python -m bench.decide_bench                  # defaults: 3 rounds, 32 in flight, 2 procs
    python -m bench.decide_bench --target echo    # the harness alone, without the gateway
    python -m bench.decide_bench --target durable,gateway

Results are printed as a table and a JSON line, and written to ``bench/results/decide.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench._loadgen import APPLICATION, AUTO_APPROVED_INPUT, LoadGenerator, Preflight, preflight
from bench.harness import (
    REPO,
    Run,
    Server,
    Summary,
    background_load,
    create_key,
    exit_on_sigterm,
    free_port,
    gateway_command,
    json_safe,
    progress,
    server_env,
    summarise,
    table,
)

RESULTS = REPO / "bench" / "results" / "decide.json"
TARGETS = ("echo", "durable", "gateway", "gateway-w2")


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
        default="echo,durable,gateway,gateway-w2",
        help="comma-separated targets among echo, durable, gateway, gateway-w2 (serve "
        "--workers 2); the ratios need them all",
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
    args.targets = [t.strip() for t in args.target.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"--target: unknown {sorted(unknown)}; choose among {', '.join(TARGETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    policies = args.policies.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    env = server_env()
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
        tokens: dict[str, str] = {}
        """API keys by target (the echo servers ignore theirs)."""
        if "echo" in args.targets:
            echo_port = free_port()
            argv_echo = [sys.executable, "-m", "bench.echo_server", "--port", str(echo_port)]
            servers.append(Server("echo", argv_echo, echo_port, workdir, env))
        if "durable" in args.targets:
            port = free_port()
            argv_durable = [sys.executable, "-m", "bench.durable_echo_server", "--port", str(port)]
            argv_durable += ["--db", str(workdir / "durable-echo.db")]
            servers.append(Server("durable", argv_durable, port, workdir, env))
        if "gateway-w2" in args.targets:
            data_dir = workdir / "data-w2"
            tokens["gateway-w2"] = create_key(data_dir, policies, env, APPLICATION)
            port = free_port()
            argv_w2 = [*gateway_command(), "serve", "--workers", "2", "--data-dir", str(data_dir)]
            argv_w2 += ["--policies", str(policies), "--grpc-port", str(port), "--http-port", "0"]
            servers.append(Server("gateway-w2", argv_w2, port, workdir, env))
        if "gateway" in args.targets:
            data_dir = workdir / "data"
            tokens["gateway"] = create_key(data_dir, policies, env, APPLICATION)
            port = free_port()
            argv_gw = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
            argv_gw += ["--policies", str(policies), "--grpc-port", str(port), "--http-port", "0"]
            servers.append(Server("gateway", argv_gw, port, workdir, env))
        for server in servers:
            server.start()
        loadgen = LoadGenerator(args.procs)
        for server in servers:
            server.wait_ready(timeout=60)

        checks = [preflight(server, tokens.get(server.name, "ignored")) for server in servers]
        for check in checks:
            if check.error:
                raise RuntimeError(f"preflight Decide on {check.target} failed: {check.error}")
            print(
                f"preflight {check.target}: {check.status} tier={check.tier!r} "
                f"rule={check.rule!r} request {check.request_bytes} B, "
                f"response {check.response_bytes} B",
                file=sys.stderr,
            )
            if check.target.startswith("gateway") and check.status != "APPROVED":
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
                        tokens.get(server.name, "ignored"),
                        concurrency=concurrency,
                        warmup=args.warmup,
                        duration=duration,
                        round_no=round_no,
                    )
                    progress(run)
                    runs.setdefault((server.name, concurrency), []).append(run)

        summaries = [summarise(rs) for rs in runs.values()]
        summaries.sort(key=lambda s: (-s.concurrency, TARGETS.index(s.target)))
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
        for s in summaries:
            cpu = report["cpu_us_per_decision"].get(f"{s.target}@{s.concurrency}")
            if cpu is not None:
                print(f"{s.target} CPU per decision at c={s.concurrency}: {cpu:.0f} us")
        above = report["gateway_vs_durable"]["p50_c1_above_ms"]
        if above is not None:
            print(f"gateway p50 above the durable echo's at concurrency 1: {above:+.2f} ms")
        workers = report["workers_2_over_1"]
        if workers is not None:
            print(
                f"gateway --workers 2 / --workers 1 throughput at c={args.concurrency}: "
                f"{workers:.2f}x"
            )
        cpu_ratio = report["gateway_vs_durable"]["cpu_per_decision_over_echo"]
        if cpu_ratio is not None:
            print(
                f"gateway CPU per decision over the bare echo's at c={args.concurrency}: "
                f"{cpu_ratio:.2f}x"
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
        report = json_safe(report)
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

    def cpu_us(s: Summary) -> float | None:
        if s.server_cpu_pct is None or not s.decisions_per_s:
            return None
        return round(s.server_cpu_pct / 100 / s.decisions_per_s * 1e6, 1)

    cpu = {f"{s.target}@{s.concurrency}": cpu_us(s) for s in summaries}

    def ratio_of(top: str, bottom: str, concurrency: int) -> float | None:
        t, b = by_key.get((top, concurrency)), by_key.get((bottom, concurrency))
        if t is None or b is None or not b.decisions_per_s:
            return None
        return round(t.decisions_per_s / b.decisions_per_s, 3)

    gw1, du1 = by_key.get(("gateway", 1)), by_key.get(("durable", 1))
    gw_cpu, echo_cpu = cpu.get(f"gateway@{args.concurrency}"), cpu.get(f"echo@{args.concurrency}")
    return {
        "benchmark": "decide",
        "cpu_us_per_decision": cpu,
        "workers_2_over_1": ratio_of("gateway-w2", "gateway", args.concurrency),
        "gateway_vs_durable": {
            "p50_c1_above_ms": (
                round(gw1.p50_ms - du1.p50_ms, 3) if gw1 is not None and du1 is not None else None
            ),
            "cpu_per_decision_over_echo": (
                round(gw_cpu / echo_cpu, 3) if gw_cpu and echo_cpu else None
            ),
        },
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
