"""Repair jobs: recompute every stored total from its source, under the same row locks as the core.

- `reserved` of a stock row = Σ open reservation lines on it;
- `on_hand` of a stock row = Σ journal movements (the journal is the ledger of record).

A mismatch means a bug or a manual edit; the repair logs what it changed in the audit log, and
publishes the level of every channel the corrected totals change, as the core would: else the
shops sell from the old figures until the SKU next moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.core.batch import publish_levels
from hub.domain.allocation import Rule
from hub.domain.stockbook import StockBook, StockRow
from hub.store import locks
from hub.store.models import Movement, Reservation, Stock
from schemas.base import now_utc


@dataclass(frozen=True)
class Fix:
    sku: str
    location: str
    field: str
    stored: int
    recomputed: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Repair:
    fixes: list[Fix] = field(default_factory=list)
    levels_published: int = 0
    # Rows whose journal holds fewer units than their open reservations: correcting their on
    # hand would oversell, so it is left as stored and named, for a person to decide.
    held_back: list[Fix] = field(default_factory=list)


async def repair_stock(
    session: AsyncSession,
    *,
    fix: bool,
    actor: str = "cli",
    rules: Mapping[str, Rule] | None = None,
) -> Repair:
    """Find (and with `fix`, correct) stored totals that disagree with their source; with
    `fix`, publish the channels' levels (`rules`) that the corrections change. Run inside a
    transaction; takes the stock row locks like the core."""
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
    held_back: list[Fix] = []
    book = StockBook({}, {})
    for r in rows:
        key = (r.sku, r.location)
        want_on_hand, want_reserved = journal.get(key, 0), held.get(key, 0)
        if want_reserved > 0 and want_reserved > want_on_hand:
            # The stored on hand stays (the reservations rely on it); its reserved counter is
            # still checked, and fixed where the stored on hand covers it.
            held_back.append(Fix(r.sku, r.location, "on_hand", r.on_hand, want_on_hand))
            want_on_hand = r.on_hand
            if want_reserved > r.on_hand:  # nor can the reserved counter be set: named too
                if r.reserved != want_reserved:
                    held_back.append(Fix(r.sku, r.location, "reserved", r.reserved, want_reserved))
                continue
        if r.on_hand != want_on_hand:
            fixes.append(Fix(r.sku, r.location, "on_hand", r.on_hand, want_on_hand))
        if r.reserved != want_reserved:
            fixes.append(Fix(r.sku, r.location, "reserved", r.reserved, want_reserved))
        book.stock[key] = StockRow(
            r.sku, r.location, want_on_hand, want_reserved, r.inbound, r.safety_stock, r.avg_cost
        )
        if fix and (r.on_hand != want_on_hand or r.reserved != want_reserved):
            book.touched.add(r.sku)
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
    published = await publish_levels(session, book, rules, now_utc()) if rules else 0
    return Repair(fixes, published, held_back)
