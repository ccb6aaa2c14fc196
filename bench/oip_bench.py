"""The gateway's OIP proxy path (auto-approved) against a plain grpc.aio pass-through proxy.

One run starts a small OIP model server (``bench.oip_model_server``), a plain pass-through proxy
in front of it (``bench.oip_passthrough``) and the gateway (``hitl-gateway serve``, durable
audit) with an application on that same model server; then rounds alternate between the
proxies at the same concurrency, with load from separate processes. Figures are medians over
rounds; the ratio is gateway throughput / pass-through throughput.

A third proxy, ``parsing``, is the pass-through that also parses and rebuilds each ModelInfer
request and response (model renamed, nothing else): the least any protocol-aware Python proxy
does, shown for context. Each row also gives the CPU each call costs the proxy process and the
model server: on a small machine, where load, proxy and model share cores, CPU per call is
what sets the ratio.

Before measuring, one ModelInfer through each proxy checks the path: every one must return the
model's score, and the gateway must answer it as an approved decision (OK, with its decision id
in the trailers). The exit status is 1 when a check fails, when any call fails during the
rounds, or when a run completes no call.

    python -m bench.oip_bench                     # 3 rounds, 32 in flight, 2 load processes
    python -m bench.oip_bench --rounds 1 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._proxy_load import approve_model, measure
from bench.harness import (
    REPO,
    Server,
    create_key,
    exit_on_sigterm,
    free_port,
    gateway_command,
    server_env,
)

APPLICATION = "bench-oip"
MODEL = "bench-scorer"
POLICY = """
backends:
  - {{name: bench-model, kind: oip, target: "127.0.0.1:{port}", model: scorer, version: "1",
     timeout: 2s}}
applications:
  - id: bench-oip
    tier: limited
    backend: bench-model
    route:
      - {{when: "output.score >= 0.8", action: approve}}
    oip:
      model_name: bench-scorer
      inputs:
        - {{name: features, datatype: FP64, shape: [1, 2], field: features}}
      outputs:
        - {{name: predict, datatype: FP64, shape: [1, 1], field: score}}
