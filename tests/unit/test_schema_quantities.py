"""Units in one message are bounded: PostgreSQL's integer columns refuse what SQLite takes, so
an absurd quantity would be applied on one store and dead-lettered on the other. Refused at the
boundary, it is a 400 (or a dead letter) naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.base import MAX_QUANTITY
from schemas.envelope import Envelope, EnvelopeError, decode
from schemas.orders import FulfilledLine, OrderLine, ReturnedLine
from schemas.purchasing import ShippedLine
from schemas.stock import GoodsReceived, StockAdjusted, StockCounted, StockTransferred

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _line(quantity: int) -> OrderLine:
    return OrderLine(sku="A", quantity=quantity, unit_price=Decimal("1.00"))


def test_the_bound_is_accepted_and_one_more_is_refused_naming_the_field():
    assert _line(MAX_QUANTITY).quantity == MAX_QUANTITY
    with pytest.raises(ValidationError, match="quantity"):
        _line(MAX_QUANTITY + 1)


@pytest.mark.parametrize(
    "build",
    [
        lambda q: FulfilledLine(sku="A", quantity=q),
        lambda q: ReturnedLine(sku="A", quantity=q, restock=True),
        lambda q: StockCounted(sku="A", quantity=q, count_id="c", counted_at=AT),
        lambda q: GoodsReceived(
            sku="A",
            quantity=q,
            receipt_id="g",
            unit_cost=Decimal("1"),
            currency="EUR",
            received_at=AT,
        ),
        lambda q: StockTransferred(
            sku="A",
            quantity=q,
            transfer_id="t",
            from_location="a",
            to_location="b",
            transferred_at=AT,
        ),
        lambda q: ShippedLine(line_number=1, sku="A", quantity=q),
        lambda q: StockAdjusted(
            sku="A", delta=q, adjustment_id="a", reason="correction", adjusted_at=AT
        ),
        lambda q: StockAdjusted(
            sku="A", delta=-q, adjustment_id="a", reason="correction", adjusted_at=AT
        ),
    ],
)
def test_every_quantity_from_outside_is_bounded(build):
    build(MAX_QUANTITY)
    with pytest.raises(ValidationError):
        build(3_000_000_000)


def test_a_record_with_too_many_units_is_refused_at_decoding_with_its_reason():
    counted = StockCounted(sku="A", quantity=5, count_id="c", counted_at=AT)
    env = Envelope(id="c-1", source="test", data=counted)
    body = env.body().replace(b'"quantity":5', b'"quantity":3000000000')
    assert body != env.body()
    with pytest.raises(EnvelopeError, match="quantity"):
        decode(env.headers(), body)
