"""3-way match: invoice vs PO price vs received quantity."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.purchasing.match import HoldReason, MatchError, Tolerance, three_way_match
from schemas.purchasing import InvoiceLine, PurchaseOrderLine, SupplierInvoiceReceived

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PO_LINES = (
    PurchaseOrderLine(line_number=1, sku="TEE-RED-M", quantity=100, unit_price=Decimal("12.50")),
    PurchaseOrderLine(line_number=2, sku="TEE-BLU-M", quantity=50, unit_price=Decimal("10.00")),
)


def invoice(
    *lines: tuple[str, int, str], tax: str = "0", total: str | None = None, charges: str = "0"
):
    inv_lines = tuple(
        InvoiceLine(sku=sku, quantity=q, unit_price=Decimal(p)) for sku, q, p in lines
    )
    subtotal = sum((line.amount for line in inv_lines), Decimal(0))
    return SupplierInvoiceReceived(
        po_number="PO-1",
        supplier="acme-supply",
        invoice_number="INV-1",
        invoiced_at=NOW,
        currency="CNY",
        lines=inv_lines,
        subtotal=subtotal,
        tax=Decimal(tax),
        charges=Decimal(charges),
        total=Decimal(total) if total is not None else subtotal + Decimal(tax) + Decimal(charges),
    )


def match(inv: SupplierInvoiceReceived, received: dict[str, int], **kw):
    return three_way_match(inv, po_lines=PO_LINES, po_currency="CNY", received=received, **kw)


def test_invoice_for_received_units_at_order_price_matches() -> None:
    r = match(invoice(("TEE-RED-M", 100, "12.50"), tax="162.50"), {"TEE-RED-M": 100})
    assert r.matched and r.holds == () and r.price_variance == 0


def test_partial_delivery_invoiced_in_full_is_held_for_quantity() -> None:
    r = match(invoice(("TEE-RED-M", 100, "12.50")), {"TEE-RED-M": 60})
    assert not r.matched
    assert [h.reason for h in r.holds] == [HoldReason.OVER_RECEIVED]
    assert "100 invoiced, 60 received" in r.reasons[0]


def test_higher_price_is_held_with_the_variance_amount() -> None:
    r = match(invoice(("TEE-RED-M", 60, "13.10")), {"TEE-RED-M": 60})
    assert not r.matched
    assert r.holds[0].reason is HoldReason.PRICE
    assert r.price_variance == Decimal("36.00")
    assert "13.1 per unit, ordered at 12.5" in r.reasons[0]


def test_price_variance_within_percent_tolerance_matches() -> None:
    r = match(
        invoice(("TEE-RED-M", 60, "12.60")),
        {"TEE-RED-M": 60},
        tolerance=Tolerance(percent=Decimal(1)),
    )
    assert r.matched and r.price_variance == Decimal("6.00")


def test_price_variance_within_absolute_tolerance_matches() -> None:
    r = match(
        invoice(("TEE-RED-M", 60, "12.60")),
        {"TEE-RED-M": 60},
        tolerance=Tolerance(amount=Decimal(6)),
    )
    assert r.matched


def test_charges_beyond_the_tolerance_are_held_and_allowances_are_not() -> None:
    """Freight or handling the PO never agreed is paid only within the tolerance on the
    invoice's goods (2% of 750.00 here: 15.00); an allowance lowers what is paid."""
    tol = Tolerance(percent=Decimal(2), amount=Decimal(1))
    goods = ("TEE-RED-M", 60, "12.50")
    assert match(invoice(goods, charges="15.00"), {"TEE-RED-M": 60}, tolerance=tol).matched
    assert match(invoice(goods, charges="-40.00"), {"TEE-RED-M": 60}, tolerance=tol).matched
    r = match(invoice(goods, charges="15.01"), {"TEE-RED-M": 60}, tolerance=tol)
    assert [h.reason for h in r.holds] == [HoldReason.CHARGES]
    assert "charges of 15.01 CNY beyond the lines" in r.reasons[0]
    exact = match(invoice(goods, charges="0.01"), {"TEE-RED-M": 60})
    assert [h.reason for h in exact.holds] == [HoldReason.CHARGES]


def test_every_reason_is_listed_not_only_the_first() -> None:
    inv = invoice(("TEE-RED-M", 10, "20"), ("GHOST", 1, "1"), ("TEE-BLU-M", 5, "10"), total="1")
    r = match(inv, {"TEE-RED-M": 10})
    reasons = {h.reason for h in r.holds}
    assert reasons == {
        HoldReason.PRICE,
        HoldReason.NOT_ON_ORDER,
        HoldReason.NOT_RECEIVED,
        HoldReason.TOTALS,
    }


def test_units_already_invoiced_cannot_be_invoiced_again() -> None:
    r = match(
        invoice(("TEE-RED-M", 60, "12.50")), {"TEE-RED-M": 60}, already_invoiced={"TEE-RED-M": 60}
    )
    assert [h.reason for h in r.holds] == [HoldReason.OVER_RECEIVED]


def test_currency_mismatch_is_held() -> None:
    inv = invoice(("TEE-RED-M", 1, "12.50"))
    r = three_way_match(inv, po_lines=PO_LINES, po_currency="USD", received={"TEE-RED-M": 1})
    assert HoldReason.CURRENCY in {h.reason for h in r.holds}


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(MatchError):
        Tolerance(percent=Decimal(-1))


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999"), places=2)


@given(
    ordered_price=prices,
    invoiced_price=prices,
    qty=st.integers(1, 100),
    received=st.integers(0, 150),
    pct=st.decimals(min_value=0, max_value=20, places=1),
    amt=st.decimals(min_value=0, max_value=50, places=2),
)
def test_match_property(ordered_price, invoiced_price, qty, received, pct, amt) -> None:
    po = (PurchaseOrderLine(line_number=1, sku="S", quantity=150, unit_price=ordered_price),)
    inv = invoice(("S", qty, str(invoiced_price)))
    tol = Tolerance(percent=pct, amount=amt)
    r = three_way_match(
        inv, po_lines=po, po_currency="CNY", received={"S": received}, tolerance=tol
    )
    variance = (invoiced_price - ordered_price) * qty
    assert r.price_variance == variance
    limit = max(amt, ordered_price * qty * pct / 100)
    assert r.matched == (qty <= received and abs(variance) <= limit)
    if r.matched:  # a looser tolerance never turns a match into a hold
        looser = Tolerance(percent=pct + 1, amount=amt + 1)
        assert three_way_match(
            inv, po_lines=po, po_currency="CNY", received={"S": received}, tolerance=looser
        ).matched
