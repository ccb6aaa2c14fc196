"""The model inventory at decision time: whether a decision on a model version may be automatic.

`model_check` is the rule, a pure function of the version's inventory record, the policy's
backend, the decision's tier and the time. `ModelGate` keeps the inventory in memory for it, in
step with the store, exactly as `gateway.core.switches.KillSwitches` keeps the kill switches (read
its module docstring for the reasoning; the same holds here, in short):

- the small ``models`` table is re-read every `refresh_every` seconds (0.5 s), and at once when
  the store announces a change (PostgreSQL ``NOTIFY``), so a suspension, a retirement or an
  escalation made on any replica or by the CLI reaches every decision path within a second;
- the state is trusted for `trust_for` seconds (1 s) after the last read that succeeded began;
  a decision that finds it older re-reads first, and when that fails it is refused with
  ``StoreUnavailable`` (UNAVAILABLE, retryable with the same idempotency key; nothing is
  written). Holding every decision for review instead would write, fleet-wide and for a database
  hiccup, held decisions whose trail blames the model although nothing happened to it.

A decision that fails the check is never automatic: the pipeline holds it for review (or rejects
it, per the application's ``on_model_error``) with the reason in the decision and its audit
event.

Built-in demo models (`register_builtin_models`) are the gateway's own code, shipped for demos
and tests: they are registered and approved at start, audited with actor ``system:builtin``, so
``make run`` keeps its automatic path. A bank's models are OIP backends and are never registered
by the gateway: they go through model risk (``hitl-gateway models ...``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import Conflict
from gateway.following import Follower
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.policy import BackendSpec, PolicySet, TierSpec
from gateway.store.protocol import ReviewStore
from gateway.types import JSONObject, Validation

__all__ = [
    "BUILTIN_ACTOR",
    "ModelGate",
    "has_explanation",
    "model_check",
    "model_key",
    "register_builtin_models",
    "validation_of",
]

log = structlog.get_logger("gateway.modelrisk.gate")

BUILTIN_ACTOR = "system:builtin"
"""Who registers and approves the built-in demo models."""
BUILTIN_OWNER = "hitl-gateway (built-in demo model)"
"""Owner and validator of the built-in demo models: the gateway itself."""


def model_key(backend: BackendSpec) -> ModelKey:
    """The inventory key of the model version a policy's backend names."""
    return ModelKey(backend.name, backend.model, backend.version)


def validation_of(record: ModelRecord | None) -> Validation:
    """What a decision records as its model's standing (`gateway.types.ModelRef.validation`)."""
    return Validation.UNREGISTERED if record is None else Validation(record.status.value)


def model_check(
    record: ModelRecord | None,
    backend: BackendSpec,
    tier: TierSpec,
    now: datetime,
    ranks: Mapping[str, int],
) -> str | None:
    """Why a decision on ``backend``'s model version in ``tier`` may not be automatic, or None.

    Args:
        record: The version's inventory record; None when it is not in the inventory.
        backend: The policy's backend (names the version).
        tier: The decision's tier.
        now: The decision's time (validity is checked against it).
        ranks: Each tier name's rank (0: the highest risk), for the record's ceiling.
    """
    key = model_key(backend)
    if record is None:
        return f"model {key} is not in the model inventory"
    if record.status is not ModelStatus.APPROVED:
        return f"model {key} is {record.status.value} in the model inventory, not approved"
    expires = record.validation_expires_at
    if expires is not None and expires <= now:
        return f"model {key}: its validation expired at {expires.isoformat()}"
    ceiling = ranks.get(record.max_tier)
    if ceiling is None:
        return f"model {key}: its tier ceiling {record.max_tier!r} is not a tier of the policies"
    if tier.rank < ceiling:
        return (
            f"model {key} may serve tiers up to {record.max_tier!r}; this decision is in the "
            f"higher-risk tier {tier.name!r}"
        )
    if record.escalated:
        why = f": {record.escalation_reason}" if record.escalation_reason else ""
        return f"model {key} escalated by monitoring{why}"
    return None


def has_explanation(output: JSONObject) -> bool:
    """Whether a model output explains itself: an ``explanation`` field that is a non-empty
    object of per-feature contributions (as the built-in models give) or a non-empty list of
    reason codes (strings)."""
    explanation = output.get("explanation")
    if isinstance(explanation, dict):
        return bool(explanation) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in explanation.values()
        )
    if isinstance(explanation, list):
        return bool(explanation) and all(isinstance(v, str) and v for v in explanation)
    return False


