"""The review and QA queues, and the event stream that tells an open queue page to refresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.core.notifier import Notifier
from gateway.core.queue import ReviewQueue
from gateway.errors import InvalidInput
from gateway.policy import PolicySet
from gateway.types import Account, TaskKind
from reviewer_ui.protocol import Pages
from reviewer_ui.sessions import Session

KEEP_ALIVE = 15.0
"""Seconds between comments on an idle event stream, so proxies do not close it."""


def queue_routes(
    pages: Pages, queue: ReviewQueue, policies: Callable[[], PolicySet], notifier: Notifier
) -> list[Route]:
    """The queue routes, to register inside the UI app (under its prefix)."""
    routes = _QueueRoutes(pages, queue, policies, notifier)
    return [
        Route("/", routes.decisions, methods=["GET"]),
        Route("/qa", routes.qa, methods=["GET"]),
        Route("/events", routes.events, methods=["GET"]),
    ]


def parse_cursor(text: str) -> tuple[str, int, int] | None:
    """The queue position a page's "next" link carries (``deadline|tier rank|task id``), if any."""
    if not text:
        return None
    parts = text.split("|")
    try:
        if len(parts) != 3:
            raise ValueError
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        raise InvalidInput("after", "not a queue position from this page") from None


class _QueueRoutes:
    def __init__(
        self,
        pages: Pages,
        queue: ReviewQueue,
        policies: Callable[[], PolicySet],
        notifier: Notifier,
    ) -> None:
        self.pages = pages
        self.queue = queue
        self.policies = policies
        self.notifier = notifier

    async def decisions(self, request: Request) -> Response:
        return await self.pages.guard(
            request, lambda r, s, a: self._page(r, s, a, TaskKind.DECISION)
        )

    async def qa(self, request: Request) -> Response:
        return await self.pages.guard(request, lambda r, s, a: self._page(r, s, a, TaskKind.QA))

    async def _page(
        self, request: Request, session: Session, account: Account, kind: TaskKind
    ) -> Response:
        q = request.query_params
        app_filter, tier_filter = q.get("app", ""), q.get("tier", "")
        page = await self.queue.page(
            account,
            kind,
            application=app_filter,
            tier=tier_filter,
            after=parse_cursor(q.get("after", "")),
        )
        params = {k: v for k, v in (("app", app_filter), ("tier", tier_filter)) if v}
        next_url = None
        if page.next is not None:
            after = "|".join(str(p) for p in page.next)
            next_url = f"?{urlencode({**params, 'after': after})}"
        # The script asks for the rows alone when the event stream says the queue changed.
        template = "_rows.html" if q.get("partial") == "1" else "queue.html"
        return self.pages.render(
            request,
            session,
            template,
            account=account,
            kind=kind.value,
            page=page,
            total=sum(page.counts.values()),
            next_url=next_url,
            app_filter=app_filter,
            tier_filter=tier_filter,
            applications=sorted(self.policies().applications),
            # Reject tiers never hold a decision for review, so they are no filter.
            tiers=[t.name for t in self.policies().tiers if not t.reject],
        )

    async def events(self, request: Request) -> Response:
        async def stream(r: Request, s: Session, a: Account) -> Response:
            return StreamingResponse(
                self._changes(),
                media_type="text/event-stream",
                headers={"cache-control": "no-store", "x-accel-buffering": "no"},
            )

        return await self.pages.guard(request, stream)

    async def _changes(self) -> AsyncIterator[str]:
        # Only "something changed" goes out: the page fetches what this reviewer may see.
        yield "retry: 3000\n\n"
        with self.notifier.subscribe_all() as changes:
            while True:
                try:
                    async with asyncio.timeout(KEEP_ALIVE):
                        change = await changes.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if change is None:
                    return
                while not changes.empty():  # coalesce a burst into one refresh
                    if changes.get_nowait() is None:
                        return
                yield "event: queue\ndata: changed\n\n"
