"""The statistics early warning rests on: a Wilson score interval for a rate, the population
stability index (PSI) between two histograms, and the fixed bins model outputs are counted in.

Written from their formulas rather than taken from a library: the gateway has no numpy or scipy
dependency, and both are a few lines.

- Wilson score interval (Wilson 1927; see Brown, Cai and DasGupta, "Interval Estimation for a
  Binomial Proportion", Statistical Science 16(2), 2001): for ``k`` successes in ``n`` trials,
  ``p = k/n``, ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``. Unlike the normal
  approximation it stays inside [0, 1] and is honest for small ``n`` and rates near 0, which is
  where a handful of overrides would otherwise look like a crisis.
- PSI: ``Σ (a_i - e_i) · ln(a_i / e_i)`` over bins, ``a`` and ``e`` the shares of the actual and
  the expected (reference) histogram. A share of 0 is floored at `PSI_FLOOR` so an empty bin
  counts as rare rather than infinitely surprising. Conventional reading: below 0.1 stable,
  0.1-0.25 some shift, above 0.25 a significant shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Z_95 = 1.959963984540054
"""The two-sided 95% normal quantile."""
PSI_FLOOR = 1e-4
"""Smallest share a bin is given in the PSI, so an empty bin stays finite."""

UNIT_BINS = 20
"""Values in [0, 1] (scores, probabilities) fall into 20 bins of width 0.05: bins 0-19."""
_DECADE_BASE = 100
"""Values outside [0, 1] fall into quarter-decade bins of their magnitude, from 100 upwards
(positive) or -100 downwards (negative): wide enough for amounts and counts alike."""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n``; ``(0.0, 1.0)`` when ``n`` is 0.

    Raises:
        ValueError: ``successes`` is negative or more than ``n``.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not within 0..{n}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / denominator), min(1.0, (centre + margin) / denominator)


def wilson_lower(successes: int, n: int, z: float = Z_95) -> float:
    """The lower end of the Wilson score interval (0.0 without trials)."""
    return wilson_interval(successes, n, z)[0]


def psi(expected: Mapping[int, int], actual: Mapping[int, int], floor: float = PSI_FLOOR) -> float:
    """The population stability index of ``actual`` against ``expected`` (bin -> count).

    Returns 0.0 when either histogram is empty (no evidence either way).
    """
    e_total = sum(expected.values())
    a_total = sum(actual.values())
    if e_total <= 0 or a_total <= 0:
        return 0.0
    total = 0.0
    for b in set(expected) | set(actual):
        e = max(expected.get(b, 0) / e_total, floor)
        a = max(actual.get(b, 0) / a_total, floor)
        total += (a - e) * math.log(a / e)
    return total


def output_bin(x: float) -> int:
    """The fixed bin of one numeric model output (see `UNIT_BINS`); the same on every replica
    and for every version, so histograms of any two windows compare bin by bin."""
    if 0.0 <= x <= 1.0:
        return min(int(x * UNIT_BINS), UNIT_BINS - 1)
    magnitude = abs(x)
    # x > 1 or x < 0: quarter decades of |x|; |x| < 1 (small negatives) all land in the first.
    step = max(0, math.floor(math.log10(magnitude) * 4)) if magnitude >= 1 else 0
    step = min(step, 99)
    return _DECADE_BASE + step if x > 0 else -_DECADE_BASE - step


def bin_label(b: int) -> str:
    """Human-readable range of bin ``b``."""
    if 0 <= b < UNIT_BINS:
        return f"{b / UNIT_BINS:.2f} to {(b + 1) / UNIT_BINS:.2f}"
    step = abs(b) - _DECADE_BASE
    low, high = 10 ** (step / 4), 10 ** ((step + 1) / 4)
    if b > 0:
        return f"{low:.3g} to {high:.3g}"
    return f"-{high:.3g} to -{low:.3g}" if step else f"-{high:.3g} to 0"