class ModelGate:
    """The model inventory, as this process follows it for the decision path.

    Args:
        store: Where the inventory lives.
        refresh_every: Seconds between re-reads of the stored inventory.
        trust_for: Seconds the inventory read last is trusted; older, it is re-read before a
            decision, and a decision that cannot confirm it is refused.
        monotonic: The clock `trust_for` is measured with (a test passes one it controls).
    """

    def __init__(
        self,
        store: ReviewStore,
        *,
        refresh_every: float = 0.5,
        trust_for: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.models: Mapping[ModelKey, ModelRecord] = {}
        """Every inventory record by key. Replaced, never mutated: a reader always sees one
        consistent state."""
        self._follower = Follower(
            "model-gate",
            "model inventory",
            store.list_models,
            self._apply,
            (store.subscribe_models, store.subscribe_resync),
            refresh_every=refresh_every,
            trust_for=trust_for,
            monotonic=monotonic,
        )

    async def load(self) -> None:
        """Read the inventory once (a failure raises: at start, or in a one-shot command)."""
        await self._follower.load()

    async def start(self) -> None:
        """Load the inventory, then follow the store's changes until `stop`."""
        await self._follower.start()

    async def stop(self) -> None:
        """Stop following. Idempotent."""
        await self._follower.stop()

    async def refresh(self) -> None:
        """Re-read the inventory (see `gateway.following.Follower.refresh`)."""
        await self._follower.refresh()

    def confirmed(self) -> bool:
        """True while the inventory in memory was read from the store within `trust_for`."""
        return self._follower.confirmed()

    async def current(self) -> Mapping[ModelKey, ModelRecord]:
        """`models`, for the decision about to be made: no I/O while confirmed, else one
        re-read first.

        Raises:
            StoreUnavailable: The inventory was not confirmed within `trust_for` and could not
                be read now: a suspension made elsewhere could be missed, so no decision is made.
        """
        await self._follower.confirm()
        return self.models

    def _apply(self, stored: Iterable[ModelRecord]) -> None:
        models = {r.key: r for r in stored}
        if self._follower.loaded:
            for key in models.keys() | self.models.keys():
                new, old = models.get(key), self.models.get(key)
                was = None if old is None else (old.status, old.escalated)
                now = None if new is None else (new.status, new.escalated)
                if was != now:
                    log.warning(
                        "model.followed",
                        model=str(key),
                        status=None if new is None else new.status.value,
                        escalated=new is not None and new.escalated,
                    )
        self.models = models


async def register_builtin_models(
    store: ReviewStore,
    policies: PolicySet,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[ModelKey]:
    """Register and approve every built-in demo model version the policies name and the
    inventory lacks (audited, actor ``system:builtin``); return the keys registered.

    Only ``kind: builtin`` backends: the gateway's own demo code. A version already in the
    inventory is left as it is (a suspension or retirement of it stands). Its ceiling is the
    highest-risk tier, so the demo and the tests keep every automatic path they had.
    """
    existing = {r.key for r in await store.list_models()}
    ceiling = policies.tiers[0].name
    added: list[ModelKey] = []
    for backend in sorted(policies.backends.values(), key=lambda b: b.name):
        key = model_key(backend)
        if backend.kind != "builtin" or key in existing or key in added:
            continue
        now = clock()
        record = ModelRecord(
            key=key,
            owner=BUILTIN_OWNER,
            validator=BUILTIN_OWNER,
            intended_use="demonstrations and tests of the gateway",
            max_tier=ceiling,
            status=ModelStatus.APPROVED,
            validated_at=now,
            validation_expires_at=None,
            documentation_url="",
            limitations="illustrative coefficients, not fitted to any portfolio",
            registered_at=now,
            updated_at=now,
            updated_by=BUILTIN_ACTOR,
        )
        payload: JSONObject = {
            "backend": key.backend,
            "name": key.name,
            "version": key.version,
            "status": record.status.value,
            "owner": record.owner,
            "validator": record.validator,
            "max_tier": record.max_tier,
            "justification": "built-in demo model shipped with the gateway: registered and "
            "approved at start",
        }
        event = audit_event(EventType.MODEL_REGISTERED, "", BUILTIN_ACTOR, payload, ts=now)
        # Another replica starting at the same time may have registered it first.
        with contextlib.suppress(Conflict):
            await store.register_model(record, event)
            added.append(key)
            log.info("model.builtin_registered", model=str(key))
    return added
