"""Four-eyes for every verdict, maker-checker and blind review in the core (ReviewService and
ReviewQueue), on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.core.notifier import Notifier
from gateway.core.queue import ReviewQueue
from gateway.core.reviews import Reviewer, ReviewService, agreement
from gateway.core.sso import SsoConfig, TrustedHeaderSso
from gateway.errors import PermissionDenied
from gateway.policy import load_policies
from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from gateway.types import Account, Decision, Role, Status, TaskKind, Verdict
from tests.pgserver import pg_dsn, pg_server
from tests.unit.store.store_factories import created_event, decision_task, make_decision

__all__ = ["pg_dsn", "pg_server"]

ROOT = Path(__file__).resolve().parents[3]
POLICIES = load_policies(ROOT / "policies")
ANN, BOB, CAT = (Reviewer(n, "reviewer") for n in ("ann", "bob", "cat"))
RAISE = {"score": 0.9}
LOWER = {"score": 0.1}


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file path or a fresh PostgreSQL schema's DSN."""
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
def reviews(store: ReviewStore) -> ReviewService:
    return ReviewService(store, Notifier())


@pytest.fixture
def queue(store: ReviewStore, reviews: ReviewService) -> ReviewQueue:
    return ReviewQueue(store, reviews, lambda: POLICIES)


async def _held(store: ReviewStore, **fields: Any) -> Decision:
    """A decision held for review on a tier that needs two people unless told otherwise."""
    d = make_decision(**{"approvals_needed": 2, **fields})
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    return d


def _person(name: str) -> Account:
    return Account(name, Role.REVIEWER, ("reviewers",), "", datetime.now(UTC))


# -- the agreement rule -----------------------------------------------------------------


