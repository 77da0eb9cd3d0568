"""Receipts on a purchase order credit GRNI; the supplier's invoice clears exactly that, the
rest is price variance, and a fully invoiced PO leaves nothing in GRNI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.finance import events, ledger, payables
from hub.finance.chart import CN_SMALL_BUSINESS
from hub.store.db import session_factory
from schemas.purchasing import InvoiceLine, SupplierInvoiceReceived
from schemas.stock import GoodsReceived

pytestmark = pytest.mark.integration
CHART = CN_SMALL_BUSINESS
T = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
D = Decimal


def receipt(rid: str, qty: int, cost: str) -> GoodsReceived:
    return GoodsReceived(
        sku="TEE",
        quantity=qty,
        unit_cost=D(cost),
        receipt_id=rid,
        po_number="PO-7",
        received_at=T,
    )


def invoice(number: str, qty: int, price: str, tax: str) -> SupplierInvoiceReceived:
    subtotal = D(price) * qty
    return SupplierInvoiceReceived(
        po_number="PO-7",
        supplier="acme-supply",
        invoice_number=number,
        invoiced_at=T,
        currency="CNY",
        lines=(InvoiceLine(sku="TEE", quantity=qty, unit_price=D(price)),),
        subtotal=subtotal,
        tax=D(tax),
        total=subtotal + D(tax),
    )


async def test_invoices_clear_grni_at_receipt_cost_and_book_the_variance(
    engine: AsyncEngine,
) -> None:
    async with session_factory(engine)() as s, s.begin():
        stock = {("TEE", "main"): (0, D(0))}
        for msg, after in (
            (receipt("GRN-1", 2, "3.333333"), (2, D("3.333333"))),
            (receipt("GRN-2", 1, "3.333333"), None),
        ):
            for v in await events.vouchers_for(s, CHART, msg, stock):
                assert await ledger.post(s, v)
            if after:
                stock = {("TEE", "main"): after}
        # GRNI credited 6.67 + 3.33 = 10.00 for 3 units
        first = await payables.invoice_voucher(s, CHART, invoice("INV-1", 2, "3.50", "0.91"))
        second = await payables.invoice_voucher(s, CHART, invoice("INV-2", 1, "3.50", "0.46"))
        assert first is not None and second is not None
        assert await payables.invoice_voucher(s, CHART, invoice("INV-2", 1, "3.50", "0.46")) is None
        for v in (first, second):
            assert await ledger.post(s, v)
        tb = {r.account: r.balance for r in await ledger.trial_balance(s)}
    assert tb["220201"] == 0  # GRNI cleared exactly
    assert tb["2202"] == D("-11.87")  # payable: 7.00 + 0.91 + 3.50 + 0.46
    assert tb["222101"] == D("1.37")
    assert tb["640102"] == D("0.50")  # 10.50 invoiced for goods booked at 10.00
    assert sum(tb.values()) == 0


async def test_one_receipt_filling_two_pos_of_a_sku_books_both_lines(engine: AsyncEngine) -> None:
    """One delivery (GRN-9) brings TEE for PO-7 and PO-8: two receipt lines, as purchasing and
    the stock journal count them, so the inventory holds the value of both; each line booked
    again is a duplicate."""
    first = receipt("GRN-9", 2, "3.00")
    second = first.model_copy(update={"po_number": "PO-8", "quantity": 1})
    async with session_factory(engine)() as s, s.begin():
        stock = {("TEE", "main"): (0, D(0))}
        posted = []
        for msg, after in ((first, (2, D("3.00"))), (second, (3, D("3.00"))), (second, None)):
            for v in await events.vouchers_for(s, CHART, msg, stock):
                posted.append(await ledger.post(s, v))
            if after:
                stock = {("TEE", "main"): after}
        tb = {r.account: r.balance for r in await ledger.trial_balance(s)}
    assert posted.count(True) == 2
    assert tb["220201"] == D("-9.00")  # GRNI: 6.00 for PO-7 and 3.00 for PO-8
    assert sum(tb.values()) == 0
