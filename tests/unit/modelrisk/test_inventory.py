"""The model inventory's lifecycle: fields, transitions, separation of duties and the audit
trail it leaves, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit.verifier import verify_events
from gateway.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, PermissionDenied
from gateway.modelrisk.fields import parse_key
from gateway.modelrisk.inventory import ModelInventory
from gateway.modelrisk.record import ModelKey, ModelStatus
from gateway.policy import PolicySet, load_policies
from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from gateway.timefmt import format_ts
from gateway.types import ModelRef
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

ROOT = Path(__file__).resolve().parents[3]
KEY = ModelKey("credit-scorer", "credit_v3", "3")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "policies")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or a fresh schema of the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "gateway.db")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
async def store(location: str) -> AsyncIterator[ReviewStore]:
    s = open_store(location)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inventory(store: ReviewStore, policies: PolicySet, clock: Clock) -> ModelInventory:
    return ModelInventory(store, lambda: policies, clock)


async def _register(inventory: ModelInventory, key: ModelKey = KEY) -> None:
    await inventory.register(
        key,
        owner="Olga",
        intended_use="credit limits for retail customers",
        max_tier="limited",
        actor="user:olga",
        documentation_url="https://wiki.example/credit_v3",
    )


async def _validated(inventory: ModelInventory, key: ModelKey = KEY) -> None:
    await _register(inventory, key)
    await inventory.validate(
        key,
        validator="vic",
        expires_at=NOW + timedelta(days=365),
        actor="user:vic",
        justification="report MV-2026-014",
    )


async def test_the_whole_lifecycle_is_recorded_and_the_chain_verifies(
    inventory: ModelInventory, store: ReviewStore
) -> None:
    """register, validate, approve, suspend, resume, retire each store the new status and one
    model.* event with actor, justification and what changed; history lists them in order."""
    await _validated(inventory)
    await inventory.approve(KEY, approver="ann", actor="user:ann", justification="MRC 2026-03")
    await inventory.suspend(KEY, actor="user:rm", justification="drift on March data")
    await inventory.resume(KEY, approver="ann", actor="user:ann", justification="fixed")
    retired = await inventory.retire(KEY, actor="cli:ops", justification="replaced by v4")
    assert retired.status is ModelStatus.RETIRED
    assert (await inventory.get(KEY)) == retired
    history = await inventory.history(KEY)
    assert [e.type for e in history] == [
        "model.registered",
        "model.validated",
        "model.approved",
        "model.suspended",
        "model.resumed",
        "model.retired",
    ]
    validated = history[1].payload
    assert validated is not None
    assert history[1].actor == "user:vic"
    assert validated["justification"] == "report MV-2026-014"
    assert (validated["from_status"], validated["to_status"]) == ("registered", "validated")
    assert validated["changes"]["validator"] == {"from": "", "to": "vic"}
    assert history[2].payload is not None and history[2].payload["approver"] == "ann"
    assert verify_events(await store.audit_events(limit=100)).ok


@pytest.mark.parametrize("approver", ["olga", " OLGA ", "Olga"])
async def test_the_owner_may_not_approve_their_own_model(
    inventory: ModelInventory, approver: str
) -> None:
    """approve by the owner (any case, surrounding spaces) is PermissionDenied; status stays."""
    await _validated(inventory)
    with pytest.raises(PermissionDenied, match="owns"):
        await inventory.approve(KEY, approver=approver, actor="user:x", justification="mine")
    assert (await inventory.get(KEY)).status is ModelStatus.VALIDATED
    assert len(await inventory.history(KEY)) == 2


async def test_the_validator_may_not_approve_nor_the_owner_validate(
    inventory: ModelInventory,
) -> None:
    """The validator approving and the owner validating are refused as PermissionDenied."""
    await _register(inventory)
    with pytest.raises(PermissionDenied, match="independent"):
        await inventory.validate(
            KEY, validator="olga", expires_at=NOW + timedelta(days=1), actor="u", justification="j"
        )
    await inventory.validate(
        KEY, validator="Vic", expires_at=NOW + timedelta(days=1), actor="u", justification="j"
    )
    with pytest.raises(PermissionDenied, match="validated"):
        await inventory.approve(KEY, approver="vic", actor="user:vic", justification="j")


async def test_resuming_is_refused_to_the_owner_too(inventory: ModelInventory) -> None:
    """resume approves again, so the owner may not resume their own suspended model."""
    await _validated(inventory)
    await inventory.approve(KEY, approver="ann", actor="user:ann", justification="ok")
    await inventory.suspend(KEY, actor="user:olga", justification="incident")
    with pytest.raises(PermissionDenied):
        await inventory.resume(KEY, approver="olga", actor="user:olga", justification="fine")


async def test_a_wrong_status_transition_is_a_conflict_naming_the_statuses(
    inventory: ModelInventory,
) -> None:
    """approve before validation, suspend while not approved, resume while approved and any
    move after retirement raise Conflict naming the current and the allowed statuses."""
    await _register(inventory)
    with pytest.raises(Conflict, match=r"is registered.*may become: retired, validated"):
        await inventory.approve(KEY, approver="ann", actor="u", justification="j")
    with pytest.raises(Conflict, match="is registered"):
        await inventory.suspend(KEY, actor="u", justification="j")
    await inventory.retire(KEY, actor="u", justification="gone")
    with pytest.raises(Conflict, match="may become: nothing"):
        await inventory.retire(KEY, actor="u", justification="again")
    with pytest.raises(Conflict, match="is retired"):
        await inventory.validate(
            KEY, validator="vic", expires_at=NOW + timedelta(days=1), actor="u", justification="j"
        )
    assert [e.type for e in await inventory.history(KEY)] == ["model.registered", "model.retired"]


async def test_an_expired_validation_may_not_be_approved(
    inventory: ModelInventory, clock: Clock
) -> None:
    """approve after the validation's expiry is FailedPrecondition (not a status Conflict)."""
    await _validated(inventory)
    clock.now = NOW + timedelta(days=366)
    with pytest.raises(FailedPrecondition, match="expired") as caught:
        await inventory.approve(KEY, approver="ann", actor="u", justification="late")
    assert not isinstance(caught.value, Conflict)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"owner": "  "}, "owner"),
        ({"intended_use": ""}, "intended_use"),
        ({"max_tier": "extreme"}, "max_tier"),
        ({"documentation_url": "javascript:alert(1)"}, "documentation_url"),
        ({"limitations": "x" * 2001}, "limitations"),
    ],
)
async def test_register_names_the_field_it_refuses(
    inventory: ModelInventory, changes: dict[str, str], field: str
) -> None:
    """A missing owner or use, an unknown tier, a non-http URL or an overlong text is an
    InvalidInput naming that field; nothing is stored."""
    fields = {
        "owner": "olga",
        "intended_use": "limits",
        "max_tier": "limited",
        "documentation_url": "",
        "limitations": "",
    } | changes
    with pytest.raises(InvalidInput) as caught:
        await inventory.register(KEY, actor="u", **fields)
    assert caught.value.field == field
    assert await inventory.models() == []


