"""Read-side queries shared by the CLI and the HTTP API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.domain.allocation import (
    PRESALE,
    Level,
    Rule,
    channel_available,
    is_dropship,
    is_virtual,
    presale_available,
)
from hub.purchasing.tables import PresaleItem
from hub.store.models import Movement, Reservation, Stock


class UnknownSku(LookupError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku!r}")
        self.sku = sku


async def stock_view(session: AsyncSession, sku: str, rules: dict[str, Rule]) -> dict[str, Any]:
    """`hub stock show SKU --json`: totals first, then per location and per channel.

    The totals count the hub's own locations only; a supplier's reported stock is under
    `dropship` (per supplier location) and backorders against confirmed inbound under `presale`
    (`reserved` there are the backorders). Every location is listed with its `kind`."""
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
            "kind": _kind(r.location),
        }
        for r in rows
    ]
    pre = next((r for r in rows if r.location == PRESALE), None)
    # A share of 0 keeps the backorders taken and offers none (as the core decides).
    closed = (
        pre is not None
        and (await session.scalar(select(PresaleItem.share).where(PresaleItem.sku == sku))) == 0
    )
    presale_level = Level(pre.on_hand, pre.reserved) if pre and not closed else None
    channels: dict[str, dict[str, int]] = {}
    for name, rule in rules.items():
        mine = (
            Level(r.on_hand, r.reserved, r.safety_stock)
            for r in rows
            if rule.sells_from(r.location)
        )
        channels[name] = {"available": channel_available(mine, rule)}
        if rule.presale:  # shown apart from stock, to channels that presell only
            channels[name]["presale_available"] = presale_available(presale_level, rule)
    own = [r for r in rows if not is_virtual(r.location)]
    dropship = [r for r in rows if is_dropship(r.location)]
    return {
        "sku": sku,
        "on_hand": sum(r.on_hand for r in own),
        "reserved": sum(r.reserved for r in own),
        "inbound": sum(r.inbound for r in own),
        "locations": locations,
        "channels": channels,
        "dropship": {
            "on_hand": sum(r.on_hand for r in dropship),
            "reserved": sum(r.reserved for r in dropship),
            "available": sum(max(0, r.on_hand - r.reserved) for r in dropship),
            "suppliers": {
                r.location.removeprefix("dropship."): {
                    "reported": r.on_hand,
                    "reserved": r.reserved,
                }
                for r in dropship
            },
        },
        "presale": {
            "limit": pre.on_hand if pre else 0,
            "backorders": pre.reserved if pre else 0,
            "available": presale_level.available if presale_level else 0,
        },
    }


def _kind(location: str) -> str:
    if location == PRESALE:
        return "presale"
    return "dropship" if is_dropship(location) else "stock"


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
