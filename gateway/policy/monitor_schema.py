"""The ``monitor:`` section of a backend or an application: early warning thresholds of its model
version (`gateway.modelrisk.early_warning`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from gateway.policy.fields import Duration, StrictModel
from gateway.policy.fields import policy_error as _error


class MonitorRuleModel(StrictModel):
    """A threshold on one monitored rate (or drift) of a model version, and what a breach does.

    A rate breaches only when the lower end of its 95% Wilson interval is above ``above``, over
    at least ``min_reviews`` trials in ``window`` (`gateway.modelrisk.early_warning`).
    """

    above: float = Field(gt=0.0)
    min_reviews: int = Field(default=50, ge=1)
    """Fewest trials (reviews, QA opinions, decisions; outputs for ``psi``) before it may breach."""
    window: Duration = timedelta(days=7)
    action: Literal["alert", "escalate", "suspend"] = "alert"


class MonitorModel(StrictModel):
    """Early warning thresholds of an application's or a backend's model version."""

    override_rate: MonitorRuleModel | None = None
    reject_rate: MonitorRuleModel | None = None
    qa_disagreement_rate: MonitorRuleModel | None = None
    error_rate: MonitorRuleModel | None = None
    timeout_rate: MonitorRuleModel | None = None
    psi: MonitorRuleModel | None = None

    @model_validator(mode="after")
    def _rates_below_one(self) -> MonitorModel:
        for name in type(self).model_fields:
            rule = getattr(self, name)
            if name != "psi" and rule is not None and rule.above >= 1.0:
                raise _error(f"{name}: above must be a share below 1", (name, "above"))
        return self
