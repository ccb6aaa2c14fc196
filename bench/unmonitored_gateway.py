"""``hitl-gateway`` with monitoring's per-decision counting turned off: the "before" side of
``bench.monitor_bench`` (benchmark code only; the gateway itself has no such switch)."""

from __future__ import annotations

import sys

from gateway.modelrisk import monitor


def _nothing(*_args: object, **_kwargs: object) -> tuple[list[object], list[object]]:
    return [], []


if __name__ == "__main__":
    monitor.created_rows = _nothing  # type: ignore[assignment]
    from gateway.cli import main

    sys.exit(main(sys.argv[1:]))
