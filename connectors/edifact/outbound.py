"""What we send (D.96A): ORDERS for `PurchaseOrderIssued`; ORDCHG for `PurchaseOrderChanged`
(replacing the order) and `PurchaseOrderCancelled`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from connectors.edifact.syntax import Element
from schemas.purchasing import PurchaseOrderCancelled, PurchaseOrderChanged, PurchaseOrderIssued

ORDERS = ["ORDERS", "D", "96A", "UN"]
ORDCHG = ["ORDCHG", "D", "96A", "UN"]

Body = list[tuple[str, list[Element]]]


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def orders(po: PurchaseOrderIssued, *, buyer: str, supplier: str) -> Body:
    """The body of an ORDERS message (between UNH and UNT): 220 order, 9 original."""
    return _order(po, ["220", po.po_number, "9"], po.issued_at, buyer, supplier)


def ordchg(
    message: PurchaseOrderChanged | PurchaseOrderCancelled, *, buyer: str, supplier: str
) -> Body:
    """The body of an ORDCHG: 230 order change, function 5 replace (a change: a line left out
    is cancelled) or 1 cancellation (the whole order)."""
    if isinstance(message, PurchaseOrderCancelled):
        return [
            ("BGM", ["230", message.po_number, "1"]),
            ("DTM", [["137", message.cancelled_at.strftime("%Y%m%d"), "102"]]),
            ("RFF", [["ON", message.po_number]]),
            ("DTM", [["171", message.issued_at.strftime("%Y%m%d"), "102"]]),  # reference date
            ("NAD", ["BY", [buyer, "", "92"]]),
            ("NAD", ["SU", [supplier, "", "92"]]),
        ]
    return _order(message, ["230", message.po_number, "5"], message.changed_at, buyer, supplier)


def _order(
    po: PurchaseOrderIssued | PurchaseOrderChanged,
    bgm: list[Element],
    at: datetime,
    buyer: str,
    supplier: str,
) -> Body:
    body: Body = [
        ("BGM", bgm),
        ("DTM", [["137", at.strftime("%Y%m%d"), "102"]]),  # document date
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
