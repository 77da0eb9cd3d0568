"""Tables of purchasing, on the hub's shared metadata. Migration: `0003_purchasing`.

A policy says when and how much to order per (SKU, location); a PO and its lines record what was
ordered, confirmed, shipped, received and invoiced; an invoice keeps its match result and the
reasons it is held. PO numbers come from `po_sequence`, a counter row that is only ever
incremented inside the transaction that stores the PO, so a number is never handed out twice.

Migration `0004_dropship_presale`: SKUs sold from a supplier's stock feed (`dropship_items`, with
the newest report applied) and the share of confirmed inbound stock a SKU may be presold against
(`presale_items`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, Index, Integer, Numeric, String, func
from sqlalchemy.orm import Mapped, mapped_column

from hub.store.models import Base


class Supplier(Base):
    """A supplier the hub orders from; `supplier` is the id its messages carry."""

    __tablename__ = "suppliers"

    supplier: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    account: Mapped[str] = mapped_column(String(64), default="")  # connector account
    mode: Mapped[str] = mapped_column(String(8), default="auto")  # auto | approve
    currency: Mapped[str] = mapped_column(String(3), default="CNY")


class ReplenishmentPolicy(Base):
    """When to order a SKU at a location, how much, and from whom. `reorder_point` None with
    `auto_reorder` set: computed from sales over `demand_window_days` (cached per day)."""

    __tablename__ = "replenishment_policies"

    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    supplier: Mapped[str] = mapped_column(String(64))
    reorder_point: Mapped[int | None] = mapped_column(Integer, default=None)
    auto_reorder: Mapped[bool] = mapped_column(default=False)
    service_level: Mapped[Decimal] = mapped_column(default=Decimal("0.95"))
    demand_window_days: Mapped[int] = mapped_column(Integer, default=28)
    auto_reorder_point: Mapped[int | None] = mapped_column(Integer, default=None)
    auto_computed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    order_up_to: Mapped[int] = mapped_column(Integer)
    safety_stock: Mapped[int] = mapped_column(Integer, default=0)
    max_stock: Mapped[int | None] = mapped_column(Integer, default=None)
    lead_time_days: Mapped[int] = mapped_column(Integer, default=7)
    pack_size: Mapped[int] = mapped_column(Integer, default=1)
    min_order_quantity: Mapped[int] = mapped_column(Integer, default=1)
    mode: Mapped[str | None] = mapped_column(String(8), default=None)  # None: the supplier's
    unit_price: Mapped[Decimal] = mapped_column(default=Decimal(0))
    supplier_sku: Mapped[str | None] = mapped_column(String(48), default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PurchaseOrderRow(Base):
    """suggested (waiting for approval) → issued → acknowledged | rejected → in_transit →
    partially_received → closed; or cancelled."""

    __tablename__ = "purchase_orders"
    __table_args__ = (Index("ix_purchase_orders_status", "status"),)

    po_number: Mapped[str] = mapped_column(String(22), primary_key=True)
    supplier: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    ship_to: Mapped[str] = mapped_column(String(64))
    expected_delivery: Mapped[dt.date] = mapped_column(Date)
    issued_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    acknowledgement_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # When the supplier wrote the acknowledgement applied last: an older revision is not applied.
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    approved_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[dt.datetime] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PurchaseOrderLineRow(Base):
    """One line. `open` is true while units are still expected (or the line awaits approval);
    the replenishment rule issues no second line for a SKU and location while one is open."""

    __tablename__ = "purchase_order_lines"
    __table_args__ = (Index("ix_purchase_order_lines_open", "sku", "location", "open"),)

    po_number: Mapped[str] = mapped_column(String(22), primary_key=True)
    line_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    supplier_sku: Mapped[str | None] = mapped_column(String(48), default=None)
    status: Mapped[str] = mapped_column(String(16))  # receiving.LineStatus values
    open: Mapped[bool] = mapped_column(default=True)
    closed: Mapped[bool] = mapped_column(default=False)
    ordered: Mapped[int] = mapped_column(Integer)
    confirmed: Mapped[int] = mapped_column(Integer)
    shipped: Mapped[int] = mapped_column(Integer, default=0)
    received: Mapped[int] = mapped_column(Integer, default=0)
    invoiced: Mapped[int] = mapped_column(Integer, default=0)
    unit_price: Mapped[Decimal] = mapped_column()
    confirmed_price: Mapped[Decimal | None] = mapped_column(default=None)
    expected_delivery: Mapped[dt.date] = mapped_column(Date)
    over_delivered: Mapped[int] = mapped_column(Integer, default=0)
    under_delivered: Mapped[int] = mapped_column(Integer, default=0)


class ShipmentRow(Base):
    """An advance ship notice as received: goods on their way for a PO. One shipment may carry
    several POs' goods (an 856 with an order level per PO): each is a row of its own."""

    __tablename__ = "po_shipments"

    supplier: Mapped[str] = mapped_column(String(64), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    po_number: Mapped[str] = mapped_column(String(22), primary_key=True)
    shipped_at: Mapped[dt.datetime] = mapped_column()
    expected_delivery: Mapped[dt.date | None] = mapped_column(Date, default=None)
    carrier: Mapped[str] = mapped_column(String(64), default="")
    tracking_number: Mapped[str] = mapped_column(String(64), default="")
    lines: Mapped[list[Any]] = mapped_column()


class PoReceiptRow(Base):
    """A goods receipt put on a PO: which lines it filled, and what it brought beyond them. One
    receipt may bring a SKU to several locations: each is a row of its own."""

    __tablename__ = "po_receipts"

    po_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    over_delivered: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[list[Any]] = mapped_column()  # [[line number, units], …]
    received_at: Mapped[dt.datetime] = mapped_column()


class SupplierInvoiceRow(Base):
    """A supplier invoice and its 3-way match: matched (and booked) or held with reasons."""

    __tablename__ = "supplier_invoices"
    __table_args__ = (
        Index("ix_supplier_invoices_po", "po_number"),
        Index("ix_supplier_invoices_status", "status"),
    )

    supplier: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    po_number: Mapped[str] = mapped_column(String(22))
    status: Mapped[str] = mapped_column(String(16), default="held")  # matched | held
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column()
    tax: Mapped[Decimal] = mapped_column()
    charges: Mapped[Decimal] = mapped_column()
    total: Mapped[Decimal] = mapped_column()
    price_variance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    reasons: Mapped[list[Any]] = mapped_column()  # [{"reason", "sku", "detail"}, …]
    document: Mapped[dict[str, Any]] = mapped_column()  # the invoice as received, to match again
    voucher_id: Mapped[str | None] = mapped_column(String(64), default=None)
    invoiced_at: Mapped[dt.datetime] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    # Who accepted its prices and charges while goods were still missing: the match on their
    # arrival accepts them too.
    accepted_by: Mapped[str | None] = mapped_column(String(64), default=None)
    accepted_variance: Mapped[Decimal | None] = mapped_column(default=None)  # what they saw


class DropshipItem(Base):
    """A SKU the supplier's stock feed may sell (location `dropship.{supplier}`). The newest
    report applied is kept: an older one (by `reported_at`) arriving later is ignored."""

    __tablename__ = "dropship_items"

    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    supplier: Mapped[str] = mapped_column(String(64), primary_key=True)
    supplier_sku: Mapped[str | None] = mapped_column(String(48), default=None)
    reported_quantity: Mapped[int | None] = mapped_column(Integer, default=None)
    reported_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    report_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PresaleItem(Base):
    """A SKU that may be sold against confirmed inbound stock: at most `share` of it."""

    __tablename__ = "presale_items"
    __table_args__ = (CheckConstraint("share >= 0 AND share <= 1", name="ck_presale_items_share"),)

    sku: Mapped[str] = mapped_column(String(128), primary_key=True)
    share: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PoSequence(Base):
    """The next PO number per prefix; incremented in the transaction that stores the PO."""

    __tablename__ = "po_sequence"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer)
