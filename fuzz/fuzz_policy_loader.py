"""atheris target: the policy loader on arbitrary YAML bytes.

Any input must load or raise PolicyError (which names file, line and field); anything else is a
bug. Run: python fuzz/fuzz_policy_loader.py -max_total_time=60
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from gateway.errors import PolicyError
    from gateway.policy import load_policies

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "policies").glob("*.yaml"))
_DIR = Path(tempfile.mkdtemp(prefix="hitl-fuzz-policy-"))


def test_one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    # Mutate one of the shipped files so the fuzzer starts from valid policies.
    for seed in SEEDS:
        (_DIR / seed.name).write_bytes(seed.read_bytes())
    target = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    (_DIR / target.name).write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    with contextlib.suppress(PolicyError):
        load_policies(_DIR)


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
