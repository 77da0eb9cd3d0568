"""Builders of canonical messages and Kafka records for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

from hub.core.records import Record
from schemas import (
    Envelope,
    FulfilledLine,
    GoodsReceived,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
    OrderReopened,
    OrderReturned,
    ReturnedLine,
    StockAdjusted,
    StockCounted,
    message_id,
)
from schemas.levels import StockLevelChanged
from schemas.stock import AdjustmentReason

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
_offsets = count()


def _acct(key: str) -> str:
    return key.split(":")[0]


def place(
    key: str,
    lines: list[tuple[str, int]] | list[tuple[str, int, str]],
    channel: str = "online",
    location: str = "main",
) -> Envelope:
    """An order of `lines`, each (SKU, units) at `location` or (SKU, units, its location)."""
    return Envelope(
        id=message_id(key, "placed"),
        source="test",
        data=OrderPlaced(
            order_key=key,
            account=_acct(key),
            channel=channel,
            platform_order_id=key.split(":")[1],
            placed_at=T0,
            currency="CNY",
            lines=tuple(
                OrderLine(
                    sku=s,
                    quantity=q,
                    location=at[0] if at else location,
                    unit_price=Decimal("10.00"),
                )
                for s, q, *at in lines
            ),
            total=Decimal("10.00") * sum(line[1] for line in lines),
        ),
    )


def cancel(key: str, channel: str = "online", at: datetime = T0) -> Envelope:
    return Envelope(
        id=message_id(key, "cancelled", *([at.isoformat()] if at != T0 else [])),
        source="test",
        data=OrderCancelled(order_key=key, account=_acct(key), channel=channel, cancelled_at=at),
    )


def reopen(key: str, at: datetime, channel: str = "online") -> Envelope:
    return Envelope(
        id=message_id(key, "reopened", at.isoformat()),
        source="test",
        data=OrderReopened(order_key=key, account=_acct(key), channel=channel, reopened_at=at),
    )


def fulfil(
    key: str,
    lines: list[tuple[str, int]],
    fid: str = "F1",
    channel: str = "online",
    location: str = "main",
) -> Envelope:
    return Envelope(
        id=message_id(key, "fulfilled", fid),
        source="test",
        data=OrderFulfilled(
            order_key=key,
            account=_acct(key),
            channel=channel,
            fulfilment_id=fid,
            fulfilled_at=T0,
            lines=tuple(FulfilledLine(sku=s, quantity=q, location=location) for s, q in lines),
        ),
    )


def ret(
    key: str,
    lines: list[tuple[str, int, bool]],
    rid: str = "R1",
    channel: str = "online",
    shipped: bool | None = None,
) -> Envelope:
    return Envelope(
        id=message_id(key, "returned", rid),
        source="test",
        data=OrderReturned(
            order_key=key,
            account=_acct(key),
            channel=channel,
            return_id=rid,
            returned_at=T0,
            lines=tuple(
                ReturnedLine(sku=s, quantity=q, restock=r, shipped=shipped) for s, q, r in lines
            ),
        ),
    )


def counted(sku: str, qty: int, cid: str = "c1", location: str = "main") -> Envelope:
    return Envelope(
        id=message_id("count", cid, sku, location),
        source="test",
        data=StockCounted(sku=sku, quantity=qty, count_id=cid, location=location, counted_at=T0),
    )


def adjusted(sku: str, delta: int, aid: str = "a1") -> Envelope:
    return Envelope(
        id=message_id("adjust", aid, sku),
        source="test",
        data=StockAdjusted(
            sku=sku, delta=delta, reason=AdjustmentReason.DAMAGED, adjustment_id=aid, adjusted_at=T0
        ),
    )


def received(sku: str, qty: int, cost: str, rid: str = "g1") -> Envelope:
    return Envelope(
        id=message_id("receipt", rid, sku),
        source="test",
        data=GoodsReceived(
            sku=sku, quantity=qty, unit_cost=Decimal(cost), receipt_id=rid, received_at=T0
        ),
    )


def stock_level(
    sku: str, available: int, version: int, channel: str = "online"
) -> StockLevelChanged:
    return StockLevelChanged(
        sku=sku,
        channel=channel,
        available=available,
        on_hand=available,
        reserved=0,
        version=version,
        changed_at=T0,
    )


def record(env: Envelope, partition: int = 0) -> Record:
    return Record(
        topic=env.topic,
        partition=partition,
        offset=next(_offsets),
        key=env.key.encode(),
        value=env.body(),
        headers=tuple(env.headers()),
    )


def records(*envs: Envelope) -> list[Record]:
    return [record(e) for e in envs]
