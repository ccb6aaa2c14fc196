"""Live pages are told to read everything again when changes may have been missed."""

from __future__ import annotations

from gateway.core.notifier import REFRESH, Notifier


def test_refresh_reaches_live_pages_only() -> None:
    """refresh_all wakes subscribe_all queues, not callers waiting on one decision."""
    notifier = Notifier()
    with notifier.subscribe("dec-1") as one, notifier.subscribe_all() as page:
        notifier.refresh_all()
        assert page.get_nowait() is REFRESH
        assert one.empty()


def test_refresh_never_grows_a_full_page_queue() -> None:
    """A page whose queue is full (it will catch up anyway) gets nothing more."""
    notifier = Notifier()
    with notifier.subscribe_all(maxsize=1) as page:
        notifier.refresh_all()
        notifier.refresh_all()
        assert page.qsize() == 1
