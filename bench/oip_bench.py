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

    python -m bench.oip_bench                     # 3 rounds, 32 in flight, 2 load processes
    python -m bench.oip_bench --rounds 1 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.decide_bench import REPO, Server, free_port, gateway_command, process_cpu

APPLICATION = "bench-oip"
MODEL = "bench-scorer"
POLICY = """
backends:
  - {{name: bench-model, kind: oip, target: "127.0.0.1:{port}", model: scorer, version: "1",
     validation: approved, timeout: 2s}}
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
# Load processes take a moment to start and connect before their warm-up second begins.
START_SKEW = 0.3


def request_bytes(model: str) -> bytes:
    from gateway._pb.inference import grpc_service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="features", datatype="FP64", shape=[1, 2])
    request.raw_input_contents.append(struct.pack("<2d", 1.0, 1.0))  # score 0.9: approved
    return request.SerializeToString()


async def _load(address: str, payload: bytes, token: str, concurrency: int, seconds: float):
    import grpc

    ok = errors = 0
    latencies: list[float] = []
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        call = channel.unary_unary(METHOD)
        warm_until = time.perf_counter() + 1.0
        until = warm_until + seconds

        async def client() -> None:
            nonlocal ok, errors
            while (now := time.perf_counter()) < until:
                try:
                    await call(payload, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                end = time.perf_counter()
                if now >= warm_until and end <= until:
                    ok += 1
                    latencies.append(end - now)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return ok, errors, latencies


def _worker(args: tuple[str, bytes, str, int, float]) -> tuple[int, int, list[float]]:
    return asyncio.run(_load(*args))


def measure(
    pool: Any,
    procs: int,
    address: str,
    payload: bytes,
    token: str,
    c: int,
    s: float,
    pids: dict[str, int],
):
    per = max(1, c // procs)
    pending = pool.map_async(_worker, [(address, payload, token, per, s)] * procs)
    # CPU of the proxy and of the model server over the measured window (after the warm-up).
    time.sleep(1.0 + START_SKEW)
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    time.sleep(s)
    after = {name: process_cpu(pid) for name, pid in pids.items()}
    results = pending.get()
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
    cpu = {
        f"{name}_cpu_us": 1e6 * (after[name] - before[name]) / max(ok, 1)
        for name in pids
        if before[name] is not None and after[name] is not None
    }
    return {"rate": ok / s, "errors": errors, "p50_ms": p50, "p99_ms": p99, **cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args(argv)
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
            keys = [*gateway_command(), "keys", "create", "--app", APPLICATION]
            keys += ["--data-dir", str(data_dir), "--policies", str(policies)]
            made = subprocess.run(keys, cwd=REPO, env=env, capture_output=True, text=True)
            if made.returncode != 0:
                raise RuntimeError(made.stderr)
            token = made.stdout.splitlines()[0].strip()
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
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
            ctx = mp.get_context("spawn")
            with ctx.Pool(args.procs) as pool:
                for r in range(args.rounds):
                    for name, (proxy, payload) in targets.items():
                        assert proxy.proc is not None
                        assert servers[0].proc is not None
                        pids = {"proxy": proxy.proc.pid, "model": servers[0].proc.pid}
                        got = measure(
                            pool,
                            args.procs,
                            proxy.address,
                            payload,
                            token,
                            args.concurrency,
                            args.duration,
                            pids,
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
        finally:
            for server in reversed(servers):
                server.stop()
    summary = {
        name: {k: statistics.median(run[k] for run in rs) for k in rs[0]}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
