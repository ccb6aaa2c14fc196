"""Auto-path ``Decide`` throughput of the gateway on PostgreSQL next to SQLite, in one run.

Starts two gateways (``hitl-gateway serve``), one on a fresh SQLite file and one on a fresh
schema of a PostgreSQL database, and drives both with the same load generator as
`bench.decide_bench`, alternating between them each round; medians over rounds are printed.

Run from the repository root::

    python -m bench.store_pg_bench                         # starts PostgreSQL if needed
    HITL_TEST_POSTGRES_DSN=postgresql://u:p@host/db python -m bench.store_pg_bench --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from bench._loadgen import APPLICATION, LoadGenerator, preflight
from bench.harness import (
    REPO,
    Run,
    Server,
    create_key,
    free_port,
    gateway_command,
    server_env,
    summarise,
    table,
)
from gateway.keys import generate_secrets


def postgres_dsn() -> str:
    dsn = os.environ.get("HITL_TEST_POSTGRES_DSN", "").strip()
    if dsn:
        return dsn
    out = subprocess.run(
        [str(REPO / "scripts" / "ensure-postgres.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


async def _schema(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    args = parser.parse_args(argv)

    base = postgres_dsn()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_schema(base, f"CREATE SCHEMA {schema}"))
    pg_dsn = f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    workdir = Path(tempfile.mkdtemp(prefix="hitl-pg-bench-"))
    env = server_env()
    env.pop("HITL_STORE", None)
    servers: list[Server] = []
    tokens: dict[str, str] = {}
    loadgen: LoadGenerator | None = None
    try:
        for name, store in (("sqlite", ""), ("postgresql", pg_dsn)):
            data_dir = workdir / name
            # A shared store refuses to start without the secrets every replica must share.
            shared = {f"HITL_{k.upper()}": v for k, v in generate_secrets().items()}
            target_env = {**env, "HITL_STORE": store, **shared} if store else env
            tokens[name] = create_key(data_dir, args.policies.resolve(), target_env, APPLICATION)
            port = free_port()
            argv_gw = [*gateway_command(), "serve", "--data-dir", str(data_dir)]
            argv_gw += ["--policies", str(args.policies.resolve()), "--grpc-port", str(port)]
            argv_gw += ["--http-port", "0"]
            servers.append(Server(name, argv_gw, port, workdir, target_env))
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
            for server in servers:
                run = loadgen.run(
                    server,
                    tokens[server.name],
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    duration=args.duration,
                    round_no=round_no,
                )
                rate = f"{run.decisions_per_s:,.0f}/s"
                print(f"round {round_no} {server.name}: {rate}", file=sys.stderr)
                runs.setdefault(server.name, []).append(run)
        summaries = [summarise(rs) for rs in runs.values()]
        print(table(summaries))
        for s in summaries:
            for code, n in sorted(s.errors_by_code.items()):
                print(f"errors from {s.target}: {n} x {code}: {s.error_samples.get(code, '')!r}")
        by = {s.target: s.decisions_per_s for s in summaries}
        print(
            f"auto path at concurrency {args.concurrency}: PostgreSQL {by['postgresql']:,.0f}/s, "
            f"SQLite {by['sqlite']:,.0f}/s (ratio {by['postgresql'] / by['sqlite']:.2f}); "
            f"{os.cpu_count()} CPUs shared by both gateways, PostgreSQL and the load generator"
        )
        return 1 if any(s.errors for s in summaries) else 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for server in servers:
            print(f"{server.name} log tail:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()
        if loadgen is not None:
            loadgen.close()
        shutil.rmtree(workdir, ignore_errors=True)
        asyncio.run(_schema(base, f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    sys.exit(main())
