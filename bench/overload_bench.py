"""Overload: the gateway at four times its saturating concurrency, with admission control.

One gateway (``hitl-gateway serve``, durable, fresh data directory) serves the auto-approved
credit-limit request. First short runs at rising concurrency find the saturating one: the
lowest whose goodput reaches 95% of the best seen (the peak). Then a run at four times that
concurrency, where the calls past ``max_deciding`` are shed with RESOURCE_EXHAUSTED and a
pushback the load generator waits (as gRPC's retry policy does). Printed: goodput against the
peak (goal at least 0.9x), p99 of the admitted calls against its value at saturation (goal
under 3x), shed calls, and the gateway's RSS before and after (goal: flat). Run from the
repository root::

    python -m bench.overload_bench                       # the default max_deciding
    python -m bench.overload_bench --max-deciding 0      # no bound, for comparison
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench._loadgen import Rig, one_server
from bench.harness import Run, exit_on_sigterm, progress, server_env


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.overload_bench", description=__doc__)
    ap.add_argument("--max-deciding", type=int, default=None, help="default: the setting's")
    ap.add_argument("--levels", default="1,2,4,8,16,32", help="concurrencies to find saturation")
    ap.add_argument("--probe", type=float, default=4.0, help="seconds per saturation probe")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of the overload run")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args(argv)
    exit_on_sigterm()
    env = server_env()
    if args.max_deciding is not None:
        env["HITL_MAX_DECIDING"] = str(args.max_deciding)
    try:
        with one_server(procs=args.procs, env=env, prefix="hitl-overload-") as rig:
            return overload(args, rig)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def overload(args: argparse.Namespace, rig: Rig) -> int:
    server, token, loadgen = rig.server, rig.token, rig.loadgen
    assert server.proc is not None

    def run(concurrency: int, duration: float) -> Run:
        result = loadgen.run(
            server,
            token,
            concurrency=concurrency,
            warmup=1.0,
            duration=duration,
            round_no=1,
        )
        progress(result)
        return result

    probes = {c: run(c, args.probe) for c in (int(x) for x in args.levels.split(","))}
    peak = max(r.decisions_per_s for r in probes.values())
    saturating = min(c for c, r in probes.items() if r.decisions_per_s >= 0.95 * peak)
    rss_before = rss_mib(server.proc.pid)
    over = run(4 * saturating, args.duration)
    rss_after = rss_mib(server.proc.pid)
    shed = over.errors.get("RESOURCE_EXHAUSTED", 0)
    other = sum(n for code, n in over.errors.items() if code != "RESOURCE_EXHAUSTED")
    at_saturation = probes[saturating]
    goodput = over.decisions_per_s / peak
    p99 = over.p99_ms / at_saturation.p99_ms
    print(f"\npeak goodput {peak:.0f}/s; saturating concurrency {saturating}")
    print(f"at concurrency {4 * saturating}: goodput {over.decisions_per_s:.0f}/s")
    print(f"goodput / peak                      {goodput:.2f}x  (goal >= 0.9)")
    print(
        f"p99 of admitted calls / at saturation {p99:.2f}x  "
        f"({over.p99_ms:.1f} ms vs {at_saturation.p99_ms:.1f} ms; goal < 3)"
    )
    print(f"shed calls (RESOURCE_EXHAUSTED)     {shed}  (other errors: {other})")
    print(f"gateway RSS                         {rss_before:.0f} -> {rss_after:.0f} MiB")
    return 1 if other else 0


if __name__ == "__main__":
    raise SystemExit(main())
