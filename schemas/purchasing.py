"""Purchasing messages.

Outbound on `hub.purchase-orders.v1` (the core tells supplier connectors what to send):
`PurchaseOrderIssued`, `PurchaseOrderChanged`, `PurchaseOrderCancelled`.

Inbound on `hub.purchasing.v1` (supplier connectors tell the core what the supplier said):
`PurchaseOrderAcknowledged`, `ShipmentNotified`, `SupplierInvoiceReceived`, and the dropship feed
`SupplierStockReported`.

PO messages are keyed by PO number so that everything about one order stays in order; a stock
report concerns no order and is keyed by `{supplier}:{sku}`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PositiveInt, model_validator

from schemas import topics
from schemas.base import (
    MAX_QUANTITY,
    NO_CONTROL,
    Amount,
    CanonicalMessage,
    Currency,
    Location,
    PlatformId,
    Sku,
    Units,
    UnitsOrZero,
    UtcDatetime,
)
from schemas.registry import register

PoNumber = Annotated[
    str,
    Field(
        min_length=1,
        max_length=22,
        pattern=r"^[A-Za-z0-9_.\-/]+$",
        description="Purchase order number; 22 characters at most so that it fits X12 BEG03",
        examples=["PO-2026-0042"],
    ),
]
SupplierId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Configured supplier account the order goes to or the document came from",
        examples=["acme-supply"],
    ),
]
DocumentId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=NO_CONTROL,
        description="The supplier's identifier of the document",
        examples=["ASN-77812"],
    ),
]
LineNumber = Annotated[
    int,
    Field(
        ge=1, le=999_999, description="PO line number (X12 PO101, EDIFACT LIN 1082)", examples=[1]
    ),
]
SupplierSku = Annotated[
    str | None,
    Field(
        max_length=48,
        description="The supplier's own article number for the SKU, when it has one",
        examples=["VND-88-RED-M"],
    ),
]
UnitPrice = Annotated[
    Decimal,
    Field(
        ge=0,
        max_digits=20,
        decimal_places=6,
        description="Price per unit, before tax, in the message's currency; never a float",
        examples=["12.50"],
    ),
]


class PurchaseOrderLine(CanonicalMessage):
    """One ordered SKU."""

    line_number: LineNumber
    sku: Sku
    supplier_sku: SupplierSku = None
    quantity: Units = Field(description="Units ordered", examples=[120])
    unit_price: UnitPrice
    unit_of_measure: str = Field(
        default="EA",
        min_length=2,
        max_length=2,
        description="Unit of measure (X12 355 code, e.g. EA each, CA case)",
        examples=["EA"],
    )


def _unique_lines(lines: tuple[PurchaseOrderLine, ...]) -> None:
    numbers = [line.line_number for line in lines]
    if len(set(numbers)) != len(numbers):
        raise ValueError("line numbers must be unique within a purchase order")


class _PurchaseOrderMessage(CanonicalMessage):
    topic = topics.PURCHASE_ORDERS

    po_number: PoNumber
    supplier: SupplierId

    def kafka_key(self) -> str:
        return self.po_number


class PurchaseOrderIssued(_PurchaseOrderMessage):
    """The hub orders goods from a supplier; its lines count as inbound stock from now on."""

    ce_type = "hub.purchase-order.issued.v1"

    issued_at: UtcDatetime = Field(
        description="When the order was issued (UTC)", examples=["2026-11-22T04:02:00Z"]
    )
    currency: Currency
    ship_to: Location = Field(default="main", description="Location the goods are delivered to")
    expected_delivery: date = Field(
        description="Requested delivery date at the ship-to location", examples=["2026-12-01"]
    )
    lines: tuple[PurchaseOrderLine, ...] = Field(
        min_length=1,
        max_length=999,
        description="Ordered lines",
        examples=[[{"line_number": 1, "sku": "TEE-RED-M", "quantity": 120, "unit_price": "12.50"}]],
    )
    note: str = Field(
        default="",
        max_length=500,
        description="Free text for the supplier",
        examples=["deliver to dock 3"],
    )

    @model_validator(mode="after")
    def _lines_unique(self) -> PurchaseOrderIssued:
        _unique_lines(self.lines)
        return self

    @property
    def total(self) -> Decimal:
        """Order value before tax."""
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))


class PurchaseOrderChanged(_PurchaseOrderMessage):
    """The order was amended: `lines` replaces every line (a line left out is cancelled)."""

    ce_type = "hub.purchase-order.changed.v1"

    revision: PositiveInt = Field(description="Change number, 1 for the first change", examples=[1])
    issued_at: UtcDatetime = Field(
        description="When the order was first issued (X12 BCH06 cites it)",
        examples=["2026-11-22T04:02:00Z"],
    )
    changed_at: UtcDatetime = Field(
        description="When the order was changed (UTC)", examples=["2026-11-23T08:00:00Z"]
    )
    currency: Currency
    ship_to: Location = Field(default="main", description="Location the goods are delivered to")
    expected_delivery: date = Field(
        description="Requested delivery date after the change", examples=["2026-12-03"]
    )
    lines: tuple[PurchaseOrderLine, ...] = Field(
        min_length=1,
        max_length=999,
        description="Every line of the changed order; a line left out is cancelled",
        examples=[[{"line_number": 1, "sku": "TEE-RED-M", "quantity": 96, "unit_price": "12.50"}]],
    )
    reason: str = Field(
        default="",
        max_length=200,
        description="Why the order changed",
        examples=["supplier confirmed fewer units"],
    )

    @model_validator(mode="after")
    def _lines_unique(self) -> PurchaseOrderChanged:
        _unique_lines(self.lines)
        return self


class PurchaseOrderCancelled(_PurchaseOrderMessage):
    """The whole order is withdrawn: its open quantities no longer count as inbound."""

    ce_type = "hub.purchase-order.cancelled.v1"

    issued_at: UtcDatetime = Field(
        description="When the order was first issued (X12 BCH06 cites it)",
        examples=["2026-11-22T04:02:00Z"],
    )
    cancelled_at: UtcDatetime = Field(
        description="When the order was cancelled (UTC)", examples=["2026-11-24T10:00:00Z"]
    )
    reason: str = Field(
        default="",
        max_length=200,
        description="Why the order was cancelled",
        examples=["supplier rejected the order"],
    )


# --- inbound, from supplier connectors -----------------------------------------------------


class _SupplierDocument(CanonicalMessage):
    topic = topics.PURCHASING

    po_number: PoNumber
    supplier: SupplierId

    def kafka_key(self) -> str:
        return self.po_number


class AckStatus(StrEnum):
    ACCEPTED = "accepted"
    ACCEPTED_WITH_CHANGES = "accepted_with_changes"
    REJECTED = "rejected"


class LineAckStatus(StrEnum):
    ACCEPTED = "accepted"
    CHANGED = "changed"
    BACKORDERED = "backordered"
    REJECTED = "rejected"


class AcknowledgedLine(CanonicalMessage):
    """The supplier's answer for one PO line."""

    line_number: LineNumber
    sku: Sku
    status: LineAckStatus = Field(
        description="accepted as ordered, changed (quantity, price or date), backordered, rejected",
        examples=["changed"],
    )
    quantity: UnitsOrZero = Field(
        description="Units the supplier commits to deliver (0 for a rejected line)",
        examples=[96],
    )
    unit_price: UnitPrice | None = Field(
        default=None,
        description="Price the supplier confirms, when it states one",
        examples=["12.50"],
    )
    expected_delivery: date | None = Field(
        default=None,
        description="Date the supplier promises for this line",
        examples=["2026-12-03"],
    )

    @model_validator(mode="after")
    def _rejected_is_zero(self) -> AcknowledgedLine:
        if self.status is LineAckStatus.REJECTED and self.quantity != 0:
            raise ValueError("a rejected line confirms 0 units")
        return self


