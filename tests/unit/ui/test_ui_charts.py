"""The explanation chart: geometry of bars and the SVG markup the item page embeds."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from reviewer_ui.charts import MAX_BARS, Chart, explanation_chart
from reviewer_ui.rendering import template_env


def _svg(chart: Chart) -> ET.Element:
    return ET.fromstring(template_env().get_template("_chart.html").render(chart=chart))


@pytest.mark.parametrize(
    "output",
    [
        None,
        {},
        {"explanation": "income"},
        {"explanation": []},
        {"explanation": {}},
        {"explanation": {"a": "high", "b": True, "c": math.nan, "d": math.inf, "e": None}},
    ],
)
def test_no_usable_explanation_gives_no_chart(output: dict[str, Any] | None) -> None:
    """Without finite numeric contributions there is nothing to draw."""
    assert explanation_chart(output) is None


def test_bars_are_ordered_by_size_and_grow_away_from_zero() -> None:
    """Positive bars start at the zero line, negative ones end there; the largest is first."""
    chart = explanation_chart({"explanation": {"small": 0.1, "debt": -0.8, "income": 0.4}})
    assert chart is not None
    assert [b.label for b in chart.bars] == ["debt", "income", "small"]
    debt, income, small = chart.bars
    assert not debt.positive and debt.x + debt.width == pytest.approx(chart.zero_x, abs=0.1)
    assert income.positive and income.x == chart.zero_x
    assert income.width == pytest.approx(debt.width / 2, abs=0.1)
    assert small.width < income.width


def test_zero_contributions_draw_empty_bars_without_dividing_by_zero() -> None:
    """All-zero explanations give zero-width bars at the zero line, not an error."""
    chart = explanation_chart({"explanation": {"a": 0, "b": 0.0, "c": -0.0}})
    assert chart is not None
    assert [(b.x, b.width) for b in chart.bars] == [(chart.zero_x, 0.0)] * 3
    texts = [t.text for t in _svg(chart).iter("text")]
    assert "+0.000" in texts


def test_many_features_are_cut_to_the_largest_and_long_names_shortened() -> None:
    """At most MAX_BARS bars, the biggest effects kept; labels at most 40 characters."""
    raw = {f"f{i:03d}" + "x" * 60: float(i) for i in range(MAX_BARS + 10)}
    chart = explanation_chart({"explanation": raw})
    assert chart is not None
    assert len(chart.bars) == MAX_BARS
    assert chart.bars[0].value == MAX_BARS + 9
    assert all(len(b.label) == 40 for b in chart.bars)
    assert chart.height == MAX_BARS * 24 + 8


def test_feature_names_with_markup_are_rendered_as_text() -> None:
    """A feature named like a script tag is escaped: the SVG holds text, not new elements."""
    name = '<script>alert(1)</script>"&'
    chart = explanation_chart({"explanation": {name: -0.5, "ok": 0.25}})
    assert chart is not None
    html = template_env().get_template("_chart.html").render(chart=chart)
    assert "<script>" not in html
    svg = ET.fromstring(html)
    assert not list(svg.iter("script"))
    assert name in [t.text for t in svg.iter("text")]
    negative = next(r for r in svg.iter("rect") if name in (r.findtext("title") or ""))
    assert negative.get("fill") == "#c62828"
    assert float(negative.get("x", "0")) + float(negative.get("width", "0")) == pytest.approx(
        chart.zero_x, abs=0.2
    )
