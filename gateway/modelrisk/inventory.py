"""The model inventory as a service: register a model version, move it through its lifecycle,
read it and its history. The reviewer UI, the AdminService and the CLI all call this.

Every change checks the move against `TRANSITIONS`, needs a justification, and is stored with
one ``model.*`` audit event carrying the actor, the justification, the key and what changed;
the store's compare-and-set on the status (`ReviewStore.update_model`) keeps two transitions
computed from one read from both passing. The history of a model version is its ``model.*``
events in the audit trail, not a table of its own, so it is exactly what `audit verify` covers.

Separation of duties (model risk's own four-eyes; names are compared as people are:
stripped and case-insensitive):

- the validator is not the owner (validation is independent of the model's development);
- the approver is neither the owner nor the validator: an approval is a look at the model and
  its validation by someone who made neither. The same holds for resuming a suspended version,
  which approves it again. Suspending and retiring are open to anyone allowed to change the
  inventory: they only take a model out of automatic use.

The key's backend need not be one the policies define now: a version is registered and
approved before the policy that uses it is deployed. Its tier ceiling must be a tier they
define. Who may change the inventory in the UI (`require_inventory_keeper`) and read it
(`require_inventory_reader`) is decided here too; API keys are checked by the AdminService.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, PermissionDenied
from gateway.modelrisk.early_warning import REFERENCE_DAYS
from gateway.modelrisk.fields import (
    aware_field,
    check_key,
    key_payload,
    person_field,
    record_fields,
    text_field,
    url_field,
)
from gateway.modelrisk.monitor import bucket
from gateway.modelrisk.record import TRANSITIONS, ModelKey, ModelRecord, ModelStatus
from gateway.people import same_person
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.timefmt import format_ts
from gateway.types import Account, AuditEvent, JSONObject, Role

log = structlog.get_logger("gateway.modelrisk")

KEEPER_ROLES = frozenset({Role.MODEL_RISK})
"""Accounts that change the inventory in the UI."""
READER_ROLES = frozenset({Role.MODEL_RISK, Role.ADMIN, Role.AUDITOR})
"""Accounts that read it."""

VERBS = ("validate", "approve", "suspend", "resume", "retire")
"""The lifecycle's moves, as `ModelInventory.transition` names them."""

_EVENTS = {
    ModelStatus.VALIDATED: EventType.MODEL_VALIDATED,
    ModelStatus.APPROVED: EventType.MODEL_APPROVED,
    ModelStatus.SUSPENDED: EventType.MODEL_SUSPENDED,
    ModelStatus.RETIRED: EventType.MODEL_RETIRED,
}


def require_inventory_keeper(account: Account) -> None:
    """Raise PermissionDenied unless ``account`` may change the inventory (model-risk)."""
    if account.role not in KEEPER_ROLES:
        raise PermissionDenied("only model-risk accounts change the model inventory")


def require_inventory_reader(account: Account) -> None:
    """Raise PermissionDenied unless ``account`` may read the inventory."""
    if account.role not in READER_ROLES:
        raise PermissionDenied("only model-risk, admin and auditor accounts read the inventory")


