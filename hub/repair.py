"""Repair jobs: recompute every stored total from its source, under the same row locks as the core.

- `reserved` of a stock row = Σ open reservation lines on it;
- `on_hand` of a stock row = Σ journal movements (the journal is the ledger of record).

A mismatch means a bug or a manual edit; the repair logs what it changed in the audit log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.store import locks
from hub.store.models import Movement, Reservation, Stock


@dataclass(frozen=True)
class Fix:
    sku: str
    location: str
    field: str
    stored: int
    recomputed: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def repair_stock(session: AsyncSession, *, fix: bool, actor: str = "cli") -> list[Fix]:
    """Find (and with `fix`, correct) stored totals that disagree with their source. Run inside
    a transaction; takes the stock row locks like the core."""
    skus = (await session.execute(select(Stock.sku).distinct())).scalars().all()
    rows = await locks.lock_stock(session, skus)
    journal = {
        (r.sku, r.location): int(r.total)
        for r in (
            await session.execute(
                select(
                    Movement.sku, Movement.location, func.sum(Movement.delta).label("total")
                ).group_by(Movement.sku, Movement.location)
            )
        ).all()
    }
    held = {
        (r.sku, r.location): int(r.total)
        for r in (
            await session.execute(
                select(
                    Reservation.sku, Reservation.location, func.sum(Reservation.open).label("total")
                ).group_by(Reservation.sku, Reservation.location)
            )
        ).all()
    }
    fixes: list[Fix] = []
    for r in rows:
        key = (r.sku, r.location)
        want_on_hand, want_reserved = journal.get(key, 0), held.get(key, 0)
        if r.on_hand != want_on_hand:
            fixes.append(Fix(r.sku, r.location, "on_hand", r.on_hand, want_on_hand))
        if r.reserved != want_reserved:
            fixes.append(Fix(r.sku, r.location, "reserved", r.reserved, want_reserved))
        if fix and (r.on_hand != want_on_hand or r.reserved != want_reserved):
            await session.execute(
                update(Stock)
                .where(Stock.sku == r.sku, Stock.location == r.location)
                .values(on_hand=want_on_hand, reserved=want_reserved)
            )
    if fix and fixes:
        await record(
            session,
            actor,
            "stock.repair",
            f"{len(fixes)} totals",
            before={"fixes": [f.as_json() for f in fixes]},
        )
    return fixes
