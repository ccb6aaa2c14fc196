"""The statistics of the early warning: Wilson bounds, PSI and output bins."""

from __future__ import annotations

import math

import pytest

from gateway.modelrisk.stats import output_bin, psi, wilson_interval, wilson_lower


def test_psi_equals_a_direct_computation_on_a_fixed_example() -> None:
    """PSI of two fixed histograms equals the sum (a - e) ln(a / e) written out by hand."""
    expected = {0: 10, 1: 20, 2: 30, 3: 40}  # shares 0.1 0.2 0.3 0.4
    actual = {0: 20, 1: 20, 2: 20, 3: 40}  # shares 0.2 0.2 0.2 0.4
    direct = (0.2 - 0.1) * math.log(0.2 / 0.1) + (0.2 - 0.3) * math.log(0.2 / 0.3)
    assert direct == pytest.approx(0.109861228866811, abs=1e-12)
    assert psi(expected, actual) == pytest.approx(direct, rel=1e-12)


def test_psi_is_zero_for_equal_shares_and_floors_empty_bins() -> None:
    """Equal shares give 0; a bin empty on one side counts at the 1e-4 floor, not infinity."""
    assert psi({0: 5, 1: 5}, {0: 50, 1: 50}) == pytest.approx(0.0, abs=1e-15)
    shifted = psi({0: 100}, {1: 100})
    direct = 2 * (1 - 1e-4) * math.log(1 / 1e-4)
    assert shifted == pytest.approx(direct, rel=1e-12)
    assert psi({}, {0: 3}) == 0.0


Z = 1.959963984540054


def _score_root(k: int, n: int, lo: float, hi: float) -> float:
    """The root in [lo, hi] of Wilson's score equation (k - n p)^2 = z^2 n p (1 - p), found by
    bisection: independent of the closed form under test."""

    def f(p: float) -> float:
        return (k - n * p) ** 2 - Z * Z * n * p * (1 - p)

    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(lo) > 0) == (f(mid) > 0):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize(("k", "n"), [(1, 10), (15, 50), (81, 263), (6, 20), (999, 1000)])
def test_wilson_bounds_solve_the_score_equation(k: int, n: int) -> None:
    """Each end of the interval is the root of the score equation on its side of k/n."""
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(_score_root(k, n, 0.0, k / n), abs=1e-9)
    assert high == pytest.approx(_score_root(k, n, k / n, 1.0), abs=1e-9)


def test_wilson_interval_matches_known_values() -> None:
    """Closed cases: 0 of n reaches z^2/(n+z^2), n of n starts at n/(n+z^2); 5 of 10 is
    0.2366 to 0.7634 (as published, e.g. R's binom.confint(method="wilson"))."""
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z * Z / (10 + Z * Z)), abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775328, abs=1e-7)
    assert wilson_interval(10, 10)[0] == pytest.approx(10 / (10 + Z * Z), abs=1e-12)
    assert wilson_interval(5, 10) == pytest.approx((0.2365931, 0.7634069), abs=1e-7)


def test_a_high_rate_over_few_trials_has_a_low_bound() -> None:
    """30% of 20 reviews has a lower bound under 0.15; 30% of 100 is clearly above it."""
    assert wilson_lower(6, 20) < 0.15
    assert wilson_lower(30, 100) > 0.2
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="not within"):
        wilson_interval(6, 5)


def test_output_bins_are_fixed_and_ordered() -> None:
    """Scores fall into 20 bins of 0.05; larger magnitudes into quarter decades by sign."""
    assert [output_bin(x) for x in (0.0, 0.049, 0.05, 0.999, 1.0)] == [0, 0, 1, 19, 19]
    assert output_bin(5.0) == output_bin(5.5) != output_bin(50.0)
    assert output_bin(-3.0) < -99 and output_bin(15_000.0) > output_bin(1_500.0) >= 100