class PurchaseOrderAcknowledged(_SupplierDocument):
    """The supplier accepted, changed or rejected the order (X12 855, EDIFACT ORDRSP, REST)."""

    ce_type = "hub.purchase-order.acknowledged.v1"

    acknowledgement_id: DocumentId
    acknowledged_at: UtcDatetime = Field(
        description="When the supplier answered (UTC)", examples=["2026-11-23T09:30:00Z"]
    )
    status: AckStatus = Field(
        description="accepted as ordered, accepted with changes (see lines), or rejected",
        examples=["accepted_with_changes"],
    )
    lines: tuple[AcknowledgedLine, ...] = Field(
        default=(),
        max_length=999,
        description="Per-line answers; empty when none was given",
        examples=[[{"line_number": 1, "sku": "TEE-RED-M", "status": "changed", "quantity": 96}]],
    )


class ShippedLine(CanonicalMessage):
    line_number: LineNumber | None = Field(
        default=None,
        description="PO line the units belong to, when the supplier says",
        examples=[1],
    )
    sku: Sku
    quantity: Units = Field(description="Units shipped", examples=[60])


class ShipmentNotified(_SupplierDocument):
    """Advance ship notice: goods for this PO are on their way (X12 856, EDIFACT DESADV, REST)."""

    ce_type = "hub.shipment.notified.v1"

    shipment_id: DocumentId
    shipped_at: UtcDatetime = Field(
        description="When the goods left the supplier (UTC)", examples=["2026-11-24T10:15:00Z"]
    )
    expected_delivery: date | None = Field(
        default=None, description="Estimated delivery date", examples=["2026-11-27"]
    )
    carrier: PlatformId = Field(
        default="",
        description="Carrier (SCAC or name)",
        examples=["UPSN"],
    )
    tracking_number: PlatformId = Field(
        default="",
        description="Carrier's tracking or pro number",
        examples=["1Z999AA10123456784"],
    )
    lines: tuple[ShippedLine, ...] = Field(
        min_length=1,
        max_length=999,
        description="What is in the shipment for this PO",
        examples=[[{"line_number": 1, "sku": "TEE-RED-M", "quantity": 60}]],
    )


