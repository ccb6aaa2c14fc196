"""Loaded policies as the pipeline uses them: immutable, validated, conditions compiled."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from gateway.errors import NotFound, UnknownApplication
from gateway.policy.cel import AllMatches, Condition, FirstMatch, activation
from gateway.policy.input_schema import InputSchema
from gateway.types import Action, JSONObject, ModelRef

__all__ = [
    "ApplicationPolicy",
    "BackendSpec",
    "ChatMapping",
    "Classification",
    "EscalationRule",
    "MonitorRule",
    "OipMapping",
    "PolicySet",
    "RouteResult",
    "RouteRule",
    "TensorSpec",
    "TierSpec",
    "WebhookSpec",
]


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """An application's webhook endpoint (see `gateway.policy.webhook_schema`)."""

    url: str
    secret: str = field(repr=False)
    """The Standard Webhooks signing secret (``whsec_...``), from the environment."""
    secret_env: str = ""
    callback_hosts: tuple[str, ...] = ()
    """Hosts a Decide may name in its own ``callback_url`` (empty: none may)."""


@dataclass(frozen=True, slots=True)
class TierSpec:
    """A risk tier. ``rank`` 0 is the highest risk; ``reject`` tiers never call the model."""

    name: str
    rank: int
    reject: bool
    approvals: int
    """Distinct people who must agree on an approval or an override."""
    groups: tuple[str, ...]
    sla: timedelta | None
    on_timeout: str | None
    """``approve``, ``reject`` or ``escalate`` when ``sla`` passes; None without an SLA."""
    require_approved_model: bool
    """Kept from the policy file for its readers: every automatic decision needs an approved
    model version now (`gateway.modelrisk.gate`), whatever this says."""
    require_explanation: bool = False
    """A model output without an explanation is held for review, never decided automatically."""
    reject_approvals: int = 1
    """Distinct people who must agree on a rejection (at most ``approvals``)."""
    blind: bool = False
    """A reviewer sees earlier verdicts on a decision only after giving theirs."""
    require_requester: bool = False
    """Decide requests must name ``requested_by``."""


@dataclass(frozen=True, slots=True)
class MonitorRule:
    """A threshold on one monitored rate (or ``psi``) of a model version (see
    `gateway.modelrisk.early_warning`)."""

    metric: str
    """A rate of `gateway.modelrisk.monitor.RATES`, or ``psi``."""
    above: float
    min_samples: int
    window: float
    """Seconds."""
    action: str
    """``alert``, ``escalate`` or ``suspend``."""


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Where an application's model runs, and which model version it must be.

    Its model risk status is not here: it lives in the model inventory, looked up for every
    decision (`gateway.modelrisk.gate`)."""

    name: str
    kind: str
    """``builtin`` (in-process) or ``oip`` (Open Inference Protocol v2 over gRPC)."""
    model: str
    version: str
    """The pinned model version: the inventory entry it is checked against, and the version an
    OIP server must report."""
    timeout: float = 2.0
    """Seconds."""
    target: str | None = None
    third_party: bool = False
    send_fields: tuple[str, ...] = ()
    """Input fields (dotted paths) sent to the model; empty means the whole input."""
    tls: bool = False
    tls_ca: str | None = None
    """PEM file of the CA for the backend's certificate; None means gRPC's bundled public roots."""
    circuit_failures: int = 5
    """Consecutive failed calls that open the circuit."""
    circuit_cooldown: float = 10.0
    """Seconds the circuit stays open before one probe call may try the backend again."""
    monitor: tuple[MonitorRule, ...] = ()
    """Early warning thresholds on this backend's model version."""
    api_key_env: str | None = None
    """``openai`` backends: the environment variable holding the server's API key."""
    _ref: ModelRef = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ref = ModelRef(self.name, self.model, self.version)
        object.__setattr__(self, "_ref", ref)

    def ref(self) -> ModelRef:
        return self._ref


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named tensor and where its elements live in a JSON object.

    ``field`` holds the whole tensor (a scalar when it has one element, else a flat list in
    row-major order); ``fields`` spreads the elements over several scalar fields, in order.
    Exactly one of the two is set.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    """-1 marks the one dimension whose size follows from the number of elements."""
    field: str | None = None
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class OipMapping:
    """An application's Open Inference Protocol face: its model name and tensor mapping."""

    model_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class ChatMapping:
    """An application's OpenAI chat face: the model name callers use, the tools people must
    approve, and how long a held call may wait for them."""

    model_name: str
    approve_tools: tuple[str, ...] = ()
    max_wait: float | None = None
    """Seconds; None: the gateway's limit."""


@dataclass(frozen=True, slots=True)
class Classification:
    """The tier a request lands in, and the escalation rules (``escalate[0]``) that put it there."""

    tier: TierSpec
    reasons: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteResult:
    """What to do with the model's answer, and which rule (``route[1]``) said so."""

    action: Action
    reason: str
    rule: str


DEFAULT_ROUTE = RouteResult(Action.REVIEW, "no route rule matched", "route:default")


@dataclass(frozen=True, slots=True)
class EscalationRule:
    condition: Condition
    tier: TierSpec
    reason: str

    @property
    def id(self) -> str:
        return self.condition.rule


@dataclass(frozen=True, slots=True)
class RouteRule:
    condition: Condition
    result: RouteResult

    @property
    def id(self) -> str:
        return self.condition.rule


def model_vars(ref: ModelRef) -> dict[str, str]:
    """The ``model`` variable conditions see."""
    return {
        "backend": ref.backend,
        "name": ref.name,
        "version": ref.version,
        "validation": ref.validation.value,
    }


