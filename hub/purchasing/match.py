"""3-way match: the supplier's invoice against the PO's prices and the quantities received.

Pure: the core passes what the PO and the receipts say; a matched invoice becomes a payable, a held
one waits with every reason listed (not just the first).

Tolerance: a price difference on a line is accepted when it is within the larger of
`tolerance.percent` % of the ordered line value and `tolerance.amount` (both 0 by default: exact).
Quantities are exact: the hub never pays for units it has not received. Charges outside the
lines that the PO never agreed (freight, handling) are paid within the same tolerance on the
invoice's subtotal; an allowance (negative charges) is always accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from schemas.base import minor_unit
from schemas.purchasing import PurchaseOrderLine, SupplierInvoiceReceived


class MatchError(ValueError):
    """The inputs cannot be matched at all (e.g. a negative tolerance)."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    percent: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.percent < 0 or self.amount < 0:
            raise MatchError("tolerances cannot be negative")

    def allows(self, variance: Decimal, expected: Decimal) -> bool:
        limit = max(self.amount, abs(expected) * self.percent / Decimal(100))
        return abs(variance) <= limit


class HoldReason(StrEnum):
    CURRENCY = "currency"
    NOT_ON_ORDER = "not_on_order"
    PRICE = "price"
    NOT_RECEIVED = "not_received"
    OVER_RECEIVED = "over_received"
    TOTALS = "totals"
    CHARGES = "charges"


@dataclass(frozen=True, slots=True)
class Hold:
    reason: HoldReason
    sku: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class LineMatch:
    sku: str
    invoiced_quantity: int
    received_quantity: int
    ordered_unit_price: Decimal | None
    invoiced_unit_price: Decimal
    price_variance: Decimal  # (invoiced − ordered unit price) × invoiced quantity


@dataclass(frozen=True, slots=True)
class MatchResult:
    matched: bool
    holds: tuple[Hold, ...]
    lines: tuple[LineMatch, ...] = field(default=())
    price_variance: Decimal = Decimal(0)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(h.detail for h in self.holds)


def three_way_match(
    invoice: SupplierInvoiceReceived,
    *,
    po_lines: Iterable[PurchaseOrderLine],
    po_currency: str,
    received: Mapping[str, int],
    already_invoiced: Mapping[str, int] | None = None,
    tolerance: Tolerance = Tolerance(),
) -> MatchResult:
    """Match one invoice.

    `received` is units received per SKU on this PO; `already_invoiced` units per SKU on earlier
    matched invoices of the PO, so that a second invoice for the same goods is held.
    """
    holds: list[Hold] = []
    if invoice.currency != po_currency:
        holds.append(
            Hold(
                HoldReason.CURRENCY,
                None,
                f"invoice currency {invoice.currency} differs from the order's {po_currency}",
            )
        )
    ordered: dict[str, tuple[int, Decimal]] = {}
    for line in po_lines:
        qty, price = ordered.get(line.sku, (0, line.unit_price))
        ordered[line.sku] = (qty + line.quantity, price)
    invoiced: dict[str, tuple[int, Decimal]] = {}
    for inv_line in invoice.lines:
        qty, value = invoiced.get(inv_line.sku, (0, Decimal(0)))
        invoiced[inv_line.sku] = (qty + inv_line.quantity, value + inv_line.amount)
    billed_before = already_invoiced or {}

    lines: list[LineMatch] = []
    total_variance = Decimal(0)
    for sku, (qty, value) in invoiced.items():
        unit = value / qty
        got = received.get(sku, 0)
        order = ordered.get(sku)
        if order is None:
            holds.append(Hold(HoldReason.NOT_ON_ORDER, sku, f"{sku}: not on the purchase order"))
            lines.append(LineMatch(sku, qty, got, None, unit, Decimal(0)))
            continue
        _, po_price = order
        variance = value - po_price * qty
        total_variance += variance
        lines.append(LineMatch(sku, qty, got, po_price, unit, variance))
        if not tolerance.allows(variance, po_price * qty):
            holds.append(
                Hold(
                    HoldReason.PRICE,
                    sku,
                    f"{sku}: invoiced at {unit.normalize():f} per unit, ordered at "
                    f"{po_price.normalize():f} (variance {variance.normalize():f} "
                    f"{invoice.currency})",
                )
            )
        payable = got - billed_before.get(sku, 0)
        if got == 0:
            holds.append(
                Hold(HoldReason.NOT_RECEIVED, sku, f"{sku}: {qty} invoiced, none received")
            )
        elif qty > payable:
            holds.append(
                Hold(
                    HoldReason.OVER_RECEIVED,
                    sku,
                    f"{sku}: {qty} invoiced, {payable} received and not yet invoiced",
                )
            )

    quantum = minor_unit(invoice.currency)
    expected_total = invoice.subtotal + invoice.tax + invoice.charges
    if abs(invoice.total - expected_total) >= quantum:
        holds.append(
            Hold(
                HoldReason.TOTALS,
                None,
                f"invoice total {invoice.total} is not subtotal + tax + charges ({expected_total})",
            )
        )
    if invoice.charges > 0 and not tolerance.allows(invoice.charges, invoice.subtotal):
        holds.append(
            Hold(
                HoldReason.CHARGES,
                None,
                f"charges of {invoice.charges.normalize():f} {invoice.currency} beyond the lines, "
                f"more than the tolerance on a subtotal of {invoice.subtotal.normalize():f}",
            )
        )
    line_sum = sum((line.amount for line in invoice.lines), Decimal(0))
    if abs(invoice.subtotal - line_sum) >= quantum:
        holds.append(
            Hold(
                HoldReason.TOTALS,
                None,
                f"invoice subtotal {invoice.subtotal} is not the sum of its lines ({line_sum})",
            )
        )
    return MatchResult(not holds, tuple(holds), tuple(lines), total_variance)
