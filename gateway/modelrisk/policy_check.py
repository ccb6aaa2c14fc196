"""``hitl-gateway policy check``'s look at the model inventory: which backends' versions it does
not allow to decide automatically."""

from __future__ import annotations

from gateway.modelrisk.gate import model_key
from gateway.modelrisk.record import ModelStatus
from gateway.policy import PolicySet
from gateway.store import open_store, sqlite_path


async def inventory_warnings(url: str, policies: PolicySet) -> list[str]:
    """What the model inventory says against the policies' backends: versions missing from it
    or not approved (their decisions will be held). Nothing when no store is reachable: the
    default SQLite file is never created for a check."""
    if (url.startswith("sqlite") or "://" not in url) and not sqlite_path(url).exists():
        return []
    try:
        store = open_store(url)
        await store.start()
    except Exception as exc:
        return [f"model inventory not checked: store unreachable ({type(exc).__name__})"]
    try:
        models = {r.key: r for r in await store.list_models()}
    finally:
        await store.stop()
    warnings: list[str] = []
    for backend in sorted(policies.backends.values(), key=lambda b: b.name):
        key = model_key(backend)
        record = models.get(key)
        if record is None and backend.kind == "builtin":
            continue  # a built-in demo model: registered and approved at start
        if record is None:
            warnings.append(
                f"backend {backend.name!r}: model {key} is not in the model inventory; its "
                "decisions will be held for review until it is registered, validated and "
                "approved (hitl-gateway models register ...)"
            )
        elif record.status is not ModelStatus.APPROVED:
            warnings.append(
                f"backend {backend.name!r}: model {key} is {record.status.value} in the model "
                "inventory; its decisions will be held for review"
            )
    return warnings
