"""The explanation bar chart: per-feature contributions as geometry for an inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WIDTH = 560
LABEL = 170
ROW = 24
MAX_BARS = 30


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    positive: bool


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    zero_x: float


def explanation_chart(output: dict[str, Any] | None) -> Chart | None:
    """Bars for ``output["explanation"]`` (feature -> contribution), largest effect first.

    Returns None when the output carries no usable explanation.
    """
    raw = (output or {}).get("explanation")
    if not isinstance(raw, dict):
        return None
    items = [
        (str(k), float(v))
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if not items:
        return None
    items.sort(key=lambda kv: -abs(kv[1]))
    items = items[:MAX_BARS]
    biggest = max(abs(v) for _, v in items) or 1.0
    half = (WIDTH - LABEL) / 2 - 50  # room for the value text on either side
    zero_x = LABEL + (WIDTH - LABEL) / 2
    bars = []
    for i, (label, value) in enumerate(items):
        w = abs(value) / biggest * half
        x = zero_x if value >= 0 else zero_x - w
        bars.append(Bar(label[:40], value, round(x, 1), i * ROW + 4, round(w, 1), value >= 0))
    return Chart(bars, WIDTH, len(bars) * ROW + 8, zero_x)
