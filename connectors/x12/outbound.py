"""Our 850 purchase order, from `PurchaseOrderIssued`."""

from __future__ import annotations

from decimal import Decimal

from schemas.purchasing import PurchaseOrderIssued


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
    for line in po.lines:
        po1 = [
            "PO1",
            str(line.line_number),
            str(line.quantity),
            line.unit_of_measure,
            amount(line.unit_price),
            "PE",  # price per each
            "SK",  # stock keeping unit: ours
            line.sku,
        ]
        if line.supplier_sku:
            po1 += ["VP", line.supplier_sku]  # vendor's part number
        body.append(po1)
    # CTT01 number of PO1 segments, CTT02 hash total of quantities
    body.append(["CTT", str(len(po.lines)), str(sum(line.quantity for line in po.lines))])
    return body
