"""Purchasing messages: registered, keyed right, documented field by field, strict on input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

import schemas.purchasing as purchasing
from schemas import topics
from schemas.base import CanonicalMessage
from schemas.envelope import Envelope, decode
from schemas.registry import MESSAGE_TYPES

MODELS = sorted(
    {
        m
        for m in vars(purchasing).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == purchasing.__name__
    },
    key=lambda m: m.__name__,
)
NOW = datetime(2026, 11, 22, 4, 2, tzinfo=UTC)
PO = purchasing.PurchaseOrderIssued(
    po_number="PO-2026-0042",
    supplier="acme-supply",
    issued_at=NOW,
    currency="USD",
    expected_delivery=date(2026, 12, 1),
    lines=(
        purchasing.PurchaseOrderLine(
            line_number=1, sku="TEE-RED-M", quantity=120, unit_price=Decimal("12.50")
        ),
    ),
)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description_and_an_example(model: type[BaseModel]) -> None:
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"
        assert info.examples, f"{model.__name__}.{name} has no example"


def test_every_message_is_registered_on_its_topic() -> None:
    outbound: list[type[CanonicalMessage]] = [
        purchasing.PurchaseOrderIssued,
        purchasing.PurchaseOrderChanged,
        purchasing.PurchaseOrderCancelled,
    ]
    inbound: list[type[CanonicalMessage]] = [
        purchasing.PurchaseOrderAcknowledged,
        purchasing.ShipmentNotified,
        purchasing.SupplierInvoiceReceived,
        purchasing.SupplierStockReported,
    ]
    for model in outbound + inbound:
        assert MESSAGE_TYPES[model.ce_type] is model
        assert model.topic == (topics.PURCHASE_ORDERS if model in outbound else topics.PURCHASING)


def test_a_po_round_trips_through_the_cloudevents_envelope_keyed_by_po_number() -> None:
    env = Envelope(id="m-1", source="hub/core", data=PO, time=NOW)
    back = decode(env.headers(), env.body())
    assert back.data == PO and back.key == "PO-2026-0042"
    assert back.topic == "hub.purchase-orders.v1"
    assert PO.total == Decimal("1500.00")


@pytest.mark.parametrize(
    "change",
    [
        {"issued_at": datetime(2026, 11, 22, 4, 2)},  # no timezone
        {"currency": "XXX"},
        {"lines": ()},
        {"po_number": "PO 42"},
        {"po_number": "P" * 23},  # longer than X12 BEG03 allows
    ],
)
def test_bad_purchase_orders_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        purchasing.PurchaseOrderIssued.model_validate({**PO.model_dump(), **change})


def test_duplicate_line_numbers_are_refused() -> None:
    line = PO.lines[0]
    with pytest.raises(ValidationError, match="unique"):
        purchasing.PurchaseOrderIssued.model_validate({**PO.model_dump(), "lines": [line, line]})


def test_a_rejected_line_cannot_confirm_units() -> None:
    with pytest.raises(ValidationError, match="0 units"):
        purchasing.AcknowledgedLine(line_number=1, sku="A", status="rejected", quantity=5)


def test_issued_times_are_normalised_to_utc() -> None:
    data = {**PO.model_dump(), "issued_at": "2026-11-22T12:02:00+08:00"}
    assert purchasing.PurchaseOrderIssued.model_validate(data).issued_at == NOW