class ModelInventory:
    """The model inventory.

    Args:
        store: Where the records and their audit events live.
        policies: The tiers a ceiling may name.
        clock: Wall time of a change.
    """

    def __init__(
        self,
        store: ReviewStore,
        policies: Callable[[], PolicySet],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policies = policies
        self._clock = clock

    # -- reading -------------------------------------------------------------------------------

    async def models(self) -> list[ModelRecord]:
        """Every model version, by backend, name and version."""
        return await self._store.list_models()

    async def get(self, key: ModelKey) -> ModelRecord:
        """The record of ``key``. Raises `NotFound`."""
        record = await self._store.get_model(key)
        if record is None:
            raise NotFound("model", str(key))
        return record

    async def history(self, key: ModelKey) -> list[AuditEvent]:
        """The ``model.*`` audit events of ``key``, oldest first. Raises `NotFound`."""
        await self.get(key)
        return await self._store.model_events(key)

    # -- changing ------------------------------------------------------------------------------

    async def register(
        self,
        key: ModelKey,
        *,
        owner: str,
        intended_use: str,
        max_tier: str,
        actor: str,
        documentation_url: str = "",
        limitations: str = "",
        justification: str = "",
    ) -> ModelRecord:
        """Enter a model version in the inventory, as ``registered``.

        Raises:
            InvalidInput: A field missing or malformed, or a tier the policies do not define.
            Conflict: The version is registered already.
        """
        check_key(key)
        owner = person_field("owner", owner)
        intended_use = text_field("intended_use", intended_use, required=True)
        max_tier = max_tier.strip()
        tiers = [t.name for t in self._policies().tiers]
        if max_tier not in tiers:
            raise InvalidInput("max_tier", f"expected a tier of the policies ({', '.join(tiers)})")
        now = self._clock()
        record = ModelRecord(
            key=key,
            owner=owner,
            validator="",
            intended_use=intended_use,
            max_tier=max_tier,
            status=ModelStatus.REGISTERED,
            validated_at=None,
            validation_expires_at=None,
            documentation_url=url_field(documentation_url),
            limitations=text_field("limitations", limitations),
            registered_at=now,
            updated_at=now,
            updated_by=actor,
        )
        payload = key_payload(key) | {
            "justification": text_field("justification", justification),
            "to_status": record.status.value,
            "record": record_fields(record),
        }
        event = audit_event(EventType.MODEL_REGISTERED, "", actor, payload, ts=now)
        await self._store.register_model(record, event)
        log.info("model.registered", model=str(key), actor=actor)
        return record

    async def validate(
        self,
        key: ModelKey,
        *,
        validator: str,
        expires_at: datetime,
        actor: str,
        justification: str,
        validated_at: datetime | None = None,
    ) -> ModelRecord:
        """Record the validation of a registered version (``registered -> validated``).

        Args:
            validator: Who validated it; never its owner.
            expires_at: When the validation lapses (required, in the future).
            validated_at: When it was validated (now when None; never in the future).

        Raises:
            InvalidInput: A field missing or malformed, or the dates out of order.
            PermissionDenied: The validator is the owner.
            Conflict: Not ``registered`` (or changed meanwhile).
            NotFound: No such version.
        """
        validator = person_field("validator", validator)
        justification = text_field("justification", justification, required=True)
        now = self._clock()
        at = now if validated_at is None else aware_field("validated_at", validated_at)
        expires = aware_field("validation_expires_at", expires_at)
        if at > now:
            raise InvalidInput("validated_at", "in the future")
        if expires <= now:
            raise InvalidInput("validation_expires_at", "must be in the future")
        record = await self.get(key)
        _check_move(record, ModelStatus.VALIDATED)
        if same_person(validator, record.owner):
            raise PermissionDenied(
                f"{validator} owns {key} and may not validate it: validation is independent"
            )
        changed = replace(
            record, validator=validator, validated_at=at, validation_expires_at=expires
        )
        return await self._move(record, changed, ModelStatus.VALIDATED, actor, justification)

    async def approve(
        self, key: ModelKey, *, approver: str, actor: str, justification: str
    ) -> ModelRecord:
        """Approve a validated version for automatic use (``validated -> approved``).

        Raises:
            InvalidInput: No approver or justification.
            PermissionDenied: The approver is the owner or the validator.
            FailedPrecondition: The validation has expired.
            Conflict: Not ``validated`` (or changed meanwhile).
            NotFound: No such version.
        """
        return await self._approve(key, approver, actor, justification, ModelStatus.VALIDATED)

    async def resume(
        self, key: ModelKey, *, approver: str, actor: str, justification: str
    ) -> ModelRecord:
        """Approve a suspended version again (``suspended -> approved``); checked as `approve`."""
        return await self._approve(key, approver, actor, justification, ModelStatus.SUSPENDED)

    async def suspend(self, key: ModelKey, *, actor: str, justification: str) -> ModelRecord:
        """Bar an approved version from automatic use (``approved -> suspended``).

        Raises:
            InvalidInput: No justification.
            Conflict: Not ``approved`` (or changed meanwhile).
            NotFound: No such version.
        """
        return await self._simple(key, ModelStatus.SUSPENDED, actor, justification)

    async def retire(self, key: ModelKey, *, actor: str, justification: str) -> ModelRecord:
        """Withdraw a version for good (from any status but ``retired``); raises as `suspend`."""
        return await self._simple(key, ModelStatus.RETIRED, actor, justification)

    async def transition(
        self,
        key: ModelKey,
        verb: str,
        *,
        actor: str,
        justification: str,
        validator: str = "",
        validated_at: datetime | None = None,
        expires_at: datetime | None = None,
        approver: str = "",
    ) -> ModelRecord:
        """One of `VERBS` by name, with the fields it needs (for the API, the CLI and the UI).

        Raises:
            InvalidInput: An unknown verb, or a field it needs missing (named); else as the
                verb's own method.
        """
        if verb == "validate":
            if expires_at is None:
                raise InvalidInput("validation_expires_at", "required")
            return await self.validate(
                key,
                validator=validator,
                expires_at=expires_at,
                validated_at=validated_at,
                actor=actor,
                justification=justification,
            )
        if verb in ("approve", "resume"):
            move = self.approve if verb == "approve" else self.resume
            return await move(key, approver=approver, actor=actor, justification=justification)
        if verb in ("suspend", "retire"):
            to = ModelStatus.SUSPENDED if verb == "suspend" else ModelStatus.RETIRED
            return await self._simple(key, to, actor, justification)
        raise InvalidInput("transition", f"expected one of {', '.join(VERBS)}, not {verb!r}")

    # -- the moves -----------------------------------------------------------------------------

    async def _simple(
        self, key: ModelKey, to: ModelStatus, actor: str, justification: str
    ) -> ModelRecord:
        justification = text_field("justification", justification, required=True)
        record = await self.get(key)
        _check_move(record, to)
        return await self._move(record, record, to, actor, justification)

    async def _approve(
        self, key: ModelKey, approver: str, actor: str, justification: str, source: ModelStatus
    ) -> ModelRecord:
        approver = person_field("approver", approver)
        justification = text_field("justification", justification, required=True)
        record = await self.get(key)
        if record.status is not source:
            verb = "resume" if source is ModelStatus.SUSPENDED else "approve"
            _refuse(record, ModelStatus.APPROVED, f"{verb} needs a {source.value} version")
        if same_person(approver, record.owner):
            raise PermissionDenied(
                f"{approver} owns {key} and may not approve it: someone else must (four-eyes)"
            )
        if same_person(approver, record.validator):
            raise PermissionDenied(
                f"{approver} validated {key} and may not also approve it: someone else must"
            )
        # No expiry arises only for versions not validated here (the built-in demo models,
        # `gateway.modelrisk.gate`), whose validation does not lapse.
        expires = record.validation_expires_at
        if record.validated_at is None:
            raise FailedPrecondition(f"{key} was never validated: it may not be approved")
        if expires is not None and expires <= self._clock():
            raise FailedPrecondition(
                f"validation of {key} expired {format_ts(expires)}: it may not be approved"
            )
        if source is ModelStatus.SUSPENDED:  # the reference chosen at approval stands
            return await self._move(
                record, record, ModelStatus.APPROVED, actor, justification, approver=approver
            )
        # Drift is measured against a reference chosen now: the outputs the version gave in the
        # days before approval (it is called, and held, while it is not approved yet), when
        # there are any; else the early warning takes its first days in use.
        until = self._clock()
        since = until - timedelta(days=REFERENCE_DAYS)
        seen = await self._store.model_histogram(key, bucket(format_ts(since)), format_ts(until))
        reference: JSONObject = (
            {"since": format_ts(since), "until": format_ts(until)}
            if seen
            else {"first_days_in_use": REFERENCE_DAYS}
        )
        approved = await self._move(
            record,
            record,
            ModelStatus.APPROVED,
            actor,
            justification,
            approver=approver,
            extra={"drift_reference": reference},
        )
        if seen:
            await self._store.set_model_reference(key, since, until, actor)
        return approved

    async def _move(
        self,
        before: ModelRecord,
        changed: ModelRecord,
        to: ModelStatus,
        actor: str,
        justification: str,
        *,
        approver: str = "",
        extra: JSONObject | None = None,
    ) -> ModelRecord:
        now = self._clock()
        after = replace(changed, status=to, updated_at=now, updated_by=actor)
        resumed = to is ModelStatus.APPROVED and before.status is ModelStatus.SUSPENDED
        kind = EventType.MODEL_RESUMED if resumed else _EVENTS[to]
        old, new = record_fields(before), record_fields(after)
        changes: dict[str, Any] = {
            f: {"from": old[f], "to": new[f]}
            for f in new
            if old[f] != new[f] and f not in ("status", "updated_at", "updated_by")
        }
        payload = key_payload(before.key) | {
            "justification": justification,
            "from_status": before.status.value,
            "to_status": to.value,
            "changes": changes,
        }
        if approver:
            payload["approver"] = approver
        payload |= extra or {}
        event = audit_event(kind, "", actor, payload, ts=now)
        await self._store.update_model(after, before.status, event)
        log.info(kind.value, model=str(before.key), actor=actor)
        return after


def _check_move(record: ModelRecord, to: ModelStatus) -> None:
    if to not in TRANSITIONS[record.status]:
        _refuse(record, to)


def _refuse(record: ModelRecord, to: ModelStatus, why: str = "") -> None:
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[record.status])) or "nothing"
    raise Conflict(
        f"model {record.key} is {record.status.value}: it cannot become {to.value}"
        f"{f' ({why})' if why else ''}; from {record.status.value} it may become: {allowed}"
    )
