"""The review queue as people work it: pages, claims (leases), verdicts, QA opinions, unmasking.

Every rule about who may do what lives here, not in the web routes: reviewers and seniors
decide items of their groups and only while they hold the item's lease, which nobody who has
already given a verdict on the decision takes again (so a first approver never keeps the
second out); the person a decision was requested for never sees, claims or decides it
(maker-checker, `gateway.core.reviews.is_requester`); on a ``blind`` tier a reviewer sees the
earlier verdicts only once they have given theirs; auditors and admins read and never decide;
personal data is unmasked only for roles allowed to see it and only on items the account may
open, and every unmasking shown is an audit event, written after those checks. Verdicts go
through `ReviewService`, the one place that records them and wakes waiting callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.masking import mask
from gateway.core.overrides import parse_override
from gateway.core.reviews import (
    Agreement,
    Reviewer,
    ReviewService,
    agreement,
    is_requester,
    requester_refusal,
)
from gateway.core.roles import (
    ALL_SEEING_ROLES,
    DECIDING_ROLES,
    UNMASKING_ROLES,
    visible_groups,
)
from gateway.core.vault import Vault
from gateway.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from gateway.people import same_person
from gateway.policy import PolicySet
from gateway.store.protocol import QueueCursor, ReviewStore
from gateway.types import (
    Account,
    Decision,
    JSONObject,
    QueueItem,
    TaskKind,
    Verdict,
)

MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: list[QueueItem]
    next: QueueCursor | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ItemView:
    """Everything the item page shows, with personal data masked unless asked and allowed."""

    decision: Decision
    task: QueueItem | None
    input: JSONObject
    masked: bool
    sensitive_fields: tuple[str, ...]
    claimed_by_me: bool
    can_decide: bool
    can_unmask: bool
    qa_reviews: list[tuple[str, str, bool, str, datetime]]
    reviewed_by_me: bool = False
    """The account already gave a verdict on this decision (and so may not claim it)."""
    verdicts_hidden: bool = False
    """A blind tier: the earlier verdicts are left out of ``decision`` until the account
    gives its own."""
    agreement: Agreement | None = None
    """What the earlier verdicts propose and who agree (None while they are hidden)."""
    proposed_output: JSONObject | None = None
    """The output an override would confirm: the latest verdict's, when it is a visible
    override (else None)."""


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput("reason", f"at most {MAX_REASON} characters")
    return reason


class ReviewQueue:
    def __init__(
        self,
        store: ReviewStore,
        reviews: ReviewService,
        policies: Callable[[], PolicySet],
        *,
        lease: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        vault: Vault | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        self._reviews = reviews
        self._policies = policies
        self._lease = lease
        self._clock = clock

    async def page(
        self,
        account: Account,
        kind: TaskKind = TaskKind.DECISION,
        *,
        application: str | None = None,
        tier: str | None = None,
        after: QueueCursor | None = None,
        limit: int = 50,
    ) -> QueuePage:
        """A page of the queue the account may see, most urgent first, with counts."""
        groups = visible_groups(account)
        items, cursor = await self._store.queue_page(
            kind,
            viewer=account.name,
            now=self._clock(),
            groups=groups,
            application=application or None,
            tier=tier or None,
            after=after,
            limit=limit,
        )
        counts = await self._store.queue_counts(kind, viewer=account.name, groups=groups)
        return QueuePage(items, cursor, counts)

    async def _task(self, account: Account, decision_id: str, kind: TaskKind) -> QueueItem:
        task = await self._store.open_task(decision_id, kind)
        if task is None:
            raise NotFound("open review item", decision_id)
        _require_group(account, task)
        return task

    async def _visible(
        self, account: Account, decision_id: str, kind: TaskKind
    ) -> tuple[Decision, QueueItem | None]:
        """The decision and its open task of ``kind``, if the account may look at them.

        Raises:
            NotFound: No such decision, or no open item for a role that sees only open work.
            PermissionDenied: The item belongs to groups the account is not in, or was
                requested for the account (maker-checker).
        """
        decision = await self._decision(account, decision_id)
        task = await self._store.open_task(decision_id, kind)
        if task is not None:
            _require_group(account, task)
        elif account.role not in ALL_SEEING_ROLES:
            raise NotFound("open review item", decision_id)
        return decision, task

    async def _decision(self, account: Account, decision_id: str) -> Decision:
        """The decision, unless it was requested for ``account`` (maker-checker).

        Raises:
            NotFound: No such decision.
            PermissionDenied: The account is the decision's requester.
        """
        decision = await self._store.get_decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        if is_requester(decision, account.name):
            raise requester_refusal(decision_id, account.name)
        return decision

    async def open(
        self,
        account: Account,
        decision_id: str,
        kind: TaskKind,
        *,
        claim: bool = True,
        unmask: bool = False,
    ) -> ItemView:
        """The item page's content; a reviewer opening an open item claims it for the lease.

        Someone who already gave a verdict on the decision (the first of two approvers) reads
        it without claiming it, so the second approver is not kept out. With ``unmask`` the
        input is shown with its personal data, which is recorded (see `unmask`).

        Raises:
            NotFound: No such decision.
            PermissionDenied: The item belongs to groups the account is not in, was requested
                for the account (maker-checker), or personal data was asked for by a role that
                may not see it.
        """
        if unmask:
            _require_unmasker(account)
        decision, task = await self._visible(account, decision_id, kind)
        reviewed = kind is TaskKind.DECISION and any(
            same_person(r.reviewer, account.name) for r in decision.reviews
        )
        claimed = False
        if task is not None and claim and account.role in DECIDING_ROLES and not reviewed:
            try:
                await self.claim(account, decision_id, kind)
                claimed = True
            except (Conflict, PermissionDenied):  # leased to someone else, or reviewed meanwhile
                claimed = False
            task = await self._store.open_task(decision_id, kind)
        # Blind review: until they give theirs, a reviewer gets the decision without the
        # earlier verdicts, so no page built from this view can show them. Read-only roles
        # (who never give one) and closed decisions show everything.
        hidden = (
            kind is TaskKind.DECISION
            and decision.blind
            and not decision.status.is_final
            and account.role not in ALL_SEEING_ROLES
            and not reviewed
        )
        if hidden:
            decision = replace(decision, reviews=())
        agreed = None if hidden or kind is not TaskKind.DECISION else agreement(decision)
        proposed = agreed.output if agreed is not None else None
        sensitive = self._sensitive(decision)
        qa_reviews = await self._store.qa_reviews_for(decision_id)
        shown = (
            await self._reveal(account, decision, sensitive)
            if unmask
            else mask(decision.input, sensitive)
        )
        return ItemView(
            decision=decision,
            task=task,
            input=shown,
            masked=bool(sensitive) and not unmask,
            sensitive_fields=sensitive,
            claimed_by_me=claimed,
            can_decide=claimed and task is not None,
            can_unmask=account.role in UNMASKING_ROLES and bool(sensitive),
            qa_reviews=qa_reviews,
            reviewed_by_me=reviewed,
            verdicts_hidden=hidden,
            agreement=agreed,
            proposed_output=proposed,
        )

    async def claim(self, account: Account, decision_id: str, kind: TaskKind) -> None:
        """Lease an item to a reviewer so nobody else works it meanwhile.

        Raises:
            PermissionDenied: A read-only role, not in the item's groups, already gave a
                verdict on the decision, or the decision's requester (maker-checker).
            Conflict: Someone else holds the lease.
        """
        self._require_decider(account)
        await self._decision(account, decision_id)
        await self._task(account, decision_id, kind)
        now = self._clock()
        await self._store.claim_task(decision_id, kind, account.name, now, now + self._lease)

    async def release(self, account: Account, decision_id: str, kind: TaskKind) -> None:
        await self._store.release_task(decision_id, kind, account.name)

    @staticmethod
    def _require_decider(account: Account) -> None:
        if account.role not in DECIDING_ROLES:
            raise PermissionDenied(f"role {account.role.value} may read but not decide")

    async def _require_lease(self, account: Account, decision_id: str, kind: TaskKind) -> None:
        self._require_decider(account)
        task = await self._task(account, decision_id, kind)
        until = task.claimed_until
        if task.claimed_by != account.name or until is None or until < self._clock():
            holder = task.claimed_by
            if holder and holder != account.name and until is not None and until >= self._clock():
                raise Conflict(f"decision {decision_id} is being reviewed by {holder}")
            raise Conflict(f"open decision {decision_id} first: your claim on it has expired")

    async def decide(
        self,
        account: Account,
        decision_id: str,
        verdict: Verdict,
        reason: str = "",
        override_fields: dict[str, str] | None = None,
    ) -> Decision:
        """Give a verdict on a held decision the account has claimed.

        Raises:
            PermissionDenied: A role that may not decide, another group's item, a second
                verdict by the same person, or the decision's requester (maker-checker).
            Conflict: The item is leased to someone else, the lease expired, or the decision
                changed meanwhile.
            InvalidInput: A missing reason, or an override with a bad field.
        """
        reason = _reason(reason)
        self._require_decider(account)
        decision = await self._decision(account, decision_id)
        await self._require_lease(account, decision_id, TaskKind.DECISION)
        output: JSONObject | None = None
        if verdict is Verdict.OVERRIDE:
            if not reason:
                raise InvalidInput("reason", "a reason is required to override")
            output = parse_override(decision.model_output, override_fields or {})
        reviewer = Reviewer(account.name, account.role.value)
        return await self._reviews.submit(decision_id, reviewer, verdict, reason, output)

    async def qa(self, account: Account, decision_id: str, agree: bool, reason: str = "") -> None:
        """Record agreement or disagreement with an automatic decision; it stays as it is.

        Raises:
            InvalidInput: Disagreement without a reason.
            PermissionDenied, Conflict: As for `decide`.
        """
        reason = _reason(reason)
        if not agree and not reason:
            raise InvalidInput("reason", "say why you disagree")
        self._require_decider(account)
        await self._decision(account, decision_id)
        await self._require_lease(account, decision_id, TaskKind.QA)
        now = self._clock()
        event = audit_event(
            EventType.DECISION_QA_REVIEWED,
            decision_id,
            f"user:{account.name}",
            {
                "reviewer": account.name,
                "role": account.role.value,
                "agree": agree,
                "reason": reason,
            },
            ts=now,
        )
        await self._store.record_qa(
            decision_id,
            reviewer=account.name,
            role=account.role.value,
            agree=agree,
            reason=reason,
            at=now,
            event=event,
        )

    async def unmask(
        self, account: Account, decision_id: str, kind: TaskKind = TaskKind.DECISION
    ) -> JSONObject:
        """The decision's input with personal data, for those allowed to see it (audited).

        Access is checked as for `open` before anything is read or recorded, and the audit
        event is written only once the data has been opened: it records what was shown.

        Raises:
            PermissionDenied: The role may not see personal data, or the item belongs to
                groups the account is not in.
            NotFound: No such decision, or no open item for a role that sees only open work.
        """
        _require_unmasker(account)
        decision, _ = await self._visible(account, decision_id, kind)
        return await self._reveal(account, decision, self._sensitive(decision))

    def _sensitive(self, decision: Decision) -> tuple[str, ...]:
        app = self._policies().applications.get(decision.application)
        return app.sensitive_fields if app is not None else ()

    async def _reveal(
        self, account: Account, decision: Decision, sensitive: tuple[str, ...]
    ) -> JSONObject:
        """The unsealed input, recorded as shown to ``account`` (access already checked)."""
        shown = decision.input
        if self._vault is not None and sensitive:
            shown = self._vault.open(decision.input, sensitive, decision.id)
        await self._store.append_event(
            audit_event(
                EventType.DECISION_UNMASKED,
                decision.id,
                f"user:{account.name}",
                {"reviewer": account.name, "role": account.role.value, "fields": list(sensitive)},
                ts=self._clock(),
            )
        )
        return shown


def _require_group(account: Account, task: QueueItem) -> None:
    if account.role in ALL_SEEING_ROLES:
        return
    if account.role not in DECIDING_ROLES or not set(task.task.groups) & set(account.groups):
        raise PermissionDenied(
            f"{account.name} is not in a group that reviews this item "
            f"({', '.join(task.task.groups)})"
        )


def _require_unmasker(account: Account) -> None:
    if account.role not in UNMASKING_ROLES:
        raise PermissionDenied(f"role {account.role.value} may not see personal data")