class InvoiceLine(CanonicalMessage):
    line_number: LineNumber | None = Field(
        default=None, description="PO line invoiced", examples=[1]
    )
    sku: Sku
    quantity: Units = Field(description="Units invoiced", examples=[60])
    unit_price: UnitPrice

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


class SupplierInvoiceReceived(_SupplierDocument):
    """A supplier's invoice for goods on this PO (X12 810, EDIFACT INVOIC, REST).

    The amounts are as the supplier stated them; whether they add up is for the 3-way match to
    judge, not for the message to refuse.
    """

    ce_type = "hub.supplier-invoice.received.v1"

    invoice_number: DocumentId
    invoiced_at: UtcDatetime = Field(
        description="Invoice date (UTC)", examples=["2026-11-28T00:00:00Z"]
    )
    currency: Currency
    lines: tuple[InvoiceLine, ...] = Field(
        min_length=1,
        max_length=999,
        description="Invoiced lines",
        examples=[[{"line_number": 1, "sku": "TEE-RED-M", "quantity": 60, "unit_price": "13.10"}]],
    )
    subtotal: Amount = Field(description="Sum of line amounts before tax", examples=["750.00"])
    tax: Amount = Field(default=Decimal(0), ge=0, description="Tax charged", examples=["97.50"])
    charges: Amount = Field(
        default=Decimal(0),
        description="Charges (positive) and allowances (negative) outside the lines",
        examples=["15.00"],
    )
    total: Amount = Field(description="Amount due", examples=["862.50"])


def reported_units(figure: int) -> int:
    """A supplier's stock figure as a report's quantity: a shortfall means nothing to sell, and
    beyond what one message carries no more either (the hub never sells more than reported)."""
    return min(max(figure, 0), MAX_QUANTITY)


class SupplierStockReported(CanonicalMessage):
    """A supplier's stock level for a SKU (dropship feed: X12 846, REST)."""

    ce_type = "hub.supplier-stock.reported.v1"
    topic = topics.PURCHASING

    supplier: SupplierId
    sku: Sku
    supplier_sku: SupplierSku = None
    quantity: UnitsOrZero = Field(
        description="Units the supplier can ship now; the hub never sells more",
        examples=[340],
    )
    reported_at: UtcDatetime = Field(
        description="When the supplier measured the quantity (UTC)",
        examples=["2026-11-22T06:00:00Z"],
    )
    report_id: DocumentId

    def kafka_key(self) -> str:
        return f"{self.supplier}:{self.sku}"


for _model in (
    PurchaseOrderIssued,
    PurchaseOrderChanged,
    PurchaseOrderCancelled,
    PurchaseOrderAcknowledged,
    ShipmentNotified,
    SupplierInvoiceReceived,
    SupplierStockReported,
):
    register(_model)
del _model
