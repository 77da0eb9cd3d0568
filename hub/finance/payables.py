"""The payable side: goods received not invoiced (GRNI) per purchase order and SKU, cleared by
the supplier's invoice at exactly what the receipts booked.

A receipt on a PO credits GRNI with quantity × unit cost (`rules.goods_received`) and adds that
to the PO's GRNI row. An invoice line takes its units out of the row at the row's average —
cumulatively, so the last unit takes what is left and a fully invoiced PO leaves GRNI at exactly
zero — and what the supplier charges beyond that is purchase price variance. Units invoiced
beyond what was received clear nothing (the 3-way match holds such invoices before they get here).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from hub.finance import billing, rules
from hub.finance.chart import Chart, Role
from hub.finance.ledger import from_minor, insert, to_minor
from hub.finance.tables import GoodsReceivedNotInvoiced
from schemas.finance import VoucherIssued
from schemas.purchasing import SupplierInvoiceReceived
from schemas.stock import GoodsReceived


async def note_receipt(
    session: AsyncSession, chart: Chart, msg: GoodsReceived, voucher: VoucherIssued | None
) -> None:
    """Add a receipt's GRNI credit to its purchase order's row (receipts without a PO: none)."""
    if not msg.po_number:
        return
    grni = chart[Role.GRNI].code
    credit = sum(
        (line.credit for line in (voucher.lines if voucher else ()) if line.account == grni),
        Decimal(0),
    )
    minor = to_minor(credit, msg.currency)
    ins = insert(session, GoodsReceivedNotInvoiced).values(
        po_number=msg.po_number,
        sku=msg.sku,
        currency=msg.currency,
        received_qty=msg.quantity,
        received_minor=minor,
        invoiced_qty=0,
        invoiced_minor=0,
    )
    await session.execute(
        ins.on_conflict_do_update(
            index_elements=["po_number", "sku"],
            set_={
                "received_qty": GoodsReceivedNotInvoiced.received_qty + msg.quantity,
                "received_minor": GoodsReceivedNotInvoiced.received_minor + minor,
            },
        )
    )


async def invoice_voucher(
    session: AsyncSession, chart: Chart, msg: SupplierInvoiceReceived
) -> VoucherIssued | None:
    """The voucher of a supplier invoice the 3-way match accepted: Dr GRNI (its units at receipt
    cost), Dr input VAT / Cr payable (total), price variance for the rest. None if booked before.
    """
    if msg.currency != chart.currency:
        raise rules.CurrencyMismatch(
            f"invoice in {msg.currency}: the books are kept in {chart.currency}"
        )
    cause_ref = f"{msg.supplier}:{msg.invoice_number}"
    if not await billing.first_time(session, rules.voucher_id("supplier_invoice", cause_ref)):
        return None
    cur = msg.currency
    received = 0
    for line in msg.lines:
        row = await session.get(GoodsReceivedNotInvoiced, (msg.po_number, line.sku))
        if row is None or row.currency != cur:
            continue
        open_qty = row.received_qty - row.invoiced_qty
        take = min(line.quantity, max(open_qty, 0))
        if take == 0:
            continue
        open_minor = row.received_minor - row.invoiced_minor
        value = (
            open_minor
            if take == open_qty
            else int((Decimal(open_minor) * take / open_qty).to_integral_value(ROUND_HALF_UP))
        )
        row.invoiced_qty += take
        row.invoiced_minor += value
        received += value
    await session.flush()
    return rules.supplier_invoice(
        chart,
        invoice_id=msg.invoice_number,
        supplier=msg.supplier,
        at=msg.invoiced_at,
        currency=cur,
        received_value=from_minor(received, cur),
        net=msg.subtotal + msg.charges,
        vat=msg.tax,
    )
