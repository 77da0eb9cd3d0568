"""Audit log of operator actions: who, what, when, before and after."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store import locks
from hub.store.db import stored_utc
from hub.store.models import AuditEntry, Stock


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit row inside the caller's transaction."""
    session.add(
        AuditEntry(actor=actor, action=action, target=target[:200], before=before, after=after)
    )


async def entries(
    session: AsyncSession,
    *,
    limit: int = 100,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    """The newest audit rows first (optionally of one actor or action), as JSON-ready dicts."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor is not None:
        q = q.where(AuditEntry.actor == actor)
    if action is not None:
        q = q.where(AuditEntry.action == action)
    return [
        {
            "id": e.id,
            "at": _utc(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "before": e.before,
            "after": e.after,
        }
        for e in (await session.execute(q)).scalars()
    ]


async def on_hand_of(session: AsyncSession, keys: Iterable[str]) -> dict[str, int | None]:
    """On hand per `sku@location` key, None where the hub has no such stock row: the `before`
    of a stocktake."""
    wanted = {tuple(k.rsplit("@", 1)): k for k in keys}
    found: dict[str, int | None] = dict.fromkeys(wanted.values())
    skus = sorted({sku for sku, _ in wanted})
    for part in locks.chunks(skus):  # a whole store's count is more than a statement binds
        rows = await session.execute(
            select(Stock.sku, Stock.location, Stock.on_hand).where(
                locks.one_of(session, Stock.sku, part)
            )
        )
        for sku, location, on_hand in rows:
            if (sku, location) in wanted:
                found[wanted[(sku, location)]] = on_hand
    return found


def _utc(t: datetime | None) -> str | None:
    """SQLite hands back the server default as a naive UTC time."""
    return None if t is None else stored_utc(t).isoformat()
