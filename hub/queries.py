"""Read-side queries shared by the CLI and the HTTP API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.allocation import Level, Rule, channel_available
from hub.store.models import Movement, Reservation, Stock


class UnknownSku(LookupError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku!r}")
        self.sku = sku


async def stock_view(session: AsyncSession, sku: str, rules: dict[str, Rule]) -> dict[str, Any]:
    """`hub stock show SKU --json`: totals first, then per location and per channel."""
    rows = (
        (await session.execute(select(Stock).where(Stock.sku == sku).order_by(Stock.location)))
        .scalars()
        .all()
    )
    if not rows:
        raise UnknownSku(sku)
    locations = [
        {
            "location": r.location,
            "on_hand": r.on_hand,
            "reserved": r.reserved,
            "inbound": r.inbound,
            "safety_stock": r.safety_stock,
            "available": max(0, r.on_hand - r.reserved - r.safety_stock),
            "avg_cost": str(r.avg_cost),
        }
        for r in rows
    ]
    channels = {
        name: {
            "available": channel_available(
                (
                    Level(r.on_hand, r.reserved, r.safety_stock)
                    for r in rows
                    if r.location in rule.locations
                ),
                rule,
            )
        }
        for name, rule in rules.items()
    }
    return {
        "sku": sku,
        "on_hand": sum(r.on_hand for r in rows),
        "reserved": sum(r.reserved for r in rows),
        "inbound": sum(r.inbound for r in rows),
        "locations": locations,
        "channels": channels,
    }


async def invariant_problems(session: AsyncSession) -> list[str]:
    """Every stored total checked against its source: what `hub stock check` reports."""
    problems: list[str] = []
    stock = {(r.sku, r.location): r for r in (await session.execute(select(Stock))).scalars()}
    journal = dict(
        ((r.sku, r.location), int(r.total))
        for r in (
            await session.execute(
                select(
                    Movement.sku, Movement.location, func.sum(Movement.delta).label("total")
                ).group_by(Movement.sku, Movement.location)
            )
        ).all()
    )
    held = dict(
        ((r.sku, r.location), int(r.total))
        for r in (
            await session.execute(
                select(
                    Reservation.sku, Reservation.location, func.sum(Reservation.open).label("total")
                ).group_by(Reservation.sku, Reservation.location)
            )
        ).all()
    )
    for key, row in stock.items():
        if row.reserved < 0 or (row.reserved > 0 and row.reserved > row.on_hand):
            problems.append(f"oversell at {key}: reserved {row.reserved} > on_hand {row.on_hand}")
        if journal.get(key, 0) != row.on_hand:
            problems.append(
                f"journal mismatch at {key}: on_hand {row.on_hand}, "
                f"Σ movements {journal.get(key, 0)}"
            )
        if held.get(key, 0) != row.reserved:
            problems.append(
                f"reserved mismatch at {key}: reserved {row.reserved}, "
                f"Σ open reservations {held.get(key, 0)}"
            )
    for key in set(journal) - set(stock):
        problems.append(f"movements for unknown stock row {key}")
    return problems