@dataclass(frozen=True, slots=True)
class ApplicationPolicy:
    """One application's policy: its tier, its model, and the rules that escalate and route."""

    id: str
    base_tier: TierSpec
    backend: BackendSpec
    sensitive_fields: tuple[str, ...]
    sample_for_review: float
    on_model_error: Action
    escalations: tuple[EscalationRule, ...]
    routes: tuple[RouteRule, ...]
    description: str = ""
    oip: OipMapping | None = None
    """Tensor mapping for an ``oip`` backend and for callers of the gateway's inference service."""
    on_pause: Action = Action.REVIEW
    """While paused: REVIEW holds every new decision, REJECT refuses it (FAILED_PRECONDITION)."""
    input_schema: InputSchema | None = None
    """Checked before the model is called; a mismatch is INVALID_ARGUMENT naming the field."""
    monitor: tuple[MonitorRule, ...] = ()
    """Early warning thresholds on the application's model version."""
    webhook: WebhookSpec | None = None
    """The application's webhook endpoint, its secret read from the environment at load."""
    chat: ChatMapping | None = None
    """How OpenAI-compatible clients reach the application; None: they cannot."""
    _model: dict[str, str] = field(init=False, repr=False, compare=False)
    _unescalated: Classification = field(init=False, repr=False, compare=False)
    _escalating: AllMatches = field(init=False, repr=False, compare=False)
    _routing: FirstMatch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_model", model_vars(self.backend.ref()))
        object.__setattr__(self, "_unescalated", Classification(self.base_tier, (), ()))
        escalating = AllMatches([r.condition for r in self.escalations], with_output=False)
        object.__setattr__(self, "_escalating", escalating)
        routing = FirstMatch([r.condition for r in self.routes], with_output=True)
        object.__setattr__(self, "_routing", routing)

    def classify(
        self, input: JSONObject, labels: Mapping[str, str], model: ModelRef | None = None
    ) -> Classification:
        """The request's tier: the base tier, raised by every escalation rule that matches.

        ``model`` is the model as conditions see it (with its inventory status); None: the
        backend's reference.

        Raises PolicyEvalError when a condition cannot be evaluated.
        """
        if not self.escalations:
            return self._unescalated
        act = activation(
            {
                "input": input,
                "tier": self.base_tier.name,
                "app": self.id,
                "model": self._model if model is None else model_vars(model),
                "labels": labels,
            },
            with_output=False,
        )
        tier = self.base_tier
        reasons: list[str] = []
        rules: list[str] = []
        for i in self._escalating.matching(act):
            rule = self.escalations[i]
            reasons.append(rule.reason)
            rules.append(rule.condition.rule)
            if rule.tier.rank < tier.rank:
                tier = rule.tier
        if not rules:
            return self._unescalated
        return Classification(tier, tuple(reasons), tuple(rules))

    def route(
        self,
        input: JSONObject,
        output: JSONObject,
        tier: TierSpec,
        labels: Mapping[str, str],
        model: ModelRef,
    ) -> RouteResult:
        """The first route rule that matches the model's output; review when none does.

        Raises PolicyEvalError when a condition cannot be evaluated (rules after a matching one
        are never evaluated).
        """
        if not self.routes:
            return DEFAULT_ROUTE
        act = activation(
            {
                "input": input,
                "output": output,
                "tier": tier.name,
                "app": self.id,
                "model": self._model if model == self.backend.ref() else model_vars(model),
                "labels": labels,
            }
        )
        matched = self._routing.first(act)
        return self.routes[matched].result if matched >= 0 else DEFAULT_ROUTE


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every tier, backend and application, from one consistent set of policy files."""

    version: str
    """``sha256:<hex>`` over the policy files, recorded with every decision."""
    tiers: tuple[TierSpec, ...]
    backends: dict[str, BackendSpec]
    applications: dict[str, ApplicationPolicy]
    files: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    """(name, exact text) of every file ``version`` was computed from, in that order."""
    _tiers: dict[str, TierSpec] = field(init=False, repr=False, compare=False)
    _by_model: dict[str, ApplicationPolicy] = field(init=False, repr=False, compare=False)
    _by_chat_model: dict[str, ApplicationPolicy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tiers", {t.name: t for t in self.tiers})
        by_model = {a.oip.model_name: a for a in self.applications.values() if a.oip is not None}
        object.__setattr__(self, "_by_model", by_model)
        by_chat = {a.chat.model_name: a for a in self.applications.values() if a.chat is not None}
        object.__setattr__(self, "_by_chat_model", by_chat)

    def application_for_chat_model(self, model_name: str) -> ApplicationPolicy:
        """The application an OpenAI-compatible caller addresses by its chat ``model_name``."""
        try:
            return self._by_chat_model[model_name]
        except KeyError:
            raise NotFound("model", model_name) from None

    def application_for_model(self, model_name: str) -> ApplicationPolicy:
        """The application an inference caller addresses by its OIP ``model_name``."""
        try:
            return self._by_model[model_name]
        except KeyError:
            raise NotFound("model", model_name) from None

    def tier(self, name: str) -> TierSpec:
        try:
            return self._tiers[name]
        except KeyError:
            raise NotFound("tier", name) from None

    def application(self, app_id: str) -> ApplicationPolicy:
        try:
            return self.applications[app_id]
        except KeyError:
            raise UnknownApplication(app_id) from None

    def escalation_target(self, tier: TierSpec) -> TierSpec | None:
        """The next higher-risk tier that holds decisions (for ``on_timeout: escalate``)."""
        for candidate in reversed(self.tiers[: tier.rank]):
            if not candidate.reject:
                return candidate
        return None
