"""The gateway's chat path (``POST /v1/chat/completions``, auto-approved) against calling the
OpenAI-compatible model server directly, in the same run.

One run starts the deterministic chat server (``tests.integration.chat_server``, Starlette on
uvicorn) and the gateway (``hitl-gateway serve``, durable audit) with an application on that
server; then rounds alternate between the two targets at the same concurrency, with load from
separate processes sending the same request body over HTTP/1.1 keep-alive (httpx). Figures are
medians over rounds; the ratio is gateway throughput / direct throughput, and the overhead is
the difference of the p50 latencies at concurrency 1.

Before measuring, one call through each target checks the path: both must return the model's
answer, and the gateway's must carry its decision id (an approved decision). The exit status is
1 when a check fails, when any call fails during the rounds, or when a run completes no call.

    python -m bench.chat_bench                     # 3 rounds, 32 in flight, 2 load processes
    python -m bench.chat_bench --rounds 1 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
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

APPLICATION = "bench-chat"
MODEL = "bank-llm-1"
POLICY = """
backends:
  - {{name: bench-llm, kind: openai, target: "http://127.0.0.1:{port}/v1", model: {model},
     version: "1", timeout: 5s}}
applications:
  - id: bench-chat
    tier: limited
    backend: bench-llm
    route:
      - {{when: "output.tool_calls.size() == 0", action: approve}}
    chat:
      model_name: bench-assistant
"""
QUESTION = "What are your opening hours on Saturdays?"
EXPECTED = f"Echo: {QUESTION}"


class BenchError(RuntimeError):
    """The benchmark cannot give meaningful figures (wrong path, failed calls)."""


def body(model: str) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    ).encode()


def wait_http(url: str, server: Server, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc is not None
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited; log tail:\n{server.log_tail()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{server.name} does not answer {url}")


def preflight(name: str, url: str, payload: bytes, token: str) -> str:
    import httpx

    response = httpx.post(
        url, content=payload, headers={"authorization": f"Bearer {token}"}, timeout=10
    )
    if response.status_code != 200:
        raise BenchError(f"preflight {name}: HTTP {response.status_code}: {response.text[:300]}")
    content = response.json()["choices"][0]["message"]["content"]
    if content != EXPECTED:
        raise BenchError(f"preflight {name}: answer {content!r}, expected {EXPECTED!r}")
    decision = response.headers.get("x-hitl-decision-id", "")
    if name == "gateway" and not decision:
        raise BenchError("preflight gateway: no decision id; not the gateway's decision path")
    return f"preflight {name}: OK" + (f", approved decision {decision}" if decision else "")


async def _load(url: str, payload: bytes, token: str, concurrency: int, seconds: float):
    import httpx

    ok = errors = 0
    first_error = ""
    latencies: list[float] = []
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        warm_until = time.perf_counter() + 1.0
        until = warm_until + seconds

        async def client() -> None:
            nonlocal ok, errors, first_error
            while (now := time.perf_counter()) < until:
                try:
                    response = await http.post(url, content=payload, headers=headers)
                except httpx.HTTPError as exc:
                    errors += 1
                    first_error = first_error or repr(exc)
                    continue
                if response.status_code != 200:
                    errors += 1
                    first_error = first_error or f"HTTP {response.status_code}"
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
    servers: list[Server] = []
    try:
        runs = _run(args, server_env(), servers)
    except RuntimeError as exc:  # BenchError, or a server that did not start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
    summary = {
        key: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "first_error"}
        for key, rs in runs.items()
    }
    c = args.concurrency
    ratio = summary[f"gateway@{c}"]["rate"] / summary[f"direct@{c}"]["rate"]
    overhead = summary["gateway@1"]["p50_ms"] - summary["direct@1"]["p50_ms"]
    print(
        f"\nconcurrency {c}: direct {summary[f'direct@{c}']['rate']:.0f}/s, gateway chat path "
        f"{summary[f'gateway@{c}']['rate']:.0f}/s -> ratio {ratio:.2f}x\n"
        f"concurrency 1: p50 direct {summary['direct@1']['p50_ms']:.2f} ms, gateway "
        f"{summary['gateway@1']['p50_ms']:.2f} ms -> overhead +{overhead:.2f} ms per call"
    )
    print(json.dumps({"ratio": round(ratio, 3), "overhead_ms": round(overhead, 3), **summary}))
    bad = [
        f"{key} round {i + 1}: {r['errors']} errors (first: {r['first_error']})"
        if r["errors"]
        else f"{key} round {i + 1}: no call completed"
        for key, rs in runs.items()
        for i, r in enumerate(rs)
        if r["errors"] or not r["ok"]
    ]
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    return 1 if bad else 0


def _run(
    args: argparse.Namespace, env: dict[str, str], servers: list[Server]
) -> dict[str, list[dict[str, Any]]]:
    """Start the servers (appended to ``servers``), check each path, then measure the rounds."""
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        work = Path(tmp)
        model_port, grpc_port, http_port = free_port(), free_port(), free_port()
        argv_model = [sys.executable, "-m", "tests.integration.chat_server"]
        model = Server("model", [*argv_model, "--port", str(model_port)], model_port, work, env)
        servers.append(model)
        policies = work / "policies"
        policies.mkdir()
        (policies / "tiers.yaml").write_text((REPO / "policies" / "tiers.yaml").read_text())
        (policies / "bench.yaml").write_text(POLICY.format(port=model_port, model=MODEL))
        data_dir = work / "var"
        token = create_key(data_dir, policies, env, APPLICATION)
        asyncio.run(approve_model(data_dir, "bench-llm", MODEL))
        argv_gw = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
        argv_gw += ["--policies", str(policies), "--grpc-port", str(grpc_port)]
        argv_gw += ["--http-port", str(http_port)]
        gateway = Server("gateway", argv_gw, grpc_port, work, env)
        servers.append(gateway)
        model.start()
        wait_http(f"http://127.0.0.1:{model_port}/v1/models", model, 30)
        gateway.start()
        gateway.wait_ready(60)
        targets = {
            "direct": (f"http://127.0.0.1:{model_port}/v1/chat/completions", body(MODEL)),
            "gateway": (
                f"http://127.0.0.1:{http_port}/v1/chat/completions",
                body("bench-assistant"),
            ),
        }
        for name, (url, payload) in targets.items():
            print(preflight(name, url, payload, token), flush=True)
        assert model.proc is not None
        assert gateway.proc is not None
        pids = {"gateway": gateway.proc.pid, "model": model.proc.pid}
        runs: dict[str, list[dict[str, Any]]] = {}
        with mp.get_context("spawn").Pool(args.procs) as pool:
            for r in range(args.rounds):
                for c in (args.concurrency, 1):
                    for name, target in targets.items():
                        url, payload = target
                        result = measure(
                            pool,
                            _worker,
                            (url, payload, token),
                            procs=args.procs,
                            concurrency=c,
                            seconds=args.duration,
                            pids=pids,
                        )
                        runs.setdefault(f"{name}@{c}", []).append(result)
                        print(
                            f"round {r + 1} {name:8} c={c:<3} {result['rate']:8.0f}/s  "
                            f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms",
                            flush=True,
                        )
        return runs


if __name__ == "__main__":
    sys.exit(main())
