"""Notifications that leave the gateway: the outbox's delivery task and its senders.

Like `gateway.api`, this is a transport at the edge: it reads the store's outbox
(`gateway.store.outbox`) and speaks HTTP to the outside world; the core never imports it.
"""
