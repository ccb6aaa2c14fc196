"""atheris target: parsing and converting a DecideRequest from arbitrary bytes.

Any input must convert or raise InvalidInput/TooLarge naming a field, or fail to parse with
DecodeError (which the server answers as INVALID_ARGUMENT). Run:
python fuzz/fuzz_struct.py -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
    from gateway.api.converters import decide_command
    from gateway.core.limits import InputLimits
    from gateway.errors import InvalidInput, TooLarge

LIMITS = InputLimits()


def test_one(data: bytes) -> None:
    try:
        request = pb.DecideRequest.FromString(data)
    except DecodeError:
        return
    try:
        decide_command(request, LIMITS)
    except (InvalidInput, TooLarge) as exc:
        if not exc.field:
            raise AssertionError("refused without naming a field") from exc


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
