"""Ids and references from platforms and partners carry no control characters: PostgreSQL's text
columns refuse a NUL that SQLite takes, so such a message would be applied on one store and
dead-lettered on the other. Refused at the boundary, it is a 400 with the field's name."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.orders import OrderFulfilled, OrderLine, OrderPlaced
from schemas.payments import PaymentRefunded
from schemas.purchasing import ShipmentNotified, ShippedLine
from schemas.stock import GoodsReceived, StockCounted

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _placed(**over):
    fields = dict(
        order_key="acme:1",
        account="acme",
        channel="online",
        platform_order_id="1",
        placed_at=AT,
        currency="EUR",
        lines=[OrderLine(sku="A", quantity=1, unit_price=Decimal("1.00"), line_id="L1")],
        total=Decimal("1.00"),
    )
    return OrderPlaced(**{**fields, **over})


@pytest.mark.parametrize("bad", ["1\x002", "1\n", "\x7f"])
@pytest.mark.parametrize("field", ["order_key", "platform_order_id"])
def test_an_order_id_with_a_control_character_is_refused_naming_the_field(field, bad):
    value = f"acme:{bad}" if field == "order_key" else bad
    with pytest.raises(ValidationError, match=field):
        _placed(**{field: value})


def test_ids_of_fulfilments_refunds_counts_receipts_and_shipments_refuse_a_nul():
    cases = [
        (
            OrderFulfilled,
            "fulfilment_id",
            dict(order_key="acme:1", account="acme", channel="online", fulfilled_at=AT, lines=[]),
        ),
        (
            PaymentRefunded,
            "refund_id",
            dict(
                order_key="acme:1",
                account="acme",
                amount=Decimal("1"),
                currency="EUR",
                refunded_at=AT,
            ),
        ),
        (StockCounted, "count_id", dict(sku="A", location="main", quantity=1, counted_at=AT)),
        (
            GoodsReceived,
            "po_number",
            dict(sku="A", location="main", quantity=1, receipt_id="R1", received_at=AT),
        ),
    ]
    for model, field, fields in cases:
        with pytest.raises(ValidationError, match=field):
            model(**fields, **{field: "x\x00y"})
        assert getattr(model(**fields, **{field: "x-y"}), field) == "x-y"


def test_a_carriers_tracking_number_may_be_empty_but_holds_no_nul():
    fields = dict(
        po_number="PO-1",
        supplier="acme-supply",
        shipment_id="ASN-1",
        shipped_at=AT,
        lines=(ShippedLine(line_number=1, sku="A", quantity=1),),
    )
    assert ShipmentNotified(**fields).tracking_number == ""
    assert ShipmentNotified(**fields, carrier="UPSN").carrier == "UPSN"
    with pytest.raises(ValidationError, match="tracking_number"):
        ShipmentNotified(**fields, tracking_number="1Z\x0099")
