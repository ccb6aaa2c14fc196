"""How `bench.profile_decide` reads py-spy's collapsed stacks and turns them into per-decision
figures (the breakdown in bench/README.md is read off this report)."""

from __future__ import annotations

from pathlib import Path

from bench.profile_decide import part_of, read_stacks, report, thread_names, thread_report

LOOP = "run (uvloop/__init__.py:92);Runner.run (asyncio/runners.py:118)"
HANDLER = f"{LOOP};handler (gateway/api/handlers.py:136)"
WRITER = "Thread.run (threading.py:975);run_batch (gateway/store/writer.py:120)"
RAW = "\n".join(
    [
        f"thread (101): MainThread;{LOOP} 500",
        f"thread (101): MainThread;{HANDLER};FirstMatch.first (gateway/policy/cel.py:140) 50",
        f"thread (101): MainThread;{HANDLER};FirstMatch.first (gateway/policy/cel.py:141) 25",
        f"thread (102): sqlite-writer_0;{WRITER};_Session.commit (gateway/store/sqlite/s.py:3) 200",
        f"thread (102): sqlite-writer_0;{WRITER};SQLiteTx.append (gateway/store/tx.py:60) 25",
        "not a stack line",
    ]
)


def test_collapsed_stacks_are_read_and_grouped_by_innermost_part(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_text(RAW)
    stacks = read_stacks(path)
    assert sum(stacks.values()) == 800
    assert thread_names(stacks) == {"101": "MainThread", "102": "sqlite-writer_0"}
    frames = [s[1:] for s in stacks]
    assert {part_of(f) for f in frames} == {
        "C under the loop or a thread's run: uvloop, gRPC core, protobuf, or waiting",
        "policy: CEL classify and route",
        "SQLite COMMIT (WAL write, fsync)",
        "store: rows, audit hashing, Merkle",
    }

    # 250 samples/s over 100 decisions: one sample is 40 us per decision.
    text = report(stacks, top=3, rate=250, calls=100)
    lines = text.splitlines()
    assert lines[0] == "800 samples over 100 decisions"
    assert lines[3].startswith("    20000 us   62.5%  C under the loop")
    assert "     3000 us    9.4%  policy: CEL classify and route" in lines
    # One function's lines add up; the top list is by samples of their own.
    assert "     3000 us    9.4%  FirstMatch.first (gateway/policy/cel.py)" in lines
    assert "    23000 us   71.9%  thread MainThread" in lines


def test_thread_cpu_is_summed_per_name_and_reported_per_decision() -> None:
    before = {"101": ("hitl-gateway", 1.0), "102": ("hitl-gateway", 0.5)}
    after = {
        "101": ("hitl-gateway", 3.0),
        "102": ("hitl-gateway", 1.5),
        "103": ("event_engine", 0.25),  # started during the window
    }
    names = {"101": "MainThread", "102": "sqlite-writer_0"}
    text = thread_report(before, after, names, calls=1000)
    assert text.splitlines() == [
        "CPU per decision by thread (from /proc, py-spy excluded):",
        "     3250 us  all threads",
        "     2000 us  MainThread",
        "     1000 us  sqlite-writer",
        "      250 us  event_engine",
    ]
