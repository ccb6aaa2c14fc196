"""One queue item: its page (masked or unmasked), a verdict, a QA opinion, giving it back.

A refused verdict or opinion (invalid, taken meanwhile, not this reviewer's to give) goes back to
the item with the reason as a message, so the reviewer keeps their place; other refusals show as
an error page through the guard (an item requested for the account itself: maker-checker).

The page shows what the earlier verdicts propose and who agree (`gateway.core.reviews`), and the
override form starts from the proposed override, so confirming it is one click and a reason. On
a blind tier the view the core gives holds no earlier verdicts until the account gave its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.core.queue import ItemView, ReviewQueue
from gateway.core.reviews import Agreement, agreement
from gateway.errors import Conflict, InvalidInput, PermissionDenied
from gateway.policy import PolicySet
from gateway.types import Account, Decision, JSONObject, Review, TaskKind, Verdict
from reviewer_ui.charts import explanation_chart
from reviewer_ui.conversation import conversation_context
from reviewer_ui.protocol import Pages
from reviewer_ui.sessions import Session

OVERRIDE_PREFIX = "out."
"""Form fields named ``out.<field>`` carry an override's model output fields."""


def item_routes(pages: Pages, queue: ReviewQueue, policies: Callable[[], PolicySet]) -> list[Route]:
    """The item routes, to register inside the UI app (under its prefix)."""
    routes = _ItemRoutes(pages, queue, policies)
    return [
        Route("/items/{decision_id}", routes.item, methods=["GET"]),
        Route("/items/{decision_id}/verdict", routes.verdict, methods=["POST"]),
        Route("/items/{decision_id}/qa", routes.qa, methods=["POST"]),
        Route("/items/{decision_id}/unmask", routes.unmask, methods=["POST"]),
        Route("/items/{decision_id}/release", routes.release, methods=["POST"]),
    ]


def task_kind(request: Request) -> TaskKind:
    """The queue an item was opened from: ``?kind=qa`` for QA, else the decision queue."""
    return TaskKind.QA if request.query_params.get("kind") == "qa" else TaskKind.DECISION


def parse_verdict(raw: str) -> Verdict:
    try:
        return Verdict(raw)
    except ValueError:
        raise InvalidInput("verdict", "choose approve, reject or override") from None


class _ItemRoutes:
    def __init__(self, pages: Pages, queue: ReviewQueue, policies: Callable[[], PolicySet]) -> None:
        self.pages = pages
        self.queue = queue
        self.policies = policies

    async def item(self, request: Request) -> Response:
        return await self.pages.guard(request, lambda r, s, a: self._show(r, s, a, unmask=False))

    async def unmask(self, request: Request) -> Response:
        return await self.pages.guard(
            request, lambda r, s, a: self._show(r, s, a, unmask=True), post=True
        )

    async def _show(
        self, request: Request, session: Session, account: Account, *, unmask: bool
    ) -> Response:
        kind = task_kind(request)
        view = await self.queue.open(
            account, request.path_params["decision_id"], kind, unmask=unmask
        )
        return self.pages.render(
            request,
            session,
            "item.html",
            account=account,
            kind=kind.value,
            unmasked=unmask,
            **self._context(view),
        )

    def _context(self, view: ItemView) -> dict[str, Any]:
        """What the item template shows of ``view`` beside the view itself."""
        d = view.decision
        # The override form offers the output's plain values (nested ones stay as they are),
        # pre-filled with the override the earlier verdicts propose, when there is one.
        start = {**(d.model_output or {}), **(view.proposed_output or {})}
        context: dict[str, Any] = {
            "view": view,
            "d": d,
            "tier": next((t for t in self.policies().tiers if t.name == d.tier), None),
            "input": view.input,
            "chart": explanation_chart(d.model_output),
            "editable": {
                k: v
                for k, v in start.items()
                if k in (d.model_output or {}) and isinstance(v, int | float | str | bool)
            },
            "verdicts": [(r, _changes(d, r)) for r in d.reviews],
            "agreement": view.agreement,
            "proposal": _proposal(d, view.agreement) if view.agreement else "",
            "rejects_needed": max(d.reject_approvals_needed or d.approvals_needed, 1),
        }
        # A conversation is shown as one, and its override offers text and tool arguments.
        context.update(conversation_context(d, view.input, context["editable"]))
        return context

    async def verdict(self, request: Request) -> Response:
        async def decide(r: Request, s: Session, a: Account) -> Response:
            form = await r.form()
            decision_id = r.path_params["decision_id"]
            verdict = parse_verdict(str(form.get("verdict", "")))
            fields = {
                str(k).removeprefix(OVERRIDE_PREFIX): str(v)
                for k, v in form.multi_items()
                if str(k).startswith(OVERRIDE_PREFIX) and isinstance(v, str)
            }
            try:
                result = await self.queue.decide(
                    a, decision_id, verdict, str(form.get("reason", "")), fields
                )
            except (InvalidInput, Conflict, PermissionDenied) as exc:
                s.flash.append(("error", exc.message))
                return self.pages.redirect(r, s, f"/items/{decision_id}")
            if result.status.is_final:
                msg = f"Decision {decision_id} is now {result.status.value}."
            else:
                agreed = agreement(result)
                msg = (
                    f"Your {verdict.value} on {decision_id} is recorded: {len(agreed.people)} of "
                    f"{agreed.needed} people agree on {_proposal(result, agreed)}; the next "
                    "verdict must come from a different reviewer."
                )
            s.flash.append(("ok", msg))
            return self.pages.redirect(r, s, "/")

        return await self.pages.guard(request, decide, post=True)

    async def qa(self, request: Request) -> Response:
        async def opinion(r: Request, s: Session, a: Account) -> Response:
            form = await r.form()
            decision_id = r.path_params["decision_id"]
            agree = form.get("opinion") == "agree"
            try:
                await self.queue.qa(a, decision_id, agree, str(form.get("reason", "")))
            except (InvalidInput, Conflict, PermissionDenied) as exc:
                s.flash.append(("error", exc.message))
                return self.pages.redirect(r, s, f"/items/{decision_id}?kind=qa")
            s.flash.append(("ok", f"QA opinion on {decision_id} recorded."))
            return self.pages.redirect(r, s, "/qa")

        return await self.pages.guard(request, opinion, post=True)

    async def release(self, request: Request) -> Response:
        async def release(r: Request, s: Session, a: Account) -> Response:
            kind = task_kind(r)
            await self.queue.release(a, r.path_params["decision_id"], kind)
            return self.pages.redirect(r, s, "/qa" if kind is TaskKind.QA else "/")

        return await self.pages.guard(request, release, post=True)


def _changes(d: Decision, review: Review) -> JSONObject:
    """The fields an override changed in the model's output (empty for other verdicts)."""
    model = d.model_output or {}
    return {k: v for k, v in (review.output or {}).items() if model.get(k) != v}


def _proposal(d: Decision, agreed: Agreement) -> str:
    """What the earlier verdicts propose, in words: ``override (score = 0.9)``."""
    if agreed.verdict is None:
        return "nothing yet"
    if agreed.verdict is not Verdict.OVERRIDE:
        return agreed.verdict.value
    model = d.model_output or {}
    changed = ", ".join(
        f"{k} = {v}" for k, v in sorted((agreed.output or {}).items()) if model.get(k) != v
    )
    return f"override ({changed})"
