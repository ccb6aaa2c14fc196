"""What monitoring counts for each model version, from the events it sees.

Counts are kept per model version (``backend``, ``name``, ``version``), per metric and per hour
(`bucket`), and written by the store in the same transaction as the event they count (a decision
created, a final verdict, a QA opinion), so they survive restarts, are the same on every replica
and can never disagree with the decisions themselves. Numeric model outputs are counted into
fixed bins (`gateway.modelrisk.stats.output_bin`) for drift.

Rates are ratios of these counts over a window (see `RATES`): the early warning
(`gateway.modelrisk.early_warning`) tests them, the metrics and the model page show them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.modelrisk.record import ModelKey
from gateway.modelrisk.stats import UNIT_BINS, output_bin
from gateway.types import Decision, Status


class Metric(enum.StrEnum):
    """One count kept per model version and hour."""

    DECIDED = "decided"
    """Decisions made with the model version (held, automatic or failed)."""
    AUTO_APPROVED = "auto_approved"
    AUTO_REJECTED = "auto_rejected"
    HELD = "held"
    MODEL_ERROR = "model_error"
    """The model answered with an error (or an output holding NaN or infinity)."""
    MODEL_TIMEOUT = "model_timeout"
    REVIEWED = "reviewed"
    """Held decisions given their final verdict by people."""
    REVIEW_APPROVED = "review_approved"
    REVIEW_REJECTED = "review_rejected"
    REVIEW_OVERRIDDEN = "review_overridden"
    QA_AGREE = "qa_agree"
    QA_DISAGREE = "qa_disagree"


@dataclass(frozen=True, slots=True)
class RateDef:
    """A rate: the events counted over the trials they are a share of."""

    name: str
    numerator: tuple[Metric, ...]
    denominator: tuple[Metric, ...]
    label: str


RATES: dict[str, RateDef] = {
    r.name: r
    for r in (
        RateDef("auto_approve_rate", (Metric.AUTO_APPROVED,), (Metric.DECIDED,), "auto-approved"),
        RateDef("auto_reject_rate", (Metric.AUTO_REJECTED,), (Metric.DECIDED,), "auto-rejected"),
        RateDef("held_rate", (Metric.HELD,), (Metric.DECIDED,), "held for review"),
        RateDef(
            "override_rate", (Metric.REVIEW_OVERRIDDEN,), (Metric.REVIEWED,), "reviewer override"
        ),
        RateDef("reject_rate", (Metric.REVIEW_REJECTED,), (Metric.REVIEWED,), "reviewer reject"),
        RateDef(
            "qa_disagreement_rate",
            (Metric.QA_DISAGREE,),
            (Metric.QA_AGREE, Metric.QA_DISAGREE),
            "QA disagreement",
        ),
        RateDef(
            "error_rate",
            (Metric.MODEL_ERROR, Metric.MODEL_TIMEOUT),
            (Metric.DECIDED,),
            "model error or timeout",
        ),
        RateDef("timeout_rate", (Metric.MODEL_TIMEOUT,), (Metric.DECIDED,), "model timeout"),
    )
}
"""Every rate monitoring computes, by the name the policies' ``monitor:`` uses."""

_OUTCOME = {
    Status.APPROVED: Metric.AUTO_APPROVED,
    Status.REJECTED: Metric.AUTO_REJECTED,
    Status.PENDING_REVIEW: Metric.HELD,
}
_VERDICT = {
    Status.APPROVED: Metric.REVIEW_APPROVED,
    Status.REJECTED: Metric.REVIEW_REJECTED,
    Status.OVERRIDDEN: Metric.REVIEW_OVERRIDDEN,
}
_OUTCOME_VALUE = {status: metric.value for status, metric in _OUTCOME.items()}
_TIMEOUT_VALUE = Metric.MODEL_TIMEOUT.value
_TIMED_OUT = "model timed out"
"""The reason the pipeline gives a decision whose model call timed out."""


def bucket(ts: str) -> str:
    """The hour a formatted timestamp (`gateway.timefmt.format_ts`) falls in, in the same format,
    so buckets compare and sort as text."""
    return ts[:13] + ":00:00.000000Z"


def key_of(d: Decision) -> ModelKey | None:
    """The model version a decision was made with (None: no model was involved)."""
    m = d.model
    return None if m is None else ModelKey(m.backend, m.name, m.version)


CountRow = tuple[str, str, str, str, str, int]
"""``(backend, name, version, metric, bucket, n)``: an increment of `model_counts`."""
OutputRow = tuple[str, str, str, str, str, int, int]
"""``(backend, name, version, field, bucket, bin, n)``: an increment of `model_outputs`."""


def created_rows(decisions: Iterable[Decision], now: str) -> tuple[list[CountRow], list[OutputRow]]:
    """The count and histogram increments for decisions created in one transaction at
    ``now``, summed so each (version, metric) and (version, field, bin) is one row.

    On the auto path for every decision, so kept lean (``python -m bench.monitor_bench`` times
    it): plain dicts per model version, no objects made per decision.
    """
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    outputs: dict[tuple[str, str, str], dict[tuple[str, int], int]] = {}
    decided, timed_out, failed = Metric.DECIDED.value, _TIMED_OUT, Metric.MODEL_ERROR.value
    for d in decisions:
        m = d.model
        if m is None:
            continue
        key = (m.backend, m.name, m.version)
        c = counts.get(key)
        if c is None:
            c = counts[key] = {}
            outputs[key] = {}
        c[decided] = c.get(decided, 0) + 1
        outcome = _OUTCOME_VALUE.get(d.status)
        if outcome is not None:
            c[outcome] = c.get(outcome, 0) + 1
        if d.rule == "on_model_error":
            what = _TIMEOUT_VALUE if timed_out in d.reasons else failed
            c[what] = c.get(what, 0) + 1
            continue
        output = d.model_output
        if not output:
            continue
        o = outputs[key]
        for field, x in output.items():
            kind = type(x)
            if kind is not float and kind is not int:  # exact types: bool is an int subclass
                continue
            if 0.0 <= x < 1.0:
                b = int(x * UNIT_BINS)
            elif not math.isfinite(x):
                continue
            else:
                b = output_bin(x)
            o[(field, b)] = o.get((field, b), 0) + 1
    hour = bucket(now)
    count_rows = [(*key, metric, hour, n) for key, c in counts.items() for metric, n in c.items()]
    output_rows = [
        (*key, field, hour, b, n) for key, o in outputs.items() for (field, b), n in o.items()
    ]
    return count_rows, output_rows


def verdict_rows(d: Decision, now: str) -> list[CountRow]:
    """Increments for a verdict that made held decision ``d`` final (none otherwise)."""
    m = d.model
    metric = _VERDICT.get(d.status)
    if m is None or metric is None:
        return []
    hour = bucket(now)
    return [
        (m.backend, m.name, m.version, Metric.REVIEWED.value, hour, 1),
        (m.backend, m.name, m.version, metric.value, hour, 1),
    ]


def qa_rows(key: ModelKey, agree: bool, now: str) -> list[CountRow]:
    """The increment for one QA opinion on an automatic decision of ``key``."""
    metric = Metric.QA_AGREE if agree else Metric.QA_DISAGREE
    return [(key.backend, key.name, key.version, metric.value, bucket(now), 1)]


def rate_of(rate: RateDef, counts: dict[str, int]) -> tuple[int, int]:
    """``(events, trials)`` of ``rate`` from summed counts (metric value -> n)."""
    k = sum(counts.get(m, 0) for m in rate.numerator)
    n = sum(counts.get(m, 0) for m in rate.denominator)
    return k, n
