"""`hub demo`, the supplier part: low stock orders from a simulated supplier, who acknowledges,
ships and invoices; the receipt restocks and the invoice is matched and booked.

Everything goes through Kafka as in production: sales and the receipt as a shop and a warehouse
would publish them, the supplier's documents as its connector would (`supplier_rest.mapping`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.supplier_rest.mapping import to_envelope
from hub.finance.tables import VoucherRow
from hub.purchasing import service
from hub.purchasing.tables import PurchaseOrderLineRow, PurchaseOrderRow, SupplierInvoiceRow
from hub.store.models import Stock
from schemas.base import now_utc
from schemas.envelope import Envelope, message_id
from schemas.orders import FulfilledLine, OrderFulfilled, OrderLine, OrderPlaced
from schemas.purchasing import (
    AcknowledgedLine,
    AckStatus,
    InvoiceLine,
    LineAckStatus,
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    ShippedLine,
    SupplierInvoiceReceived,
)
from schemas.stock import GoodsReceived

SUPPLIER = "demo-supply"
PRICE = Decimal("8.50")
REORDER_POINT, ORDER_UP_TO, PACK = 10, 40, 6
SEED, SOLD = 20, 12
T = TypeVar("T")


def restock_sku(run_id: str) -> str:
    """The SKU the supplier flow sells and restocks (list it on the demo shops too)."""
    return f"RESTOCK-{run_id}"


def _sale(run_id: str, sku: str, n: int) -> list[Envelope]:
    key = f"acme:restock-{run_id}-{n}"
    placed = OrderPlaced(
        order_key=key,
        account="acme",
        channel="online",
        platform_order_id=f"restock-{run_id}-{n}",
        placed_at=now_utc(),
        currency="CNY",
        lines=(OrderLine(sku=sku, quantity=1, unit_price=Decimal("19.90")),),
        total=Decimal("19.90"),
    )
    fulfilled = OrderFulfilled(
        order_key=key,
        account="acme",
        channel="online",
        fulfilment_id=f"F-{n}",
        fulfilled_at=now_utc(),
        lines=(FulfilledLine(sku=sku, quantity=1),),
    )
    return [
        Envelope(id=message_id("acme", key, "placed"), source="demo/acme", data=placed),
        Envelope(id=message_id("acme", key, "fulfilled"), source="demo/acme", data=fulfilled),
    ]


def _receipt(run_id: str, sku: str, qty: int, po_number: str | None) -> Envelope:
    rid = f"GRN-{run_id}-{po_number or 'seed'}"
    msg = GoodsReceived(
        sku=sku,
        quantity=qty,
        unit_cost=PRICE,
        currency="CNY",
        receipt_id=rid,
        po_number=po_number,
        received_at=now_utc(),
    )
    return Envelope(id=message_id("demo/warehouse", rid, sku), source="demo/warehouse", data=msg)


async def _until(
    rt: Any, probe: Callable[[AsyncSession], Awaitable[T]], ok: Callable[[T], bool], limit: float
) -> T:
    """Poll the store until `ok(probe)` or the time limit; returns the last value either way."""
    start = time.monotonic()
    while True:
        async with rt.sessions() as s:
            value = await probe(s)
        if ok(value) or time.monotonic() - start > limit:
            return value
        await asyncio.sleep(0.1)


async def _stock(s: AsyncSession, sku: str) -> tuple[int, int]:
    row = await s.get(Stock, (sku, "main"))
    return (row.on_hand, row.inbound) if row else (0, 0)


async def _lines(s: AsyncSession, sku: str) -> list[PurchaseOrderLineRow]:
    q = select(PurchaseOrderLineRow).where(PurchaseOrderLineRow.sku == sku)
    return list((await s.execute(q)).scalars().all())


async def _status(s: AsyncSession, po_number: str) -> str | None:
    po = await s.get(PurchaseOrderRow, po_number)
    return po.status if po else None


async def supplier_flow(rt: Any, report: Any, run_id: str, *, limit: float = 30) -> None:
    """Low stock → one PO → acknowledged, shipped, received, invoiced, matched and booked."""
    assert rt.publisher is not None and rt.sessions is not None
    sku = restock_sku(run_id)
    async with rt.sessions() as s, s.begin():
        await service.set_supplier(s, SUPPLIER, name="Demo Supply Co.", mode=service.AUTO)
        await service.set_policy(
            s,
            sku,
            supplier=SUPPLIER,
            reorder_point=REORDER_POINT,
            order_up_to=ORDER_UP_TO,
            pack_size=PACK,
            lead_time_days=3,
            unit_price=PRICE,
        )
    await rt.publisher.publish([_receipt(run_id, sku, SEED, None)])
    await _until(rt, lambda s: _stock(s, sku), lambda v: v[0] == SEED, limit)
    sales = [e for n in range(SOLD) for e in _sale(run_id, sku, n)]
    await rt.publisher.publish(sales)
    lines = await _until(rt, lambda s: _lines(s, sku), bool, limit)
    on_hand, inbound = await _until(
        rt, lambda s: _stock(s, sku), lambda v: v[0] == SEED - SOLD, limit
    )
    # Ordered when projected stock first reached the reorder point: up to the order-up-to
    # level in whole packs, so at least (order-up-to − reorder point).
    ordered = lines[0].ordered if len(lines) == 1 else 0
    report.check(
        "low stock orders once from the supplier",
        len(lines) == 1
        and ordered % PACK == 0
        and ordered >= ORDER_UP_TO - REORDER_POINT
        and inbound == ordered,
        f"{len(lines)} PO line(s) for {sku} at {on_hand} on hand (reorder point "
        f"{REORDER_POINT}): {ordered} ordered, {inbound} inbound",
    )
    if len(lines) != 1:
        return
    expected = ordered
    number = lines[0].po_number
    report.figures["purchase_order"] = f"{number}: {lines[0].ordered} × {sku}"

    # The supplier answers through its connector: acknowledgement, then the ship notice.
    now = now_utc()
    ack = PurchaseOrderAcknowledged(
        po_number=number,
        supplier=SUPPLIER,
        acknowledgement_id=f"ACK-{number}",
        acknowledged_at=now,
        status=AckStatus.ACCEPTED,
        lines=(
            AcknowledgedLine(
                line_number=1, sku=sku, status=LineAckStatus.ACCEPTED, quantity=expected
            ),
        ),
    )
    asn = ShipmentNotified(
        po_number=number,
        supplier=SUPPLIER,
        shipment_id=f"ASN-{number}",
        shipped_at=now,
        expected_delivery=(now + timedelta(days=2)).date(),
        lines=(ShippedLine(line_number=1, sku=sku, quantity=expected),),
    )
    await rt.publisher.publish([to_envelope(ack, supplier=SUPPLIER)])
    await _until(rt, lambda s: _status(s, number), lambda v: v == "acknowledged", limit)
    await rt.publisher.publish([to_envelope(asn, supplier=SUPPLIER)])
    status = await _until(rt, lambda s: _status(s, number), lambda v: v == "in_transit", limit)
    report.check(
        "the supplier's acknowledgement and ship notice reach the PO",
        status == "in_transit",
        f"{number} is {status}",
    )

    # The warehouse receives the shipment against the PO.
    await rt.publisher.publish([_receipt(run_id, sku, expected, number)])
    on_hand, inbound = await _until(
        rt, lambda s: _stock(s, sku), lambda v: v[0] == SEED - SOLD + expected, limit
    )
    status = await _until(rt, lambda s: _status(s, number), lambda v: v == "closed", limit)
    report.check(
        "the receipt restocks and closes the PO",
        on_hand == SEED - SOLD + expected and inbound == 0 and status == "closed",
        f"on hand {on_hand}, inbound {inbound}, {number} {status}",
    )

    # The invoice: matched against the PO's price and the received quantity, then booked.
    amount = PRICE * expected
    inv = SupplierInvoiceReceived(
        po_number=number,
        supplier=SUPPLIER,
        invoice_number=f"INV-{number}",
        invoiced_at=now_utc(),
        currency="CNY",
        lines=(InvoiceLine(line_number=1, sku=sku, quantity=expected, unit_price=PRICE),),
        subtotal=amount,
        total=amount,
    )
    await rt.publisher.publish([to_envelope(inv, supplier=SUPPLIER)])

    async def invoice_state(s: AsyncSession) -> tuple[str | None, bool]:
        row = await s.get(SupplierInvoiceRow, (SUPPLIER, inv.invoice_number))
        if row is None:
            return None, False
        booked = row.voucher_id is not None and await s.get(VoucherRow, row.voucher_id) is not None
        return row.status, booked

    state, booked = await _until(rt, invoice_state, lambda v: v[1], limit)
    report.check(
        "the supplier invoice matches and is booked",
        state == "matched" and booked,
        f"invoice {inv.invoice_number}: {state or 'not received'}, "
        f"{'booked' if booked else 'no voucher'}",
    )
