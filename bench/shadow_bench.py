"""The auto path's CPU per decision with and without a shadow policy, against the shadow
evaluation alone.

One gateway (``hitl-gateway serve``, durable, fresh data directory) serves the auto-approved
credit-limit request at the full concurrency, in alternating rounds: no shadow, then a shadow
policy set through AdminService (the repository's policies with the auto-approve line moved to
0.7, so every decision is evaluated under it and agrees), then cleared again, and so on. Each
round reports the gateway process's CPU per decision. In this process, the shadow evaluation of
the same decision (`gateway.core.shadow.ShadowObserver.observe`) is timed in a bare loop.

The shadow's cost on the live path should be no more than that evaluation: printed as the ratio
(CPU per decision with - without) / bare evaluation. Run from the repository root::

    python -m bench.shadow_bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench._loadgen import APPLICATION, AUTO_APPROVED_INPUT, Rig, one_server
from bench.harness import (
    REPO,
    exit_on_sigterm,
    free_port,
    gateway_command,
    progress,
)

LINE = "output.score >= 0.8"
SHADOW_LINE = "output.score >= 0.7"


def _admin_key(data_dir: Path, policies: Path, env: dict[str, str]) -> str:
    argv = [*gateway_command(), "keys", "create", "--role", "admin"]
    argv += ["--data-dir", str(data_dir), "--policies", str(policies)]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"admin key: {done.stderr.strip()}")
    return done.stdout.splitlines()[0].strip()


def _shadow_dir(policies: Path, target: Path) -> Path:
    shutil.copytree(policies, target, ignore=shutil.ignore_patterns("tests"))
    apps = target / "applications.yaml"
    text = apps.read_text()
    if LINE not in text:
        raise RuntimeError(f"{apps} has no {LINE!r} to move")
    apps.write_text(text.replace(LINE, SHADOW_LINE, 1))
    return target


def bare_observe_us(policies: Path, shadow_dir: Path, n: int = 20_000) -> float:
    """Microseconds of CPU per shadow evaluation of the benchmark's decision, in a bare loop."""
    from gateway.core.shadow import ShadowObserver
    from gateway.policy import load_policies
    from gateway.types import Decision, ModelRef, Status, Validation

    shadow = load_policies(shadow_dir)
    app = load_policies(policies).application(APPLICATION)
    decision = Decision(
        id="d",
        application=APPLICATION,
        tier=app.base_tier.name,
        status=Status.APPROVED,
        input=AUTO_APPROVED_INPUT,
        model=ModelRef(
            app.backend.name, app.backend.model, app.backend.version, Validation.APPROVED
        ),
        model_output={"score": 0.95},
        final_output={"score": 0.95},
        reasons=(),
        rule="route[0]",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        trace_id="",
        policy_version="sha256:x",
    )
    observer = ShadowObserver(store=None)  # type: ignore[arg-type]  # never flushed here
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(n):
            observer.observe(shadow, "sha256:x", decision, AUTO_APPROVED_INPUT)
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


def _in_process_us(http_port: int) -> float:
    """Mean microseconds of one shadow evaluation so far, from the gateway's own metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read()
    seconds = count = 0.0
    for line in text.decode().splitlines():
        if line.startswith("hitl_shadow_evaluation_seconds_total"):
            seconds = float(line.split()[-1])
        elif line.startswith("hitl_shadow_evaluations_total{"):
            count += float(line.split()[-1])
    return seconds / count * 1e6 if count else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.shadow_bench", description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (without, with)")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args(argv)
    exit_on_sigterm()
    http_port = free_port()
    try:
        with one_server(procs=args.procs, http_port=http_port, prefix="hitl-shadow-bench-") as rig:
            return compare(args, rig, http_port)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def compare(args: argparse.Namespace, rig: Rig, http_port: int) -> int:
    """Rounds without and with a shadow policy; prints the figures (see the module)."""
    server, token, loadgen, policies = rig.server, rig.token, rig.loadgen, rig.policies
    shadow_dir = _shadow_dir(policies, rig.workdir / "shadow")
    admin = _admin_key(rig.data_dir, policies, server.env)

    from gateway.client_admin import admin_channel
    from gateway.client_policy import PolicyClient
    from gateway.policy.texts import read_candidate

    files, _ = read_candidate(shadow_dir)
    per_decision: dict[str, list[float]] = {"without": [], "with": []}
    in_process: list[float] = []
    with PolicyClient(admin_channel(server.address), admin) as client:
        for round_no in range(1, args.rounds + 1):
            for mode in ("without", "with"):
                if mode == "with":
                    client.apply(files, [], source="bench", shadow=True)
                run = loadgen.run(
                    server,
                    token,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    duration=args.duration,
                    round_no=round_no,
                )
                run.target = f"gateway {mode} shadow"
                progress(run)
                if mode == "with":
                    client.clear_shadow()
                    in_process.append(_in_process_us(http_port))
                if run.error_count or not run.ok or run.server_cpu_pct is None:
                    raise RuntimeError(f"round {round_no} {mode}: {run.errors or 'no calls'}")
                cpu_us = run.server_cpu_pct / 100 / run.decisions_per_s * 1e6
                per_decision[mode].append(cpu_us)
    bare = bare_observe_us(policies, shadow_dir)
    without = statistics.median(per_decision["without"])
    with_shadow = statistics.median(per_decision["with"])
    grown = with_shadow - without
    print(f"\n{os.cpu_count()} CPUs shared by the gateway and the load generator")
    print(f"gateway CPU per decision without shadow   {without:8.0f} us (median)")
    print(f"gateway CPU per decision with shadow      {with_shadow:8.0f} us (median)")
    print(f"growth                                    {grown:8.0f} us")
    print(f"shadow evaluation alone (bare loop)       {bare:8.1f} us")
    where = statistics.median(in_process)
    print(f"shadow evaluation in the gateway (mean)   {where:8.1f} us")
    print(f"ratio growth / bare evaluation            {grown / bare:8.2f}")
    print(f"ratio growth / evaluation in the gateway  {grown / where:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
