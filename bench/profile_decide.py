"""Where the gateway's CPU goes on the auto path: py-spy samples under `Decide` load, grouped.

    python -m bench.profile_decide                       # c=1 and c=32, 10 s each
    python -m bench.profile_decide --concurrency 32 --duration 20 --native

Starts ``hitl-gateway serve`` on a temporary data directory (as `bench.decide_bench` does),
drives it with the same load generator, and records it with ``py-spy record --format raw``
(collapsed stacks, one line per distinct stack with its sample count) for the measured window
of each concurrency. The report groups every sample by the innermost frame that belongs to a
known part of the path (see ``PARTS``), by thread, and lists the functions with the most
samples of their own. The collapsed stacks are kept (``--output``) for flame graphs.

py-spy samples the Python stacks of every thread; with ``--native`` it also unwinds C frames
(gRPC core, protobuf, SQLite), slower to record but it splits "inside a C call" further.
Samples of idle threads are not recorded, so the shares are of CPU-bound samples.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench._loadgen import LoadGenerator, one_server
from bench.harness import REPO, Server, exit_on_sigterm

#: Parts of the path, matched against ``file`` or ``function (file:line)`` of each frame, the
#: innermost match naming the sample's part. Order matters only among patterns of one frame.
PARTS: list[tuple[str, re.Pattern[str]]] = [
    ("SQLite COMMIT (WAL write, fsync)", re.compile(r"_Session\.commit ")),
    ("store: statements on the writer thread", re.compile(r"gateway/store/sqlite/|sqlite3")),
    ("store: rows, audit hashing, Merkle", re.compile(r"gateway/store/|gateway/audit/")),
    ("policy: CEL classify and route", re.compile(r"gateway/policy/")),
    ("model call (built-in backend)", re.compile(r"gateway/backends/")),
    ("model risk and switches", re.compile(r"gateway/modelrisk/|core/switches|following")),
    ("auth, rate limit, admission", re.compile(r"core/auth|core/api_keys|ratelimit|admission")),
    ("pipeline and evaluation", re.compile(r"gateway/core/")),
    ("request/response conversion", re.compile(r"api/converters|gateway/convert/")),
    ("gRPC servicer and interceptors", re.compile(r"gateway/api/")),
    ("telemetry: spans, metrics", re.compile(r"gateway/telemetry|opentelemetry|prometheus")),
    ("logging (structlog)", re.compile(r"structlog")),
    ("protobuf library (Python)", re.compile(r"google/protobuf")),
    ("grpc.aio (Python)", re.compile(r"grpc/")),
    ("thread pool hand-off", re.compile(r"concurrent/futures")),
    ("asyncio in Python (tasks, futures, queues)", re.compile(r"asyncio/(?!runners)")),
    (
        "C under the loop or a thread's run: uvloop, gRPC core, protobuf, or waiting",
        re.compile(r"asyncio/runners|threading\.py|uvloop"),
    ),
]
OTHER = "other"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,32", help="comma-separated concurrencies")
    parser.add_argument("--duration", type=float, default=10.0, help="recorded seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="unwind C frames too")
    parser.add_argument(
        "--perf", action="store_true", help="also record with Linux perf, by library and symbol"
    )
    parser.add_argument(
        "--target",
        choices=("gateway", "echo", "durable_echo"),
        default="gateway",
        help="what to profile: the gateway, or the bare or durable echo of bench.decide_bench",
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed by own samples")
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results", help="where stacks go"
    )
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """CPU seconds so far of each thread of ``pid``: thread id -> (name, seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[task.name] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_names(stacks: Counter[tuple[str, ...]]) -> dict[str, str]:
    """OS thread id -> Python thread name, from py-spy's ``thread (TID): NAME`` frames."""
    names: dict[str, str] = {}
    for stack in stacks:
        for frame in stack:
            found = re.match(r"thread \((\d+)\): (.*)", frame)
            if found:
                names[found.group(1)] = found.group(2)
    return names


def thread_report(
    before: dict[str, tuple[str, float]],
    after: dict[str, tuple[str, float]],
    names: dict[str, str],
    calls: int,
) -> str:
    """CPU per decision by thread (threads of one name summed), from ``/proc``."""
    by_name: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        label = re.sub(r"[-_]\d+\b|-\d+ ", "", names.get(tid, name))
        by_name[label] = by_name.get(label, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    lines = ["CPU per decision by thread (from /proc, py-spy excluded):"]
    total = sum(by_name.values())
    lines.append(f"  {total / calls * 1e6:7.0f} us  all threads")
    lines += [
        f"  {seconds / calls * 1e6:7.0f} us  {name}"
        for name, seconds in sorted(by_name.items(), key=lambda kv: -kv[1])
        if seconds > 0
    ]
    return "\n".join(lines)


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    if found.exists():
        return str(found)
    path = shutil.which("py-spy")
    if path is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    return path


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks: ``frame;frame;...;frame count`` per line, outermost frame first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def part_of(stack: tuple[str, ...]) -> str:
    for frame in reversed(stack):
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return OTHER


def own_frame(frame: str) -> str:
    """``function (file:line)`` without the line, so one function's lines add up."""
    return re.sub(r":\d+\)$", ")", frame)


def report(stacks: Counter[tuple[str, ...]], top: int, rate: int, calls: int) -> str:
    """Samples as microseconds per decision (``samples / rate / calls``), by part of the path
    and by thread, and the functions with the most samples of their own.

    py-spy counts a thread as busy when it is on the CPU or in a call it cannot see into
    (uvloop's wait for events, gRPC's poller, a ``fsync``): those land on the innermost Python
    frame, such as ``Runner.run``, and the /proc figures above say how much was CPU."""
    total = sum(stacks.values())
    if total == 0 or calls == 0:
        return "no samples"
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in stacks.items():
        thread = next((f for f in stack if f.startswith("thread")), "thread ?")
        threads[re.sub(r"\(\d+\): ", "", thread)] += n
        frames = tuple(f for f in stack if not f.startswith(("thread", "process")))
        parts[part_of(frames)] += n
        if frames:
            own[own_frame(frames[-1])] += n

    def us(n: int) -> str:
        return f"{n / rate / calls * 1e6:7.0f} us  {n / total:6.1%}"

    lines = [f"{total} samples over {calls} decisions"]
    lines.append("\nby part of the path (innermost matching frame), per decision:")
    lines += [f"  {us(n)}  {name}" for name, n in parts.most_common()]
    lines.append("\nby thread, per decision:")
    lines += [f"  {us(n)}  {name}" for name, n in threads.most_common(8)]
    lines.append(f"\nfunctions with the most samples of their own (top {top}):")
    lines += [f"  {us(n)}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def perf_report(data: Path, top: int) -> str:
    """Samples by shared object, then by symbol, from a ``perf record`` file."""
    lines = []
    for sort, limit in (("dso", 12), ("dso,sym", top)):
        done = subprocess.run(
            [
                "perf",
                "report",
                "-i",
                str(data),
                "--stdio",
                "--sort",
                sort,
                "--percent-limit",
                "0.5",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        rows = [line for line in done.stdout.splitlines() if line.strip() and line[0] != "#"]
        lines.append(f"\nperf, by {sort} (top {limit}):")
        lines += [f"  {row.strip()}" for row in rows[:limit]]
    return "\n".join(lines)


class Recorders:
    """py-spy (and perf) on the server, started as the measured window opens."""

    def __init__(self, args: argparse.Namespace, pid: int, level: int) -> None:
        self.pid = pid
        self.raw = args.output / f"profile-{args.target}-c{level}.txt"
        self.perf_data = args.output / f"perf-{args.target}-c{level}.data"
        spy = [py_spy(), "record", "--pid", str(pid), "--format", "raw"]
        spy += ["--rate", str(args.rate), "--threads", "--duration", str(int(args.duration))]
        spy += ["--output", str(self.raw)]
        # Native unwinding needs the process paused at each sample.
        spy.append("--native" if args.native else "--nonblocking")
        self.commands = [spy]
        if args.perf:
            perf = ["perf", "record", "-F", "999", "-p", str(pid), "-o", str(self.perf_data)]
            self.commands.append([*perf, "--", "sleep", str(args.duration)])
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cpu_before: dict[str, tuple[str, float]] = {}

    def start(self) -> None:
        self.cpu_before = thread_cpu(self.pid)
        for cmd in self.commands:
            self.procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )

    def wait(self, timeout: float) -> None:
        for cmd, proc in zip(self.commands, self.procs, strict=True):
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise SystemExit(f"{cmd[0]} failed: {err.decode(errors='replace')}")


def profile_level(
    args: argparse.Namespace, loadgen: LoadGenerator, server: Server, token: str, level: int
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    rec = Recorders(args, pid, level)
    run = loadgen.run(
        server,
        token,
        concurrency=level,
        warmup=args.warmup,
        duration=args.duration,
        round_no=1,
        at_window_start=rec.start,
    )
    cpu_after = thread_cpu(pid)
    rec.wait(timeout=args.duration + 30)
    print(
        f"\n== concurrency {level}: {run.decisions_per_s:.0f} decisions/s, "
        f"p50 {run.p50_ms:.2f} ms, server CPU {run.server_cpu_pct:.0f}% "
        f"(py-spy's own sampling adds to it); stacks in {rec.raw.relative_to(REPO)}"
    )
    stacks = read_stacks(rec.raw)
    print(thread_report(rec.cpu_before, cpu_after, thread_names(stacks), run.ok))
    print(report(stacks, args.top, args.rate, run.ok), flush=True)
    if args.perf:
        print(perf_report(rec.perf_data, args.top), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    args.output.mkdir(parents=True, exist_ok=True)
    with one_server(target=args.target, procs=args.procs, prefix="hitl-profile-") as rig:
        for level in args.levels:
            profile_level(args, rig.loadgen, rig.server, rig.token, level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
