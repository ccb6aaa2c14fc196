"""The model page's monitoring charts: geometry for inline SVG, drawn by the server.

Two kinds, from a `gateway.modelrisk.early_warning.Report`: each monitored rate day by day with
its policy threshold drawn in (a dashed line), and each numeric output's histogram over the
drift window beside its reference (shares per bin, two bars a bin). Nothing is loaded from
anywhere: the template (``_model_monitoring.html``) writes the shapes into the page, like the
explanation chart (`reviewer_ui.charts`, whose `Bar` the histograms reuse).

A model page includes it with ``{% include "_model_monitoring.html" %}`` given
``monitoring=await monitoring_panel(early_warning, key)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.modelrisk.early_warning import EarlyWarning, Finding
from gateway.modelrisk.record import ModelKey
from gateway.modelrisk.report import RateSeries, Report, report_for
from gateway.modelrisk.stats import bin_label
from reviewer_ui.charts import Bar

WIDTH = 560
HEIGHT = 150
LEFT = 44
"""Room for the y axis labels."""
BOTTOM = 22
"""Room for the first and last day under the x axis."""
TOP = 8
MAX_BINS = 40


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    day: str
    events: int
    trials: int

    @property
    def rate(self) -> float:
        return self.events / self.trials


@dataclass(frozen=True, slots=True)
class RateChart:
    """One rate over the report's days, as SVG geometry."""

    name: str
    label: str
    width: int
    height: int
    points: list[Point]
    polyline: str
    """The ``points`` attribute of the line through the days with trials."""
    y_max: float
    ticks: list[tuple[float, str]]
    """``(y, label)`` of the horizontal grid lines."""
    threshold: float | None
    threshold_y: float | None
    first_day: str
    last_day: str
    finding: Finding | None
    x0: float
    x1: float
    y0: float


@dataclass(frozen=True, slots=True)
class HistogramChart:
    """One output field's shares per bin now (``current``) and in the reference."""

    field: str
    width: int
    height: int
    current: list[Bar]
    reference: list[Bar]
    labels: list[tuple[float, str]]
    """``(x, bin range)`` under each pair of bars."""
    psi: float
    threshold: float | None
    trials: int
    y0: float


@dataclass(frozen=True, slots=True)
class MonitoringPanel:
    """Everything ``_model_monitoring.html`` draws."""

    key: ModelKey
    rates: list[RateChart]
    histograms: list[HistogramChart]
    reference: str
    """The reference window, in words."""
    window_since: str
    days: int


def rate_chart(series: RateSeries, days: list[str]) -> RateChart:
    """The geometry of one rate over ``days`` (one x step per day)."""
    x0, x1 = float(LEFT), float(WIDTH - 8)
    y0, y_top = float(HEIGHT - BOTTOM), float(TOP)
    top = max([p[1] / p[2] for p in series.points] + [series.threshold or 0.0, 0.0])
    y_max = min(1.0, max(0.05, round(top * 1.25 + 0.0049, 2)))
    step = (x1 - x0) / max(1, len(days) - 1)
    where = {d: i for i, d in enumerate(days)}

    def y_of(v: float) -> float:
        return round(y0 - (y0 - y_top) * min(v, y_max) / y_max, 1)

    points = [
        Point(round(x0 + step * where[d], 1), y_of(k / n), d, k, n)
        for d, k, n in series.points
        if d in where
    ]
    ticks = [(y_of(y_max * f), f"{y_max * f:.0%}") for f in (0.0, 0.5, 1.0)]
    t = series.threshold
    return RateChart(
        name=series.name,
        label=series.label,
        width=WIDTH,
        height=HEIGHT,
        points=points,
        polyline=" ".join(f"{p.x},{p.y}" for p in points),
        y_max=y_max,
        ticks=ticks,
        threshold=t,
        threshold_y=None if t is None else y_of(t),
        first_day=days[0] if days else "",
        last_day=days[-1] if days else "",
        finding=series.finding,
        x0=x0,
        x1=x1,
        y0=y0,
    )


def histogram_chart(
    field: str,
    current: dict[int, int],
    reference: dict[int, int],
    psi: float,
    threshold: float | None,
) -> HistogramChart:
    """Shares per bin of ``current`` beside ``reference``, bins in value order."""
    bins = sorted(set(current) | set(reference))[:MAX_BINS]
    n_cur, n_ref = sum(current.values()) or 1, sum(reference.values()) or 1
    shares = [(b, current.get(b, 0) / n_cur, reference.get(b, 0) / n_ref) for b in bins]
    biggest = max([max(c, r) for _, c, r in shares] + [0.01])
    x0, y0, y_top = float(LEFT), float(HEIGHT - BOTTOM), float(TOP)
    slot = (WIDTH - 8 - x0) / max(1, len(bins))
    bar_w = max(1.0, round(slot * 0.4, 1))
    cur_bars: list[Bar] = []
    ref_bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for i, (b, c, r) in enumerate(shares):
        left = x0 + slot * i + slot * 0.1
        for share, bars, x in ((r, ref_bars, left), (c, cur_bars, left + bar_w)):
            h = round((y0 - y_top) * share / biggest, 1)
            bars.append(Bar(bin_label(b), share, round(x, 1), round(y0 - h, 1), bar_w, True))
        labels.append((round(left + bar_w, 1), bin_label(b)))
    return HistogramChart(
        field=field,
        width=WIDTH,
        height=HEIGHT,
        current=cur_bars,
        reference=ref_bars,
        labels=labels,
        psi=psi,
        threshold=threshold,
        trials=sum(current.values()),
        y0=y0,
    )


def panel(report: Report) -> MonitoringPanel:
    """The charts of a monitoring report."""
    ref = report.reference
    reference = (
        "none yet (the first days of recorded outputs become it once they have passed)"
        if ref is None
        else f"{ref.since[:16]} to {ref.until[:16]} UTC, chosen by {ref.set_by}"
    )
    return MonitoringPanel(
        key=report.key,
        rates=[rate_chart(s, report.days) for s in report.rates],
        histograms=[
            histogram_chart(d.field, d.current, d.reference, d.psi, report.drift_threshold)
            for d in report.drift
        ],
        reference=reference,
        window_since=report.window_since,
        days=len(report.days),
    )


async def monitoring_panel(early_warning: EarlyWarning, key: ModelKey) -> MonitoringPanel:
    """Read ``key``'s monitoring and lay out its charts (what a model page includes)."""
    return panel(await report_for(early_warning, key))
