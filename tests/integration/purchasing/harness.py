"""What the core does around the purchasing hooks, done here by hand so that the tests do not
depend on how the core calls them: lock the SKUs' stock rows, call the hook with the locked rows,
write back the rows it changed and the envelopes it returned, in one transaction.

The hooks are idempotent, so the tests hold whether or not the core calls them too: they assert
what is stored (lines, inbound, the outbox), not which call returned the message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.core.batch import CoreProcessor, outbox_row
from hub.domain.allocation import Rule
from hub.domain.stockbook import StockRow
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.purchasing import service
from hub.purchasing.tables import PurchaseOrderLineRow, PurchaseOrderRow, SupplierInvoiceRow
from hub.store import locks
from hub.store.models import OutboxRow, Stock
from schemas.envelope import Envelope, decode, message_id
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    InvoiceLine,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    PurchaseOrderIssued,
    ShipmentNotified,
    ShippedLine,
    SupplierInvoiceReceived,
)
from schemas.stock import GoodsReceived
from tests.builders import counted, fulfil, place, records

Sessions = async_sessionmaker[AsyncSession]
CHART = CN_SMALL_BUSINESS
RULES = {"online": Rule()}
T = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
D = Decimal


def _rows(locked: Iterable[Any]) -> dict[tuple[str, str], StockRow]:
    return {
        (r.sku, r.location): StockRow(
            r.sku, r.location, r.on_hand, r.reserved, r.inbound, r.safety_stock, r.avg_cost
        )
        for r in locked
    }


async def _write(s: AsyncSession, rows: dict[tuple[str, str], StockRow], envs: list[Envelope]):
    for r in rows.values():
        if r.dirty:
            await s.execute(
                Stock.__table__.update()
                .where(Stock.sku == r.sku, Stock.location == r.location)
                .values(inbound=r.inbound)
            )
    if envs:
        await s.execute(insert(OutboxRow), [outbox_row(e) for e in envs])


async def replenish_step(sessions: Sessions, skus: set[str], *, pause: float = 0) -> list[Envelope]:
    async with sessions() as s, s.begin():
        rows = _rows(await locks.lock_stock(s, skus))
        await asyncio.sleep(pause)  # widen the window a racing transaction could use
        envs = await service.replenish(s, rows, skus, T)
        await _write(s, rows, envs)
    return envs


async def handle_step(sessions: Sessions, env: Envelope, *, chart: Any = CHART) -> list[Envelope]:
    async with sessions() as s, s.begin():
        skus = await service.skus_of(s, [env.data])
        rows = _rows(await locks.lock_stock(s, skus))
        handled = await service.handle(s, env, chart)
        assert service.apply_inbound(rows, handled.inbound) == []
        await _write(s, rows, handled.envelopes)
    return handled.envelopes


async def receipt_step(sessions: Sessions, env: Envelope, *, chart: Any = CHART) -> None:
    """The core's own receipt (on_hand, inbound, journal, GRNI voucher), then the PO's lines."""
    await CoreProcessor(sessions, RULES, chart=chart).process(records(env))
    assert isinstance(env.data, GoodsReceived)
    async with sessions() as s, s.begin():
        await locks.lock_stock(s, {env.data.sku})
        await service.on_receipt(s, env.data)


async def seed_and_sell(sessions: Sessions, sku: str, stock: int, sold: int, tag: str = "o"):
    """Count `stock` units in, then sell `sold` units one order at a time (placed + fulfilled)."""
    p = CoreProcessor(sessions, RULES)
    envs = [counted(sku, stock, cid=f"seed-{sku}")]
    for i in range(sold):
        key = f"shop:{tag}{i}"
        envs += [place(key, [(sku, 1)]), fulfil(key, [(sku, 1)])]
    await p.process(records(*envs))
    return envs


async def stock_of(sessions: Sessions, sku: str) -> Stock:
    async with sessions() as s:
        return (await s.execute(select(Stock).where(Stock.sku == sku))).scalar_one()


async def lines_of(sessions: Sessions, sku: str) -> list[PurchaseOrderLineRow]:
    async with sessions() as s:
        q = select(PurchaseOrderLineRow).where(PurchaseOrderLineRow.sku == sku)
        return list((await s.execute(q)).scalars().all())


async def po(sessions: Sessions, number: str) -> PurchaseOrderRow:
    async with sessions() as s:
        row = await s.get(PurchaseOrderRow, number)
        assert row is not None
        return row


async def invoice_row(sessions: Sessions, number: str) -> SupplierInvoiceRow:
    async with sessions() as s:
        row = await s.get(SupplierInvoiceRow, ("acme-supply", number))
        assert row is not None
        return row


async def outbox_count(sessions: Sessions, ce_type: str) -> int:
    async with sessions() as s:
        rows = (await s.execute(select(OutboxRow.headers))).scalars().all()
    return sum(1 for h in rows if ["ce_type", ce_type] in h)


async def issued(sessions: Sessions) -> list[PurchaseOrderIssued]:
    """The PurchaseOrderIssued messages in the outbox, oldest first."""
    async with sessions() as s:
        rows = (await s.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    found = []
    for r in rows:
        env = decode([(k, v.encode()) for k, v in r.headers], r.payload)
        if isinstance(env.data, PurchaseOrderIssued):
            found.append(env.data)
    return found


async def count(sessions: Sessions, model: Any) -> int:
    async with sessions() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


def _env(msg: Any, *parts: str) -> Envelope:
    return Envelope(id=message_id("test/supplier", *parts), source="test/supplier", data=msg)


def ack(po_number: str, sku: str, quantity: int, status: LineAckStatus) -> Envelope:
    return _env(
        PurchaseOrderAcknowledged(
            po_number=po_number,
            supplier="acme-supply",
            acknowledgement_id=f"ACK-{po_number}",
            acknowledged_at=T,
            status=AckStatus.ACCEPTED_WITH_CHANGES,
            lines=(AcknowledgedLine(line_number=1, sku=sku, status=status, quantity=quantity),),
        ),
        "ack",
        po_number,
    )


def asn(po_number: str, sku: str, quantity: int, sid: str = "ASN-1") -> Envelope:
    return _env(
        ShipmentNotified(
            po_number=po_number,
            supplier="acme-supply",
            shipment_id=sid,
            shipped_at=T,
            expected_delivery=T.date(),
            lines=(ShippedLine(line_number=1, sku=sku, quantity=quantity),),
        ),
        "asn",
        sid,
        po_number,
    )


def receipt(
    po_number: str, sku: str, quantity: int, rid: str = "GRN-1", location: str = "main"
) -> Envelope:
    return _env(
        GoodsReceived(
            sku=sku,
            location=location,
            quantity=quantity,
            unit_cost=D("8.50"),
            receipt_id=rid,
            po_number=po_number,
            received_at=T,
        ),
        "receipt",
        rid,
        location,
    )


def invoice(
    po_number: str, sku: str, quantity: int, price: str, number: str, charges: str = "0"
) -> Envelope:
    subtotal = D(price) * quantity
    return _env(
        SupplierInvoiceReceived(
            po_number=po_number,
            supplier="acme-supply",
            invoice_number=number,
            invoiced_at=T,
            currency="CNY",
            lines=(InvoiceLine(line_number=1, sku=sku, quantity=quantity, unit_price=D(price)),),
            subtotal=subtotal,
            charges=D(charges),
            total=subtotal + D(charges),
        ),
        "invoice",
        number,
    )
