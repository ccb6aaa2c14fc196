"""Policy replay speed on one core, against evaluating the same rules in a bare loop.

Builds a SQLite database of ``--decisions`` credit-limit decisions as the gateway stores them
(customer name and national id sealed with a data key, some held and decided by people since,
some paused, failed or erased; see `tests.replay_builders`), then prints, all in this process:

- ``replay``: `gateway.cli_replay.run_replay` end to end: paged read-only reads from the file,
  opening sealed fields, classify + route under the candidate (the repository's policies with
  the auto-approve line lowered and a rule on a sealed field), the report. Decisions/s.
- ``replay in memory``: the same `prepare` + `replay` + report over rows already read.
- ``bare``: `app.classify` + `app.route` of the candidate on the clear inputs and outputs held
  in memory, nothing else: the floor replay cannot beat. The ratio replay/bare is printed.

The goal is at least 20,000 decisions/s replayed on one core. Run from the repository root::

    python -m bench.replay_bench                      # 200,000 decisions
    python -m bench.replay_bench --decisions 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from gateway.cli_replay import run_replay
from gateway.core.vault import Vault
from gateway.policy_replay import ReplayReport, is_erased, prepare, replay
from gateway.store.decision_range import read_decisions
from tests.replay_builders import APP, MODEL, T0, load, make_decisions, policy_dirs, store_decisions

KEY = bytes(range(1, 33))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs each")
    args = ap.parse_args()
    vault = Vault([KEY])
    with tempfile.TemporaryDirectory() as tmp:
        base_dir, cand_dir = policy_dirs(Path(tmp))
        made = make_decisions(load(base_dir), vault, args.decisions)
        db = Path(tmp) / "gateway.db"
        asyncio.run(store_decisions(str(db), made))
        candidate = load(cand_dir)
        since, until = T0, T0 + timedelta(days=1)

        def end_to_end() -> int:
            report = run_replay(db, cand_dir, vault, since, until)
            return sum(
                r.replayed + r.erased + sum(r.not_comparable.values()) for r in report.apps.values()
            )

        rows = list(read_decisions(db, since, until))

        def in_memory() -> int:
            report = ReplayReport()
            for row in rows:
                if is_erased(row):
                    report.add_erased(row.application)
                else:
                    report.add(replay(prepare(row, vault), candidate))
            return len(rows)

        app = candidate.application(APP)
        bare_inputs = [
            (m.clear, m.decision.model_output)
            for m in made
            if m.decision.model_output is not None and not m.erased
        ]

        def bare() -> int:
            for clear, output in bare_inputs:
                tier = app.classify(clear, {}, MODEL).tier
                app.route(clear, output, tier, {}, MODEL)
            return len(bare_inputs)

        rates = {}
        for name, fn in (("replay", end_to_end), ("replay in memory", in_memory), ("bare", bare)):
            best = 0.0
            for _ in range(args.rounds):
                started = time.perf_counter()
                n = fn()
                best = max(best, n / (time.perf_counter() - started))
            rates[name] = best
            print(f"{name:18} {best:10,.0f} decisions/s")
        print(f"ratio replay/bare           {rates['replay'] / rates['bare']:.2f}x")
        print(f"ratio in-memory/bare        {rates['replay in memory'] / rates['bare']:.2f}x")
        ok = rates["replay"] >= 20_000
        print(f"goal 20,000/s on one core: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
