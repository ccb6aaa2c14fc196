"""The building blocks of the policy file format: durations, names, paths, errors that carry
the location of the offending value, and the strict base model."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

Loc = tuple[str | int, ...]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def policy_error(message: str, loc: Loc = ()) -> PydanticCustomError:
    """A validation error with a plain message; ``loc`` points below the validated model."""
    return PydanticCustomError("policy", "{detail}", {"detail": message, "loc": loc})


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``4h``, ``2d`` (also ``500ms``, ``1.5h``) to a positive timedelta."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise policy_error(
            f"invalid duration {value!r}: use a number and a unit, e.g. 30s, 5m, 4h, 2d"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise policy_error(f"duration {value!r} must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FieldPath = Annotated[str, StringConstraints(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class StrictModel(BaseModel):
    """Unknown keys are errors; loaded values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def error_loc(error: dict[str, Any]) -> Loc:
    """The path of a pydantic error, including the extra path a custom error carries."""
    ctx = error.get("ctx") or {}
    extra = ctx.get("loc", ())
    return (*error["loc"], *extra)