async def test_validate_needs_an_expiry_in_the_future_and_a_justification(
    inventory: ModelInventory,
) -> None:
    """An expiry now or earlier, a validation dated in the future, or no justification is an
    InvalidInput naming the field."""
    await _register(inventory)
    for kwargs, field in (
        ({"expires_at": NOW, "justification": "j"}, "validation_expires_at"),
        (
            {
                "expires_at": NOW + timedelta(days=9),
                "validated_at": NOW + timedelta(days=1),
                "justification": "j",
            },
            "validated_at",
        ),
        ({"expires_at": NOW + timedelta(days=9), "justification": " "}, "justification"),
    ):
        with pytest.raises(InvalidInput) as caught:
            await inventory.validate(KEY, validator="vic", actor="u", **kwargs)
        assert caught.value.field == field


async def test_unknown_keys_are_not_found_and_duplicates_conflict(
    inventory: ModelInventory,
) -> None:
    """Reading or moving an unregistered key is NotFound; registering one twice is Conflict."""
    with pytest.raises(NotFound):
        await inventory.get(KEY)
    with pytest.raises(NotFound):
        await inventory.history(KEY)
    with pytest.raises(NotFound):
        await inventory.retire(KEY, actor="u", justification="j")
    await _register(inventory)
    with pytest.raises(Conflict, match="already registered"):
        await _register(inventory)


def test_keys_parse_from_their_text_form() -> None:
    """backend/name@version parses (the version after the last @); malformed text is refused."""
    assert parse_key("credit-scorer/credit_v3@3") == KEY
    assert str(parse_key(str(KEY))) == str(KEY)
    for text in ("credit-scorer", "a/b", "/b@1", "a/@1", "a/b@", "a b/c@1"):
        with pytest.raises(InvalidInput):
            parse_key(text)


async def test_approval_chooses_the_drift_reference_from_the_outputs_before_it(
    inventory: ModelInventory, store: ReviewStore, clock: Clock
) -> None:
    """Outputs the version gave in the week before approval become its drift reference, named in
    the approval's event; without any, the event says the first days in use will be."""
    from tests.unit.store.store_factories import created_event, decision_task, make_decision

    await _validated(inventory)
    # Outputs are counted in the hour their transaction commits: approve on the wall clock.
    clock.now = datetime.now(UTC)
    ref = ModelRef(KEY.backend, KEY.name, KEY.version)
    for score in (0.31, 0.33, 0.72):
        d = make_decision(model=ref, model_output={"score": score})
        await store.create_decision(d, [created_event(d)], [decision_task(d)])
    await inventory.approve(KEY, approver="ann", actor="user:ann", justification="MRC 2026-03")
    reference = await store.get_model_reference(KEY)
    assert reference is not None
    assert sum(reference.histogram["score"].values()) == 3
    approved = (await inventory.history(KEY))[-1].payload
    assert approved is not None
    assert approved["drift_reference"] == {
        "since": format_ts(clock.now - timedelta(days=7)),
        "until": format_ts(clock.now),
    }

    other = ModelKey("credit-scorer", "credit_v4", "4")
    await _validated(inventory, other)
    await inventory.approve(other, approver="ann", actor="user:ann", justification="MRC 2026-04")
    assert await store.get_model_reference(other) is None
    payload = (await inventory.history(other))[-1].payload
    assert payload is not None and payload["drift_reference"] == {"first_days_in_use": 7}