async def test_one_override_leaves_a_two_person_tier_pending(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """A single override on a two-approval tier is recorded and decides nothing."""
    d = await _held(store)
    after = await reviews.submit(d.id, ANN, Verdict.OVERRIDE, "income verified", RAISE)
    assert after.status is Status.PENDING_REVIEW and after.final_output is None


async def test_one_reject_leaves_a_two_person_tier_pending(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """A single rejection needs a second person when the tier does not say reject_approvals: 1."""
    d = await _held(store)
    after = await reviews.submit(d.id, ANN, Verdict.REJECT, "debt too high")
    assert after.status is Status.PENDING_REVIEW
    done = await reviews.submit(d.id, BOB, Verdict.REJECT, "agreed, debt too high")
    assert done.status is Status.REJECTED and done.final_output is None


async def test_one_reject_finalises_when_the_tier_lets_one_person_stop(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """With reject_approvals: 1 one person may stop what two must allow."""
    d = await _held(store, reject_approvals_needed=1)
    after = await reviews.submit(d.id, ANN, Verdict.REJECT, "fraud suspected")
    assert after.status is Status.REJECTED


async def test_approve_then_override_by_the_same_person_is_refused(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """One person never counts twice: a second verdict of any kind by them is refused."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.APPROVE)
    for verdict, output in ((Verdict.OVERRIDE, RAISE), (Verdict.REJECT, None)):
        with pytest.raises(PermissionDenied, match="different reviewer"):
            await reviews.submit(d.id, ANN, verdict, "changed my mind", output)
    with pytest.raises(PermissionDenied, match="different reviewer"):  # names ignore case
        await reviews.submit(d.id, Reviewer("ANN", "reviewer"), Verdict.APPROVE)
    stored = await store.get_decision(d.id)
    assert stored is not None and stored.status is Status.PENDING_REVIEW
    assert [r.reviewer for r in stored.reviews] == ["ann"]


async def test_two_agreeing_overrides_finalise_with_that_output(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """Two people giving the same override make the decision OVERRIDDEN with that output."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.OVERRIDE, "income verified", dict(RAISE))
    done = await reviews.submit(d.id, BOB, Verdict.OVERRIDE, "confirmed", dict(RAISE))
    assert done.status is Status.OVERRIDDEN and done.final_output == RAISE


async def test_a_differing_override_starts_the_agreement_again(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """Two differing overrides do not finalise; a third person agreeing with the latest does,
    while agreement with the first (before the objection) would not have counted."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.OVERRIDE, "raise", RAISE)
    after = await reviews.submit(d.id, BOB, Verdict.OVERRIDE, "lower", LOWER)
    assert after.status is Status.PENDING_REVIEW
    assert agreement(after).people == ("bob",) and agreement(after).output == LOWER
    done = await reviews.submit(d.id, CAT, Verdict.OVERRIDE, "lower it is", LOWER)
    assert done.status is Status.OVERRIDDEN and done.final_output == LOWER


async def test_an_objection_is_not_outvoted_by_an_earlier_approval(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """Approve, reject, approve leaves it pending: two approvals after the rejection are needed."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.APPROVE)
    await reviews.submit(d.id, BOB, Verdict.REJECT, "income unproven")
    after = await reviews.submit(d.id, CAT, Verdict.APPROVE)
    assert after.status is Status.PENDING_REVIEW
    done = await reviews.submit(d.id, Reviewer("dan", "senior"), Verdict.APPROVE)
    assert done.status is Status.APPROVED and done.final_output == d.model_output


async def test_two_approvals_still_approve(store: ReviewStore, reviews: ReviewService) -> None:
    """Two distinct people approving approve with the model's output."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.APPROVE)
    done = await reviews.submit(d.id, BOB, Verdict.APPROVE)
    assert done.status is Status.APPROVED and done.final_output == d.model_output


async def test_each_verdict_event_says_what_is_proposed_and_how_many_agree(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """The audit event of a verdict names the proposal, the people agreeing and the count needed."""
    d = await _held(store)
    await reviews.submit(d.id, ANN, Verdict.OVERRIDE, "raise", RAISE)
    await reviews.submit(d.id, BOB, Verdict.OVERRIDE, "raise too", RAISE)
    events = [e for e in await store.audit_events_for(d.id) if e.type == "decision.reviewed"]
    payloads = [e.payload for e in events]
    assert payloads[0] is not None and payloads[1] is not None
    assert payloads[0]["verdict"] == "override" and payloads[0]["output"] == RAISE
    assert (payloads[0]["agree"], payloads[0]["needed"]) == (1, 2)
    assert payloads[0]["status"] == "PENDING_REVIEW"
    assert (payloads[1]["agree"], payloads[1]["needed"]) == (2, 2)
    assert payloads[1]["agreed_by"] == ["ann", "bob"]
    assert payloads[1]["status"] == "OVERRIDDEN"


# -- maker-checker ----------------------------------------------------------------------


async def test_the_requester_cannot_give_a_verdict(
    store: ReviewStore, reviews: ReviewService
) -> None:
    """A verdict by the person the decision was requested for is refused, naming the rule."""
    d = await _held(store, requested_by="Ann")
    with pytest.raises(PermissionDenied, match="maker-checker"):
        await reviews.submit(d.id, ANN, Verdict.APPROVE)
    stored = await store.get_decision(d.id)
    assert stored is not None and not stored.reviews


async def test_the_requester_cannot_see_claim_or_decide_through_the_queue(
    store: ReviewStore, queue: ReviewQueue
) -> None:
    """The queue hides the item from its requester, and opening, claiming, deciding and
    unmasking it are refused; another reviewer still gets it."""
    d = await _held(store, requested_by="ann", approvals_needed=1)
    ann, bob = _person("ann"), _person("bob")
    page = await queue.page(ann)
    assert [i.task.decision_id for i in page.items] == [] and page.counts == {}
    for attempt in (
        queue.open(ann, d.id, TaskKind.DECISION),
        queue.claim(ann, d.id, TaskKind.DECISION),
        queue.decide(ann, d.id, Verdict.APPROVE),
    ):
        with pytest.raises(PermissionDenied, match="maker-checker: ann requested"):
            await attempt
    task = await store.open_task(d.id, TaskKind.DECISION)
    assert task is not None and task.claimed_by is None
    assert [i.task.decision_id for i in (await queue.page(bob)).items] == [d.id]
    assert (await queue.open(bob, d.id, TaskKind.DECISION)).can_decide
    assert (await queue.decide(bob, d.id, Verdict.APPROVE)).status is Status.APPROVED


# -- blind review -----------------------------------------------------------------------


async def test_blind_item_hides_earlier_verdicts_until_the_reviewer_gives_theirs(
    store: ReviewStore, queue: ReviewQueue
) -> None:
    """On a blind tier the second reviewer's view has no earlier verdict, no agreement and no
    pre-filled override; once they have given theirs, they see everything."""
    d = await _held(store, blind=True)
    ann, bob = _person("ann"), _person("bob")
    await queue.open(ann, d.id, TaskKind.DECISION)
    await queue.decide(ann, d.id, Verdict.OVERRIDE, "raise", {"score": "0.9"})
    view = await queue.open(bob, d.id, TaskKind.DECISION)
    assert view.verdicts_hidden and view.can_decide
    assert view.decision.reviews == () and view.agreement is None
    assert view.proposed_output is None
    page = await queue.page(bob)
    assert [i.verdicts for i in page.items] == [1]  # how many, never which
    await queue.decide(bob, d.id, Verdict.REJECT, "no")
    after = await queue.open(bob, d.id, TaskKind.DECISION)
    assert not after.verdicts_hidden
    assert [r.reviewer for r in after.decision.reviews] == ["ann", "bob"]


async def test_open_item_shows_the_proposed_override_to_confirm(
    store: ReviewStore, queue: ReviewQueue
) -> None:
    """Without blind, the next reviewer sees who proposed what and the override to confirm."""
    d = await _held(store)
    ann, bob = _person("ann"), _person("bob")
    await queue.open(ann, d.id, TaskKind.DECISION)
    await queue.decide(ann, d.id, Verdict.OVERRIDE, "raise", {"score": "0.9"})
    view = await queue.open(bob, d.id, TaskKind.DECISION)
    assert not view.verdicts_hidden and view.proposed_output == RAISE
    assert view.agreement is not None and view.agreement.people == ("ann",)


async def test_an_sso_identity_is_checked_against_the_requester_like_an_account(
    store: ReviewStore, queue: ReviewQueue
) -> None:
    """A single sign-on user named by the proxy as the requester (in other letter case) is
    refused the item as a local account of that name would be."""
    sso = TrustedHeaderSso(SsoConfig.parse("X-User", "X-Groups", "reviewers=reviewer", "10.0.0.1"))
    maria = sso.account_for("10.0.0.1", "Maria.Lopez@bank.example", "reviewers")
    assert maria is not None and maria.role is Role.REVIEWER
    d = await _held(store, requested_by="maria.lopez@bank.example", approvals_needed=1)
    assert (await queue.page(maria)).items == []
    with pytest.raises(PermissionDenied, match="maker-checker"):
        await queue.open(maria, d.id, TaskKind.DECISION)
    with pytest.raises(PermissionDenied, match="maker-checker"):
        await store.claim_task(d.id, TaskKind.DECISION, maria.name, d.created_at, d.updated_at)
