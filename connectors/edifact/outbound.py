"""Our ORDERS (D.96A) purchase order, from `PurchaseOrderIssued`."""

from __future__ import annotations

from decimal import Decimal

from connectors.edifact.syntax import Element
from schemas.purchasing import PurchaseOrderIssued

ORDERS = ["ORDERS", "D", "96A", "UN"]


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def orders(
    po: PurchaseOrderIssued, *, buyer: str, supplier: str
) -> list[tuple[str, list[Element]]]:
    """The body of an ORDERS message (between UNH and UNT)."""
    body: list[tuple[str, list[Element]]] = [
        ("BGM", ["220", po.po_number, "9"]),  # 220 order, 9 original
        ("DTM", [["137", po.issued_at.strftime("%Y%m%d"), "102"]]),  # document date
        ("DTM", [["2", po.expected_delivery.strftime("%Y%m%d"), "102"]]),  # delivery requested
        ("NAD", ["BY", [buyer, "", "92"]]),
        ("NAD", ["SU", [supplier, "", "92"]]),
        ("NAD", ["DP", [po.ship_to, "", "92"]]),  # delivery party: our location
        ("CUX", [["2", po.currency, "9"]]),  # reference currency, order currency
    ]
    for line in po.lines:
        body.append(("LIN", [str(line.line_number), "", [line.sku, "IN"]]))  # buyer's item no.
        if line.supplier_sku:
            body.append(("PIA", ["1", [line.supplier_sku, "SA"]]))  # supplier's article no.
        body.append(("QTY", [["21", str(line.quantity), line.unit_of_measure]]))  # ordered
        body.append(("PRI", [["AAA", _num(line.unit_price)]]))  # net price
    body.append(("UNS", ["S"]))
    body.append(("CNT", [["2", str(len(po.lines))]]))  # number of line items
    return body