"""
METHOD = "/inference.GRPCInferenceService/ModelInfer"
DECISION_ID_KEY = "x-hitl-decision-id"
EXPECTED_SCORE = 0.9  # 0.5 * 1.0 + 0.4 * 1.0 from bench.oip_model_server


def request_bytes(model: str) -> bytes:
    from gateway._pb.inference import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="features", datatype="FP64", shape=[1, 2])
    request.raw_input_contents.append(struct.pack("<2d", 1.0, 1.0))  # score 0.9: approved
    return request.SerializeToString()


class BenchError(RuntimeError):
    """The benchmark cannot give meaningful figures (wrong path, failed calls)."""


def preflight(name: str, address: str, payload: bytes, token: str) -> str:
    """One call through a proxy: the model's score must come back, and through the gateway as an
    approved decision. Returns a line describing the answer; raises BenchError otherwise."""
    import grpc

    from gateway._pb.inference import grpc_service_pb2 as pb

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD)
        try:
            raw, rpc = call.with_call(
                payload, metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        except grpc.RpcError as exc:
            trailers = dict(exc.trailing_metadata() or ())
            decision = trailers.get(DECISION_ID_KEY, "")
            raise BenchError(
                f"preflight ModelInfer through {name} failed: {exc.code().name}: "
                f"{exc.details()}"
                + (f" (decision {decision}: not auto-approved)" if decision else "")
            ) from None
    response = pb.ModelInferResponse.FromString(raw)
    if len(response.raw_output_contents) != 1 or len(response.raw_output_contents[0]) != 8:
        raise BenchError(f"preflight through {name}: unexpected response {response}")
    (score,) = struct.unpack("<d", response.raw_output_contents[0])
    if abs(score - EXPECTED_SCORE) > 1e-9:
        raise BenchError(f"preflight through {name}: score {score}, expected {EXPECTED_SCORE}")
    decision = dict(rpc.trailing_metadata() or ()).get(DECISION_ID_KEY, "")
    if name == "gateway" and not decision:
        raise BenchError(
            f"preflight through {name}: OK without a decision id in the trailers; "
            f"{address} is not the gateway's decision path"
        )
    return f"preflight {name}: OK, score {score:g}" + (
        f", approved decision {decision}" if decision else ""
    )


async def _load(address: str, payload: bytes, token: str, concurrency: int, seconds: float):
    import grpc

    ok = errors = 0
    first_error = ""
    latencies: list[float] = []
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call = channel.unary_unary(METHOD)
        warm_until = time.perf_counter() + 1.0
        until = warm_until + seconds

        async def client() -> None:
            nonlocal ok, errors, first_error
            while (now := time.perf_counter()) < until:
                try:
                    await call(payload, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    errors += 1
                    first_error = first_error or f"{exc.code().name}: {exc.details()}"
                    continue
                end = time.perf_counter()
                if now >= warm_until and end <= until:
                    ok += 1
                    latencies.append(end - now)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return ok, errors, latencies, first_error


def _worker(args: tuple[str, bytes, str, int, float]) -> tuple[int, int, list[float], str]:
    return asyncio.run(_load(*args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    env = server_env()
    servers: list[Server] = []
    try:
        runs = _run(args, env, servers)
    except RuntimeError as exc:  # BenchError, or a server that did not start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = {
        name: {k: statistics.median(run[k] for run in rs) for k in rs[0] if k != "first_error"}
        for name, rs in runs.items()
    }
    ratio = summary["gateway"]["rate"] / summary["passthrough"]["rate"]
    parsing = summary["parsing"]["rate"] / summary["passthrough"]["rate"]
    print(
        f"\nconcurrency {args.concurrency}: pass-through {summary['passthrough']['rate']:.0f}/s, "
        f"gateway OIP proxy {summary['gateway']['rate']:.0f}/s -> ratio {ratio:.2f}x "
        f"(goal >= 0.85x); parsing proxy {summary['parsing']['rate']:.0f}/s -> {parsing:.2f}x"
    )
    print(json.dumps({"concurrency": args.concurrency, "ratio": round(ratio, 3), **summary}))
    failed = [
        f"{name} round {i + 1}: {run['errors']} errors (first: {run['first_error']})"
        for name, rs in runs.items()
        for i, run in enumerate(rs)
        if run["errors"]
    ]
    empty = [
        f"{name} round {i + 1}"
        for name, rs in runs.items()
        for i, run in enumerate(rs)
        if not run["ok"]
    ]
    if failed or empty:
        for line in failed:
            print(f"error: {line}", file=sys.stderr)
        if empty:
            print(f"error: no call completed in {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


def _run(
    args: argparse.Namespace, env: dict[str, str], servers: list[Server]
) -> dict[str, list[dict[str, Any]]]:
    """Start the servers (appended to ``servers``), check each path, then measure the rounds."""
    with tempfile.TemporaryDirectory(prefix="oip-bench-") as tmp:
        work = Path(tmp)
        try:
            model_port, proxy_port, gw_port = free_port(), free_port(), free_port()
            parse_port = free_port()
            argv_model = [sys.executable, "-m", "bench.oip_model_server", "--port", str(model_port)]
            servers.append(Server("model", argv_model, model_port, work, env))
            argv_proxy = [sys.executable, "-m", "bench.oip_passthrough", "--port", str(proxy_port)]
            argv_proxy += ["--upstream", f"127.0.0.1:{model_port}"]
            servers.append(Server("passthrough", argv_proxy, proxy_port, work, env))
            argv_parse = [sys.executable, "-m", "bench.oip_passthrough", "--port", str(parse_port)]
            argv_parse += ["--upstream", f"127.0.0.1:{model_port}", "--rename", f"{MODEL}=scorer"]
            servers.append(Server("parsing", argv_parse, parse_port, work, env))
            policies = work / "policies"
            policies.mkdir()
            for name in ("tiers.yaml",):
                (policies / name).write_text((REPO / "policies" / name).read_text())
            (policies / "bench.yaml").write_text(POLICY.format(port=model_port))
            data_dir = work / "var"
            token = create_key(data_dir, policies, env, APPLICATION)
            asyncio.run(approve_model(data_dir, "bench-model", "scorer"))
            argv_gw = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
            argv_gw += ["--policies", str(policies), "--grpc-port", str(gw_port)]
            argv_gw += ["--http-port", "0"]
            servers.append(Server("gateway", argv_gw, gw_port, work, env))
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready(60)
            targets = {
                "passthrough": (servers[1], request_bytes("scorer")),
                "parsing": (servers[2], request_bytes(MODEL)),
                "gateway": (servers[3], request_bytes(MODEL)),
            }
            for name, (proxy, payload) in targets.items():
                print(preflight(name, proxy.address, payload, token), flush=True)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
            ctx = mp.get_context("spawn")
            with ctx.Pool(args.procs) as pool:
                for r in range(args.rounds):
                    for name, (proxy, payload) in targets.items():
                        assert proxy.proc is not None
                        assert servers[0].proc is not None
                        pids = {"proxy": proxy.proc.pid, "model": servers[0].proc.pid}
                        got = measure(
                            pool,
                            _worker,
                            (proxy.address, payload, token),
                            procs=args.procs,
                            concurrency=args.concurrency,
                            seconds=args.duration,
                            pids=pids,
                        )
                        runs[name].append(got)
                        print(
                            f"round {r + 1} {name:12} {got['rate']:8.0f}/s  p50 "
                            f"{got['p50_ms']:6.2f} ms  p99 {got['p99_ms']:6.2f} ms  "
                            f"errors {got['errors']}  CPU/call: proxy "
                            f"{got.get('proxy_cpu_us', float('nan')):.0f} us, model "
                            f"{got.get('model_cpu_us', float('nan')):.0f} us",
                            flush=True,
                        )
            return runs
        except RuntimeError as exc:
            # The logs go with the temporary directory: keep the gateway's tail with the error.
            gateway = next((s for s in servers if s.name == "gateway" and s.proc), None)
            tail = f"\ngateway log tail:\n{gateway.log_tail()}" if gateway is not None else ""
            raise BenchError(f"{exc}{tail}") from None
        finally:
            for server in reversed(servers):
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
