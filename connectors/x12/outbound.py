"""What we send: 850 purchase order (`PurchaseOrderIssued`), 860 purchase order change
(`PurchaseOrderChanged` replaces the order, `PurchaseOrderCancelled` withdraws it)."""

from __future__ import annotations

from decimal import Decimal

from schemas.purchasing import (
    PurchaseOrderCancelled,
    PurchaseOrderChanged,
    PurchaseOrderIssued,
    PurchaseOrderLine,
)


def amount(value: Decimal) -> str:
    """An R-type number: explicit decimal point, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def po850(po: PurchaseOrderIssued) -> list[list[str]]:
    """The body of an 850 (between ST and SE)."""
    body: list[list[str]] = [
        # 00 original, SA stand-alone order
        ["BEG", "00", "SA", po.po_number, "", po.issued_at.strftime("%Y%m%d")],
        ["CUR", "BY", po.currency],
        # 002 delivery requested
        ["DTM", "002", po.expected_delivery.strftime("%Y%m%d")],
        # ship to, identified by our location code (92: assigned by buyer)
        ["N1", "ST", po.ship_to, "92", po.ship_to],
    ]
    body += [["PO1", str(line.line_number), *_item(line)] for line in po.lines]
    # CTT01 number of PO1 segments, CTT02 hash total of quantities
    body.append(["CTT", str(len(po.lines)), str(sum(line.quantity for line in po.lines))])
    return body


def _item(line: PurchaseOrderLine) -> list[str]:
    """Quantity, unit, price and product ids as PO1 (and POC, from its quantity on) carry them."""
    item = [
        str(line.quantity),
        line.unit_of_measure,
        amount(line.unit_price),
        "PE",  # price per each
        "SK",  # stock keeping unit: ours
        line.sku,
    ]
    if line.supplier_sku:
        item += ["VP", line.supplier_sku]  # vendor's part number
    return item


def po860(message: PurchaseOrderChanged | PurchaseOrderCancelled) -> list[list[str]]:
    """The body of an 860. A change replaces the whole order (BCH01 05: a line left out is
    cancelled, as `PurchaseOrderChanged` says); a cancellation withdraws it (BCH01 01)."""
    ordered = message.issued_at.strftime("%Y%m%d")
    if isinstance(message, PurchaseOrderCancelled):
        when = message.cancelled_at.strftime("%Y%m%d")
        return [["BCH", "01", "SA", message.po_number, "", "", ordered, "", "", "", "", when]]
    body: list[list[str]] = [
        [
            "BCH",
            "05",
            "SA",
            message.po_number,
            "",
            str(message.revision),  # change order sequence number
            ordered,
            "",
            "",
            "",
            "",
            message.changed_at.strftime("%Y%m%d"),  # BCH11 change request date
        ],
        ["CUR", "BY", message.currency],
        ["DTM", "002", message.expected_delivery.strftime("%Y%m%d")],
        ["N1", "ST", message.ship_to, "92", message.ship_to],
    ]
    for line in message.lines:
        item = _item(line)
        # POC: id, change code RZ (replace all values), quantity ordered, quantity left to
        # receive, unit, price, basis, product ids
        body.append(["POC", str(line.line_number), "RZ", item[0], item[0], *item[1:]])
    body.append(["CTT", str(len(message.lines)), str(sum(li.quantity for li in message.lines))])
    return body
